"""What the security runbooks share: the guide's sections, how addresses and times are shown, and the
ban guard with everything it needs (allowlist, this host's addresses, the deployment's Docker subnets)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.units import human_duration
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import NetworkInfo
from runbooks.security.guards import Network, ban_refusal, own_addresses

IDENTIFY = "Security Issues › Unauthorized Access Attempts › Identify Threat"
BLOCK = "Security Issues › Unauthorized Access Attempts › Block Malicious IPs"
REVIEW = "Security Issues › Unauthorized Access Attempts › Review Security Settings"
LOGIN = "Authentication & Authorization › Login Failures"
PERMISSIONS = "Authentication & Authorization › Permission Issues"


def shown(network: Network) -> str:
    """A single address without its /32 or /128; a range as a CIDR."""
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(first: datetime, last: datetime) -> str:
    """ "09:21:34 to 09:50:34 UTC" within one day, full dates otherwise."""
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    if first.date() == last.date():
        return f"{first:%H:%M:%S} to {last:%H:%M:%S} UTC"
    return f"{clock(first)} to {clock(last)}"


def until_text(until: datetime | None, now: datetime) -> str:
    """ "until 2025-11-30 02:00:00 UTC (in 59m 58s)", "ended … ago", or "with no end"."""
    if until is None:
        return "with no end"
    left = (until - now).total_seconds()
    if left > 0:
        return f"until {clock(until)} (in {human_duration(left)})"
    return f"until {clock(until)} ({human_duration(-left)} ago)"


def expiry(now: datetime, expires_in: float | None) -> datetime | None:
    return None if expires_in is None else now + timedelta(seconds=expires_in)


def protected_subnets(networks: list[NetworkInfo]) -> list[str]:
    return sorted({subnet for network in networks for subnet in network.subnets})


async def deployment_networks(ctx: CheckContext) -> list[NetworkInfo]:
    """The Docker networks of the compose project (or of the watched containers); [] without Docker."""
    docker = ctx.targets.docker
    try:
        if ctx.settings.erpgo_compose_project:
            return await docker.networks_of(project=ctx.settings.erpgo_compose_project)
        found = await asyncio.gather(
            *(docker.networks_of(names=[name]) for name in ctx.targets.containers), return_exceptions=True
        )
    except NotConfigured:
        return []
    networks: dict[str, NetworkInfo] = {}
    for result in found:
        if isinstance(result, NotConfigured):
            return []
        if isinstance(result, ContainerNotFound):
            continue  # a watched container that is not there has no network to protect
        if isinstance(result, BaseException):
            raise result
        networks.update((network.id or network.name, network) for network in result)
    return list(networks.values())


Guard = Callable[[str], tuple[Network | None, str | None]]


async def ban_guard_for(ctx: CheckContext) -> Guard:
    """`ban_refusal` with this deployment's allowlist, own addresses and Docker subnets, read once: the
    guard gives (network, note) when a text may be banned, (None, why) when not. Docker not answering
    refuses every ban: none is known to be safe."""
    try:
        protected = protected_subnets(await deployment_networks(ctx))
    except Exception as exc:
        why = f"the deployment's Docker networks could not be read ({describe_error(exc)}), so no ban is safe"
        return lambda _text: (None, why)
    allowlist, own = list(ctx.settings.erpgo_ban_allowlist), own_addresses()

    def guard(text: str) -> tuple[Network | None, str | None]:
        return ban_refusal(text, allowlist=allowlist, own_addresses=own, protected_networks=protected)

    return guard


async def ban_guard(ctx: CheckContext, text: str) -> tuple[Network | None, str | None]:
    return (await ban_guard_for(ctx))(text)


async def read_container_lines(ctx: CheckContext, name: str, since: datetime, tail: int) -> list[str] | None:
    """A container's stdout and stderr lines since `since` (the newest `tail`); None when there is no such container."""
    return await ctx.targets.docker.log_lines(name, since=since, tail=tail, seconds=ctx.settings.erpgo_check_timeout)


def static_refusal(text: str) -> tuple[Network | None, str | None]:
    """What can be refused from the words alone (syntax, width, loopback, link-local…), before any lookup."""
    return ban_refusal(text, allowlist=[], own_addresses=[], protected_networks=[])


def as_network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
