"""Guide: "Performance Issues › High CPU Usage" — `/erpgo cpu [container]`.

Per container: CPU % as the background sampler measured it (of its limit, or of the host's CPUs),
CFS throttling, and for the API its CPU limit against GOMAXPROCS — the classic Go-in-a-container
mismatch: before Go 1.25 the runtime sizes its scheduler to the host's CPUs, not to the
container's quota, and gets throttled. Then the container's top processes (`docker top`) and, from
the API's `/metrics`, how many CPU seconds per second the process burns and its goroutines.
"""

from __future__ import annotations

import math

from bot.context import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.registry import Runbook
from bot.targets.docker import Docker
from bot.targets.docker_models import ContainerInfo
from bot.targets.docker_stats import StatsSample
from bot.targets.go_metrics import rate
from runbooks.containers.common import (
    chosen_container,
    docker_check,
    inspect_or_none,
    is_api,
    parse_container,
)
from runbooks.quick import percent_status
from runbooks.resources import trends
from runbooks.resources.common import (
    METRICS_INTERVAL,
    api_info,
    count,
    for_each_container,
    growth,
    metrics_pair,
    not_exposed,
    not_up,
    process_line,
    top_processes,
)

runbook = Runbook("resources.cpu")

SECTION = "Performance Issues › High CPU Usage"
WARN_PERCENT, CRIT_PERCENT = 80.0, 90.0  # the guide: CPU usage > 80 %
THROTTLED_WARN = 0.20  # throttled in this share of the CFS periods between two samples

runbook.verb(
    "cpu",
    "CPU of the containers (or one): usage of their limit, throttling, CPU limit vs GOMAXPROCS, top processes, "
    "the API's CPU seconds and goroutines from /metrics",
    usage="[container]",
    parse=parse_container,
    ack="Measuring CPU…",
)


async def gomaxprocs(docker: Docker, info: ContainerInfo) -> int | None:
    """GOMAXPROCS when set to a number (read in memory; only the number is shown)."""
    if info.env.get("GOMAXPROCS") != "set":
        return None
    value = (await docker.read_env_value(info.name, "GOMAXPROCS") or "").strip()
    return int(value) if value.isdigit() else None


def gomaxprocs_mismatch(info: ContainerInfo, procs: int | None, host_cpus: int) -> str | None:
    """Why GOMAXPROCS does not fit the container's CPU limit, or None when it does (or cannot be told)."""
    limit = info.cpu_limit
    if limit is None or limit >= host_cpus:
        return None
    allowed = max(1, math.ceil(limit))
    if procs is None:
        return (
            f"GOMAXPROCS not set under a CPU limit of {limit:g}: Go before 1.25 runs {host_cpus} threads (the host's "
            f"CPUs) on a {limit:g}-CPU quota and is throttled — set GOMAXPROCS={allowed}"
        )
    if procs > allowed:
        return (
            f"GOMAXPROCS={procs} but the CPU limit is {limit:g}: more threads than the quota — set GOMAXPROCS={allowed}"
        )
    return None


def cpu_title(sample: StatsSample, capacity: float, limit_text: str) -> str:
    share = (sample.cpu_percent or 0) / capacity
    text = f"CPU {sample.cpu_percent or 0:.1f} % of one CPU = {share:.0f} % of {limit_text}"
    if sample.throttled_ratio:
        text += f", throttled in {sample.throttled_ratio * 100:.0f} % of periods"
    return text


