"""The deployment as the emergency procedures see it: every watched container, what it is for (its
role: by compose service, else by name), what it depends on, and whether it is up.

Roles and the order the guide's `docker-compose up` brings them up in: the database, the cache and
the message queue first (tier 0), then the API (1), then the workers (2), then monitoring (3).
One-shot containers (the migrator) ran once and exited 0 on purpose: they are neither down nor
restarted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.context import CheckContext
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import ContainerInfo, container_info, parse_time
from runbooks.watched import watched_containers

ROLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (  # the first role with a matching word wins
    ("monitoring", ("exporter", "prometheus", "grafana", "alertmanager", "loki", "promtail", "cadvisor")),
    ("oneshot", ("migrator", "migrate", "migrations", "init", "setup")),
    ("database", ("postgres", "postgresql", "db", "database", "pg")),
    ("cache", ("redis", "cache", "valkey")),
    ("queue", ("nats", "rabbitmq", "kafka", "queue")),
    ("worker", ("worker", "workers", "jobs", "scheduler")),
    ("api", ("api", "backend")),
)
TIERS = {"database": 0, "cache": 0, "queue": 0, "api": 1, "worker": 2, "other": 2, "monitoring": 3, "oneshot": 9}
# what each role needs to do its work (the verdict's arrows)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "api": ("database", "cache", "queue"),
    "worker": ("database", "cache", "queue"),
    "other": ("database",),
}
ROLE_TITLES = {
    "database": "the database",
    "cache": "the cache",
    "queue": "the message queue",
    "api": "the API",
    "worker": "the workers",
    "monitoring": "monitoring",
    "oneshot": "one-shot jobs",
    "other": "other services",
}
_DEPLOYMENT = "_emergency_deployment"


def role_of(name: str, service: str | None = None) -> str:
    """The role of a container: from its compose service when it has one, else from its name."""
    for text in (service, name):
        if not text:
            continue
        words = [w for w in re.split(r"[-_.\s]+", text.lower()) if w and not w.isdigit()]
        for role, markers in ROLE_WORDS:
            if any(word in markers or (role == "monitoring" and word.endswith("exporter")) for word in words):
                return role
        if service:
            return "other"
    return "other"


@dataclass(frozen=True)
class Member:
    name: str
    raw: dict[str, Any] | None  # `docker inspect`; None: no such container

    @property
    def info(self) -> ContainerInfo | None:
        return container_info(self.raw) if self.raw is not None else None

    @property
    def role(self) -> str:
        info = self.info
        return role_of(self.name, info.service if info else None)

    @property
    def tier(self) -> int:
        return TIERS[self.role]

    @property
    def has_healthcheck(self) -> bool:
        return bool(((self.raw or {}).get("Config") or {}).get("Healthcheck", {}).get("Test"))

    @property
    def finished_ok(self) -> bool:
        """A one-shot container that did its job: exited 0."""
        info = self.info
        return bool(info and info.state.status == "exited" and info.state.exit_code == 0 and self.role == "oneshot")

    @property
    def down(self) -> bool:
        """Missing, not running (a one-shot that exited 0 is fine), restarting, or unhealthy."""
        info = self.info
        if info is None:
            return True
        if self.finished_ok:
            return False
        return not info.state.running or info.state.status == "restarting" or info.state.health == "unhealthy"

    def problem(self) -> str:
        """What is wrong with it, in a few words ('' when nothing is)."""
        info = self.info
        if info is None:
            return "container not found"
        state = info.state
        if self.finished_ok or not self.down:
            return ""
        if state.status == "restarting":
            return f"restarting (exit code {state.exit_code}, {state.restart_count} restarts)"
        if not state.running:
            why = " — OOM-killed" if state.oom_killed else ""
            error = f" — {state.error}" if state.error else ""
            return f"{state.status} (exit code {state.exit_code}){why}{error}"
        return f"unhealthy ({state.health_failing_streak} failed health checks in a row)"

    def failed_at(self) -> datetime | None:
        """When it went down, as far as inspect tells: FinishedAt, or the first failing health check."""
        info = self.info
        if info is None or not self.down:
            return None
        if not info.state.running or info.state.status == "restarting":
            return info.state.finished_at
        return unhealthy_since(self.raw or {})


def unhealthy_since(raw: dict[str, Any]) -> datetime | None:
    """The start of the current streak of failing health checks (the engine keeps the last few)."""
    log = ((raw.get("State") or {}).get("Health") or {}).get("Log") or []
    since = None
    for entry in reversed(log):
        if entry.get("ExitCode") == 0:
            break
        since = parse_time(entry.get("Start")) or since
    return since


async def _member(ctx: CheckContext, name: str) -> Member:
    try:
        return Member(name, await ctx.targets.docker.inspect_raw(name))
    except ContainerNotFound:
        return Member(name, None)


async def _deployment(ctx: CheckContext) -> list[Member]:
    names = await watched_containers(ctx)
    members = await asyncio.gather(*(_member(ctx, name) for name in names))
    return sorted(members, key=lambda m: (m.tier, m.name))


async def deployment(ctx: CheckContext) -> list[Member]:
    """Every watched container, inspected once per report, in start order (tier, then name)."""
    return await ctx.shared(_DEPLOYMENT, lambda: _deployment(ctx))


async def inspect_fresh(ctx: CheckContext) -> list[Member]:
    """The same, inspected now (for remediations, which re-check the world)."""
    return await _deployment(ctx)
