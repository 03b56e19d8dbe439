"""What the memory and CPU runbooks share: the API's `/metrics` read twice a few seconds apart (once
per report, whichever check asks first), the processes of a container, and the API container a
restart would be proposed for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.context import CheckContext
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding
from bot.core.redact import shorten
from bot.core.units import human_bytes
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import ContainerInfo
from bot.targets.go_metrics import GoMetrics, scrape
from runbooks.containers.common import chosen_containers, inspect_or_none

METRICS_INTERVAL = 2.0  # seconds between the two reads of /metrics: growth is measured over it
TOP_PROCESSES = 8
PS_COLUMNS = ("PID", "USER", "%CPU", "%MEM", "RSS", "ELAPSED")
_METRICS_PAIR = "_go_metrics_pair"

MetricsPair = tuple[GoMetrics, GoMetrics] | None


async def _read_twice(ctx: CheckContext) -> MetricsPair:
    api = ctx.targets.api
    first = await scrape(api)
    if first is None:
        return None
    await asyncio.sleep(METRICS_INTERVAL)  # the interval growth is measured over, not a synchronisation
    second = await scrape(api)
    return (first, second) if second is not None else None


async def metrics_pair(ctx: CheckContext) -> MetricsPair:
    """Two readings of the API's /metrics METRICS_INTERVAL apart; None when it is not exposed (404).
    Every check of one report shares the same two readings."""
    return await ctx.shared(_METRICS_PAIR, lambda: _read_twice(ctx))


def not_exposed(component: str, path: str = "/metrics") -> Finding:
    return Finding.skipped(component, f"GET {path}: not exposed (404)", data={"exposed": False})


def growth(first: float | None, second: float | None, show: Callable[[float], str]) -> str:
    if first is None or second is None:
        return "not exported"
    delta = second - first
    if abs(delta) < 1e-9:
        return f"{show(second)} (steady)"
    return f"{show(first)} → {show(second)} ({'+' if delta > 0 else '−'}{show(abs(delta))})"


def count(value: float) -> str:
    return f"{value:,.0f}"


def size(value: float) -> str:
    return human_bytes(value)


async def api_info(ctx: CheckContext) -> ContainerInfo | None:
    """The API container (for a restart proposal); None when Docker cannot say."""
    try:
        return await ctx.targets.docker.inspect(await ctx.targets.container_of("api"))
    except (NotConfigured, ContainerNotFound, ConnectionError, TimeoutError):
        return None


def failed(component: str, exc: BaseException) -> Finding:
    """What a per-container part of a check that failed becomes."""
    if isinstance(exc, NotConfigured):
        return Finding.skipped(component, str(exc))
    if isinstance(exc, ContainerNotFound):
        return Finding.crit(component, "container not found", data={"state": "missing"})
    if is_unreachable(exc):
        return Finding.crit(component, "unreachable — " + describe_error(exc))
    return Finding.error(component, describe_error(exc))


async def for_each_container(
    ctx: CheckContext, label: str, read: Callable[[CheckContext, str], Awaitable[Finding]]
) -> list[Finding]:
    """`read` for the container the command or alert names, else every watched one, at once; one
    that fails is its own finding."""
    ctx.targets.docker.client()  # not configured, socket missing: one finding for all
    names = await chosen_containers(ctx)
    results = await asyncio.gather(*(read(ctx, name) for name in names), return_exceptions=True)
    return [
        result if isinstance(result, Finding) else failed(f"{label} {name}", result)
        for name, result in zip(names, results, strict=True)
    ]


def ps_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def process_line(process: dict[str, str]) -> str:
    """One `docker top` row as `ps` shows it (RSS, in KiB there, as bytes)."""
    fields = []
    for column in PS_COLUMNS:
        value = process.get(column)
        if value is not None:
            fields.append(f"RSS {human_bytes(ps_number(value) * 1024)}" if column == "RSS" else f"{column} {value}")
    command = process.get("COMMAND") or process.get("CMD") or ""
    return ", ".join(fields) + " — " + shorten(command, 160, "")


def not_up(info: ContainerInfo) -> str:
    """Why a container has nothing to measure, in words that match its state."""
    state = info.state
    if state.status == "restarting":
        return (
            f"restarting: its restart policy keeps restarting it ({state.restart_count} restarts, "
            f"last exit code {state.exit_code})"
        )
    return f"{state.status}, not running"


async def top_processes(ctx: CheckContext, name: str, sort_by: str) -> list[dict[str, str]]:
    """`docker top` of a container, the biggest first by ps column `sort_by` (%CPU, RSS); none when it is not up
    (the engine answers 409 for a restarting container)."""
    info = await inspect_or_none(ctx.targets.docker, name)
    if info is None or not info.state.up:
        return []
    processes = await ctx.targets.docker.top(name)
    processes.sort(key=lambda p: ps_number(p.get(sort_by, "0")), reverse=True)
    return processes[:TOP_PROCESSES]