async def container_cpu(ctx: CheckContext, name: str) -> Finding:
    component = f"CPU {name}"
    docker = ctx.targets.docker
    info = await inspect_or_none(docker, name)
    if info is None:
        return Finding.crit(component, "container not found", data={"state": "missing"})
    if not info.state.up:
        return Finding.warn(component, not_up(info) + ": no CPU to measure", data={"state": info.state.status})
    sample = await ctx.targets.container_stats(name)
    host_cpus = sample.online_cpus or 1
    limit = info.cpu_limit
    capacity = min(limit, host_cpus) if limit else host_cpus
    limit_text = f"its {limit:g}-CPU limit" if limit else f"the host's {host_cpus} CPUs (no limit)"
    used = sample.cpu_percent or 0.0
    statuses = [percent_status(used, capacity * 100, WARN_PERCENT, CRIT_PERCENT)]
    details = [
        f"CPU {used:.1f} % of one CPU"
        + (f" over {sample.cpu_window:.1f} s" if sample.cpu_window else "")
        + f"; limit: {f'{limit:g} CPUs' if limit else 'none'}; {host_cpus} CPUs online",
        f"CFS throttling: {sample.throttled_periods} of {sample.periods} periods throttled since start "
        f"({sample.throttled_ns / 1e9:.1f} s in all)",
    ]
    if sample.throttled_ratio is not None and sample.throttled_ratio >= THROTTLED_WARN:
        statuses.append(Status.WARN)
    if is_api(info):
        procs = await gomaxprocs(docker, info)
        details.append(f"GOMAXPROCS: {procs if procs is not None else 'not set'}")
        mismatch = gomaxprocs_mismatch(info, procs, host_cpus)
        if mismatch:
            statuses.append(Status.WARN)
            details.append(mismatch)
    data = {
        "container": name,
        "cpu_percent": sample.cpu_percent,
        "cpu_limit": limit,
        "online_cpus": host_cpus,
        "throttled_ratio": sample.throttled_ratio,
        "throttled_periods": sample.throttled_periods,
    }
    return Finding(worst(statuses), component, cpu_title(sample, capacity, limit_text), details=details, data=data)


@docker_check(runbook, "cpu", component="CPU", section=SECTION, timeout=15)
async def cpu_usage(ctx: CheckContext) -> list[Finding]:
    """Step 1 (`docker stats`) and step 3 (GOMAXPROCS vs the CPU limit) for each container."""
    return await for_each_container(ctx, "CPU", container_cpu)


@docker_check(runbook, "cpu", component="Processes", section=SECTION, timeout=10)
async def container_processes(ctx: CheckContext) -> Finding:
    """Step 1, `docker exec erpgo-api top`: the container's processes by CPU (the API's by default)."""
    name = await chosen_container(ctx)
    info = await inspect_or_none(ctx.targets.docker, name)
    if info is None or not info.state.up:
        return Finding.skipped(f"Processes {name}", (not_up(info) if info else "not found") + ": no processes")
    processes = await top_processes(ctx, name, "%CPU")
    lines = [process_line(p) for p in processes]
    title = "busiest: " + lines[0] if lines else "no processes"
    return Finding.ok(f"Processes {name}", title, evidence=lines, data={"processes": processes})


@runbook.check("cpu", component="Go runtime", section=SECTION, timeout=METRICS_INTERVAL + 15)
async def cpu_rate(ctx: CheckContext) -> Finding:
    """The guide's CPU profile, from /metrics: CPU seconds per second of the API process, and goroutines."""
    pair = await metrics_pair(ctx)
    if pair is None:
        return not_exposed("Go runtime")
    first, second = pair
    per_second = rate(first, second, "cpu_seconds")
    if per_second is None:
        return Finding.warn("Go runtime", "/metrics has no process_cpu_seconds_total")
    seconds = second.read_at - first.read_at
    info = await api_info(ctx)
    limit = info.cpu_limit if info else None
    status = percent_status(per_second, limit, WARN_PERCENT, CRIT_PERCENT) if limit else Status.OK
    title = f"the API process burns {per_second:.2f} CPU-seconds per second ({per_second * 100:.0f} % of one CPU)" + (
        f" of its {limit:g}-CPU limit" if limit else ""
    )
    details = [
        f"process_cpu_seconds_total over {seconds:.1f} s: {growth(first.cpu_seconds, second.cpu_seconds, lambda v: f'{v:.2f} s')}",
        f"goroutines: {growth(first.goroutines, second.goroutines, count)}",
    ]
    if second.threads is not None:
        details.append(f"OS threads: {count(second.threads)}")
    data = {"cpu_seconds_per_second": per_second, "goroutines": second.goroutines, "seconds": round(seconds, 2)}
    return Finding(status, "Go runtime", title, details=details, data=data)


@runbook.check("cpu", component="CPU trend", section=SECTION, timeout=15)
async def cpu_trend(ctx: CheckContext) -> Finding:
    """CPU % of one CPU over time: the processes' CPU seconds in Prometheus, else the Docker stats sampled."""
    sampled = trends.sampled_series(ctx, lambda sample: sample.cpu_history)
    return await trends.trend(
        ctx, "CPU trend", "CPU % of one CPU", "rate(process_cpu_seconds_total[1m]) * 100", sampled
    )


runbook.triage_for("HighCPUUsage", checks=("cpu_usage", "container_processes", "cpu_rate"))
