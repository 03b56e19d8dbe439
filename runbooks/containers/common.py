"""Which container a container verb is about, and what the ERPGo API container is expected to have."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.registry import CheckFunc, Runbook, UsageError
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound, Docker
from bot.targets.docker_models import ContainerInfo
from runbooks.application import CONTAINER_NAME
from runbooks.watched import ContainerArgs, watched_containers

# the settings the real ERPGo reads; the first four it cannot start without
REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "SERVER_PORT")
OPTIONAL_ENV = (
    "JWT_EXPIRY",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "MAX_LOGIN_ATTEMPTS",
    "LOCKOUT_DURATION",
    "PASSWORD_PEPPER",
)
GO_RUNTIME_ENV = ("GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG")
# alert labels that may name the container an alert is about (cAdvisor: name, compose: service)
ALERT_CONTAINER_LABELS = ("container", "container_name", "name", "service", "job")


def docker_check(
    runbook: Runbook,
    *verbs: str,
    component: str,
    section: str,
    timeout: float | None = None,
    proposes: tuple[str, ...] = (),
) -> Callable[[CheckFunc], CheckFunc]:
    """@runbook.check for checks that need the Docker engine: an engine that is not configured or cannot
    be reached is said once per report (the report keeps the first check's), not once per check."""

    def decorate(func: Callable[[CheckContext], Awaitable[Any]]) -> CheckFunc:
        @functools.wraps(func)
        async def check(ctx: CheckContext) -> Finding | list[Finding]:
            try:
                result: Finding | list[Finding] = await func(ctx)
                return result
            except UsageError as exc:  # NotWatched
                return Finding.skipped(component, str(exc))
            except (NotConfigured, ConnectionError) as exc:
                if isinstance(exc, NotConfigured):
                    return Finding.skipped("Docker", str(exc), once="docker")
                return Finding.crit("Docker", "unreachable — " + describe_error(exc), once="docker")

        return runbook.check(*verbs, component=component, section=section, timeout=timeout, proposes=proposes)(check)

    return decorate


def parse_container(words: list[str]) -> ContainerArgs:
    """`[container]`: at most one container name."""
    if len(words) > 1:
        raise UsageError("give at most one container name")
    if words and not CONTAINER_NAME.match(words[0]):
        raise UsageError(f"{words[0][:40]!r} is not a container name")
    return ContainerArgs(words[0] if words else None)


async def watched(ctx: CheckContext) -> list[str]:
    """The watched containers (ERPGO_COMPOSE_PROJECT's, else ERPGO_CONTAINERS), read once per report;
    ERPGO_CONTAINERS when the engine cannot say."""

    async def read() -> list[str]:
        try:
            return await watched_containers(ctx)
        except (NotConfigured, ConnectionError, TimeoutError):
            return list(ctx.targets.containers)

    return await ctx.shared("watched containers", read)


def alert_container(ctx: CheckContext, watched: list[str]) -> str | None:
    """The watched container an alert's labels name (`name="erpgo-api"`, `service="api"`), if any."""
    labels = ctx.alert.labels if ctx.alert else {}
    for key in ALERT_CONTAINER_LABELS:
        value = str(labels.get(key) or "")
        for candidate in (value, f"erpgo-{value}"):
            if value and candidate in watched:
                return candidate
    return None


async def named_container(ctx: CheckContext) -> str | None:
    """The container named in the command, if it is a watched one (NotWatched, a UsageError, if not:
    the bot reads only the deployment's own containers)."""
    name = ctx.arg(ContainerArgs).container
    return await ctx.targets.ensure_watched(name) if name else None


async def chosen_container(ctx: CheckContext, *, checked: bool = True) -> str:
    """The container named in the command, else the one the alert names, else the API's. `checked`
    False: only to name it (the check reads nothing of it)."""
    if name := ctx.arg(ContainerArgs).container:
        return await ctx.targets.ensure_watched(name) if checked else name
    names = await watched(ctx)
    return alert_container(ctx, names) or await ctx.targets.container_of("api")


async def chosen_containers(ctx: CheckContext) -> list[str]:
    """The container named in the command or the alert; else every watched container."""
    named = await named_container(ctx)
    if named:
        return [named]
    names = await watched(ctx)
    named = alert_container(ctx, names)
    return [named] if named else names


async def inspect_or_none(docker: Docker, name: str) -> ContainerInfo | None:
    try:
        return await docker.inspect(name)
    except ContainerNotFound:
        return None


def is_api(info: ContainerInfo) -> bool:
    """The ERPGo API container: it has one of the API's settings, or is named or labelled as the API."""
    return any(name in info.env for name in REQUIRED_ENV) or "api" in (info.service or "") or "api" in info.name


def clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def short_id(container_id: str) -> str:
    return container_id.removeprefix("sha256:")[:12]
