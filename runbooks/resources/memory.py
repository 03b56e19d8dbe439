"""Guide: "Application Issues › Memory Leaks" and "Infrastructure Issues › Memory Issues" — `/erpgo memory [container]`.

Per container: memory used against its limit and the trend over the background sampler's window
(rising or steady), OOM kills, and for the API its GOGC, GOMEMLIMIT and GODEBUG (go_settings.py). The API's
`/metrics` read twice a few seconds apart shows whether goroutines and heap grow (the real ERPGo
has no `/debug/pprof`; when one is exposed its heap and goroutine profiles are summarised). Then
the Docker host's memory (`docker info`) and, when the bot runs on that host, `/proc/meminfo`.
A container that is short of memory or leaking is proposed a restart (the guide's step 4).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bot.context import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.registry import Runbook
from bot.core.units import human_bytes, human_duration, plural
from bot.targets import NotConfigured
from bot.targets.api import HttpResult
from bot.targets.docker_models import ContainerInfo, HostInfo
from bot.targets.docker_stats import StatsSample
from bot.targets.go_metrics import GoMetrics
from runbooks.containers.actions import proposal_for, proposed
from runbooks.containers.common import docker_check, inspect_or_none, is_api, parse_container
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
    size,
    top_processes,
)
from runbooks.resources.go_settings import go_memory_settings
from runbooks.watched import ContainerArgs

runbook = Runbook("resources.memory")

LEAKS = "Application Issues › Memory Leaks"
MEMORY_ISSUES = "Infrastructure Issues › Memory Issues"
WARN_PERCENT, CRIT_PERCENT = 80.0, 90.0  # the guide: memory usage > 80 % (application), > 90 % (infrastructure)
RISING_BYTES = 1024 * 1024  # a climb over the window of at least this …
RISING_SHARE = 0.02  # … and this share of the memory used is "rising"
MIN_TREND_SECONDS = 5.0
GOROUTINES_WARN, GOROUTINES_CRIT = 1_000, 10_000
GOROUTINE_GROWTH = (10, 0.05)  # at least this many more, and this share more, between the two reads
HEAP_GROWTH = (1024 * 1024, 0.10)
FDS_WARN, FDS_CRIT = 80.0, 90.0
MEMINFO = Path("/proc/meminfo")
SAME_HOST_TOLERANCE = 0.02  # /proc/meminfo and `docker info` agree on the total within 2 %: the same machine

runbook.verb(
    "memory",
    "memory of the containers (or one) against their limits and its trend, OOM kills, GOMEMLIMIT/GOGC, "
    "goroutines and heap growth from the API's /metrics, the Docker host's memory and swap",
    usage="[container]",
    parse=parse_container,
    ack="Measuring memory (two reads of /metrics a few seconds apart)…",
)


# --- containers ---------------------------------------------------------------------------------


def trend(sample: StatsSample) -> tuple[str, bool]:
    """(how the memory used moved over the sampler's window, rising?)."""
    history = sample.memory_history
    span = history[-1][0] - history[0][0] if len(history) >= 2 else 0.0
    per_second = sample.memory_slope
    if per_second is None or span < MIN_TREND_SECONDS:
        return (
            f"no trend yet (fewer than {MIN_TREND_SECONDS:.0f} s of samples: only the watched containers are sampled in the background)",
            False,
        )
    per_minute = per_second * 60
    moved = per_second * span
    significant = abs(moved) >= max(RISING_BYTES, RISING_SHARE * (sample.memory_used or 0))
    if significant and moved > 0:
        text = f"rising {human_bytes(per_minute)}/min over the last {human_duration(span)}"
        if sample.memory_limit and sample.memory_used is not None:
            left = (sample.memory_limit - sample.memory_used) / per_second
            text += f" — at this rate it reaches its limit in about {human_duration(left)}"
        return text, True
    if significant:
        return f"falling {human_bytes(-per_minute)}/min over the last {human_duration(span)}", False
    return f"steady over the last {human_duration(span)}", False


def stopped_memory(info: ContainerInfo, component: str) -> Finding:
    state = info.state
    if state.oom_killed:
        limit = human_bytes(info.memory_limit) if info.memory_limit else "the host's memory"
        title = f"{state.status}: killed by its memory limit (OOMKilled, exit code {state.exit_code}, limit {limit})"
        return Finding.crit(component, title, data={"state": state.status, "oom_killed": True})
    return Finding.warn(
        component, not_up(info) + ": no memory to measure", data={"state": state.status, "oom_killed": False}
    )


async def container_memory(ctx: CheckContext, name: str) -> Finding:
    component = f"Memory {name}"
    info = await inspect_or_none(ctx.targets.docker, name)
    if info is None:
        return Finding.crit(component, "container not found", data={"state": "missing"})
    if not info.state.up:
        finding = stopped_memory(info, component)
        finding.proposals = proposed(proposal_for(info, finding.title))
        return finding
    sample = await ctx.targets.container_stats(name)
    used, limit = sample.memory_used or 0, sample.memory_limit or 0
    moving, rising = trend(sample)
    percent = used * 100 / limit if limit else 0.0
    limit_text = human_bytes(limit) + ("" if info.memory_limit else " (no limit: the host's memory)")
    title = f"{human_bytes(used)} of {limit_text} ({percent:.0f} %), {moving.split(' — ')[0]}"
    statuses = [percent_status(used, limit, WARN_PERCENT, CRIT_PERCENT), Status.WARN if rising else Status.OK]
    details = [f"memory used (without page cache, as `docker stats`): {human_bytes(used)} of {limit_text}", moving]
    if info.state.oom_killed:
        statuses.append(Status.WARN)
        details.append(
            "its previous run was killed by its memory limit (OOMKilled) before the restart policy started it"
        )
    if is_api(info):
        details += go_memory_settings(await ctx.targets.docker.inspect_raw(name), info.memory_limit)
    status = worst(statuses)
    proposals = []
    if status is not Status.OK:
        proposals = proposed(proposal_for(info, f"memory {title}: the guide's Memory Leaks step 4"))
    data = {
        "container": name,
        "used": used,
        "limit": limit,
        "percent": round(percent, 1),
        "slope_bytes_per_s": sample.memory_slope,
        "rising": rising,
        "oom_killed": info.state.oom_killed,
        "samples": len(sample.memory_history),
    }
    return Finding(status, component, title, details=details, proposals=proposals, data=data)


@docker_check(
    runbook, "memory", component="Memory", section=LEAKS, timeout=15, proposes=("docker.restart", "docker.start")
)
async def memory_usage(ctx: CheckContext) -> list[Finding]:
    """Step 1 of Memory Leaks: `docker stats` for each container, with its trend and OOM kills."""
    return await for_each_container(ctx, "Memory", container_memory)


@docker_check(runbook, "memory", component="Processes", section=MEMORY_ISSUES, timeout=10)
async def memory_processes(ctx: CheckContext) -> Finding | list[Finding]:
    """Memory Issues step 1, `ps aux --sort=-%mem`: the API container's processes by resident memory."""
    asked = ctx.arg(ContainerArgs).container
    info = await api_info(ctx) if not asked else None
    name = asked or (info.name if info else None)
    if name is None:
        return []
    processes = await top_processes(ctx, name, "RSS")
    if not processes:
        return Finding.skipped(f"Processes {name}", "no processes (not running)")
    lines = [process_line(p) for p in processes]
    return Finding.ok(f"Processes {name}", "by memory: " + lines[0], evidence=lines, data={"processes": processes})


# --- the Go runtime -------------------------------------------------------------------------------


def runtime_status(first: GoMetrics, second: GoMetrics) -> tuple[Status, list[str]]:
    """How worrying the two readings are, and why."""
    statuses, why = [], []
    goroutines = second.goroutines or 0
    if goroutines >= GOROUTINES_CRIT or goroutines >= GOROUTINES_WARN:
        statuses.append(Status.CRIT if goroutines >= GOROUTINES_CRIT else Status.WARN)
        why.append(f"{count(goroutines)} goroutines (≥ {count(GOROUTINES_WARN)})")
    if first.goroutines is not None and second.goroutines is not None:
        more = second.goroutines - first.goroutines
        if more >= GOROUTINE_GROWTH[0] and more >= first.goroutines * GOROUTINE_GROWTH[1]:
            statuses.append(Status.WARN)
            why.append(f"goroutines grew by {count(more)}")
    if first.heap_inuse is not None and second.heap_inuse is not None:
        more = second.heap_inuse - first.heap_inuse
        if more >= HEAP_GROWTH[0] and more >= first.heap_inuse * HEAP_GROWTH[1]:
            statuses.append(Status.WARN)
            why.append(f"heap in use grew by {human_bytes(more)}")
    if second.open_fds is not None and second.max_fds:
        status = percent_status(second.open_fds, second.max_fds, FDS_WARN, FDS_CRIT)
        if status is not Status.OK:
            statuses.append(status)
            why.append(f"{count(second.open_fds)} of {count(second.max_fds)} file descriptors open")
    return worst(statuses), why


def runtime_details(first: GoMetrics, second: GoMetrics, seconds: float) -> list[str]:
    lines = [
        f"two reads of /metrics {seconds:.1f} s apart" + (f", {second.go_version}" if second.go_version else ""),
        f"goroutines: {growth(first.goroutines, second.goroutines, count)}",
        f"heap allocated: {growth(first.heap_alloc, second.heap_alloc, size)}",
        f"heap in use: {growth(first.heap_inuse, second.heap_inuse, size)}",
        f"resident memory (RSS): {growth(first.rss, second.rss, size)}",
    ]
    if second.open_fds is not None:
        limit = f" of {count(second.max_fds)}" if second.max_fds else ""
        lines.append(f"open file descriptors: {count(second.open_fds)}{limit}")
    if None not in (first.gc_cycles, second.gc_cycles, first.gc_pause_seconds, second.gc_pause_seconds):
        cycles = (second.gc_cycles or 0) - (first.gc_cycles or 0)
        pause = (second.gc_pause_seconds or 0) - (first.gc_pause_seconds or 0)
        mean = f", mean pause {pause / cycles * 1000:.2f} ms" if cycles > 0 else ""
        lines.append(f"GC: {count(cycles)} cycles in {seconds:.1f} s{mean}")
    return lines


@runbook.check(
    "memory",
    component="Go runtime",
    section=LEAKS,
    timeout=METRICS_INTERVAL + 15,
    proposes=("docker.restart", "docker.start"),
)
async def goroutines(ctx: CheckContext) -> Finding:
    """Step 2 of Memory Leaks, from /metrics: goroutines, heap, RSS and file descriptors, and their growth."""
    pair = await metrics_pair(ctx)
    if pair is None:
        return not_exposed("Go runtime")
    first, second = pair
    if not second.is_go:
        return Finding.warn("Go runtime", "/metrics has no Go runtime metrics (go_goroutines, go_memstats_*)")
    seconds = second.read_at - first.read_at
    status, why = runtime_status(first, second)
    title = (
        f"goroutines {growth(first.goroutines, second.goroutines, count)}, "
        f"heap {growth(first.heap_inuse, second.heap_inuse, size)} in {seconds:.1f} s"
    )
    details = runtime_details(first, second, seconds)
    if why:
        details.insert(0, "why: " + "; ".join(why) + " — read again to tell a leak from a burst")
    proposals = []
    if status is not Status.OK and (info := await api_info(ctx)) is not None:
        proposals = proposed(proposal_for(info, f"the API's Go runtime: {'; '.join(why)}"))
    data = {
        "goroutines": [first.goroutines, second.goroutines],
        "heap_inuse": [first.heap_inuse, second.heap_inuse],
        "heap_alloc": [first.heap_alloc, second.heap_alloc],
        "rss": second.rss,
        "open_fds": second.open_fds,
        "max_fds": second.max_fds,
        "seconds": round(seconds, 2),
        "growing": any("grew" in reason for reason in why),
    }
    return Finding(status, "Go runtime", title, details=details, proposals=proposals, data=data)


# --- pprof, when exposed ------------------------------------------------------------------------

HEAP_HEADER = re.compile(r"heap profile: (\d+): (\d+) \[(\d+): (\d+)\]")
MEMSTAT = re.compile(r"^# (Alloc|HeapInuse|Sys|NumGC) = (\d+)", re.M)
GOROUTINE_TOTAL = re.compile(r"goroutine profile: total (\d+)")
GROUP = re.compile(r"^(\d+) @ ")
FRAME = re.compile(r"^#\s+0x[0-9a-f]+\s+(\S+)")


def heap_summary(text: str) -> list[str]:
    lines = []
    header = HEAP_HEADER.search(text)
    if header:
        objects, in_use, allocated_objects, allocated = (int(n) for n in header.groups())
        lines.append(
            f"heap profile: {human_bytes(in_use)} in {count(objects)} objects in use; "
            f"{human_bytes(allocated)} in {count(allocated_objects)} objects allocated since start"
        )
    stats = dict(MEMSTAT.findall(text))
    if stats:
        lines.append("runtime.MemStats: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return lines or ["heap profile: not in the debug=1 text form"]


def goroutine_groups(text: str, top: int = 5) -> list[tuple[int, str]]:
    """(count, the first frame outside the runtime) of the biggest goroutine groups."""
    groups: list[tuple[int, str]] = []
    current: list[str] = []
    number = 0
    for line in [*text.splitlines(), ""]:
        match = GROUP.match(line)
        if match or not line.strip():
            if number:
                outside = [f for f in current if not f.startswith(("runtime.", "internal/"))]
                groups.append((number, (outside or current or ["?"])[0]))
            number, current = (int(match.group(1)), []) if match else (0, [])
            continue
        found = FRAME.match(line)
        if found and number:
            current.append(found.group(1))
    return sorted(groups, key=lambda g: g[0], reverse=True)[:top]


def goroutine_summary(text: str) -> list[str]:
    total = GOROUTINE_TOTAL.search(text)
    lines = [f"goroutine profile: {total.group(1)} goroutines" if total else "goroutine profile: no total"]
    lines += [f"  {number} in {frame}" for number, frame in goroutine_groups(text)]
    return lines


@runbook.check("memory", component="pprof", section=LEAKS, timeout=10)
async def pprof_profiles(ctx: CheckContext) -> Finding:
    """The guide's pprof steps, when /debug/pprof is exposed: heap and goroutine?debug=1 summarised."""
    api = ctx.targets.api
    heap, stacks = await asyncio.gather(api.get("/debug/pprof/heap?debug=1"), api.get("/debug/pprof/goroutine?debug=1"))
    exposed: list[HttpResult] = [r for r in (heap, stacks) if r.status == 200]
    if not exposed:
        return Finding.skipped(
            "pprof",
            "/debug/pprof not exposed (404) — the real ERPGo has none; the Go runtime figures above come from /metrics",
            data={"exposed": False},
        )
    details = (heap_summary(heap.text) if heap.status == 200 else ["heap profile: not exposed"]) + (
        goroutine_summary(stacks.text) if stacks.status == 200 else ["goroutine profile: not exposed"]
    )
    total = GOROUTINE_TOTAL.search(stacks.text) if stacks.status == 200 else None
    goroutines_now = int(total.group(1)) if total else 0
    status = Status.WARN if goroutines_now >= GOROUTINES_WARN else Status.OK
    title = ("; ".join(line.strip() for line in details[:2]))[:200]
    return Finding(status, "pprof", title, details=details, data={"exposed": True, "goroutines": goroutines_now})


# --- the host -------------------------------------------------------------------------------------


def read_meminfo(path: Path = MEMINFO) -> dict[str, int]:
    """/proc/meminfo in bytes ({"MemTotal": …, "MemAvailable": …, "SwapTotal": …, "SwapFree": …})."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


def same_host(host: HostInfo | None, meminfo: dict[str, int]) -> bool:
    total = meminfo.get("MemTotal", 0)
    return bool(host and total and abs(host.mem_total - total) <= SAME_HOST_TOLERANCE * host.mem_total)


# The guide's Memory Issues step 3, explained: the bot acts on containers and databases, never on the host.
SWAP_IS_A_HOST_CHANGE = (
    "swap (guide: Memory Issues 3) is a change to the host, made there by hand: `fallocate -l 2G /swapfile && "
    "chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile`, plus a `/swapfile none swap sw 0 0` line in "
    "/etc/fstab to keep it; it buys time, it does not fix a leak — a container's memory limit and GOMEMLIMIT do"
)


def meminfo_finding(component: str, meminfo: dict[str, int], prefix: list[str]) -> Finding:
    total, available = meminfo.get("MemTotal", 0), meminfo.get("MemAvailable", 0)
    swap_total, swap_free = meminfo.get("SwapTotal", 0), meminfo.get("SwapFree", 0)
    used = total - available
    status = percent_status(used, total, WARN_PERCENT, CRIT_PERCENT)
    swap_used = swap_total - swap_free
    swap = f"swap {human_bytes(swap_used)} of {human_bytes(swap_total)} used" if swap_total else "no swap"
    if swap_total and swap_used > swap_total / 2:
        status = worst([status, Status.WARN])
    title = f"{human_bytes(available)} available of {human_bytes(total)} ({used * 100 / total:.0f} % used), {swap}"
    details = [*prefix, f"/proc/meminfo: MemTotal {human_bytes(total)}, MemAvailable {human_bytes(available)}, {swap}"]
    if not swap_total:
        details.append("no swap configured")
    if not swap_total or status is not Status.OK:
        details.append(SWAP_IS_A_HOST_CHANGE)
    data = {"mem_total": total, "mem_available": available, "swap_total": swap_total, "swap_used": swap_used}
    return Finding(status, component, title, details=details, data=data)


@runbook.check("memory", component="Host memory", section=MEMORY_ISSUES, timeout=10)
async def host_memory(ctx: CheckContext) -> Finding:
    """Memory Issues step 1: `free -h` / `/proc/meminfo` when the bot is on the Docker host, `docker info` always."""
    host: HostInfo | None = None
    problem = ""
    try:
        host = await ctx.targets.docker.host_info()
    except (NotConfigured, ConnectionError, TimeoutError) as exc:
        problem = str(exc)
    meminfo = read_meminfo() if MEMINFO.exists() else {}
    if host is not None:
        docker_line = (
            f"Docker host: {human_bytes(host.mem_total)} memory, {host.ncpu} CPUs, "
            f"{plural(host.containers_running, 'container')} running ({host.operating_system}, kernel {host.kernel_version})"
        )
        warnings = [f"engine warning: {w}" for w in host.warnings[:3]]
        if same_host(host, meminfo):
            return meminfo_finding("Host memory", meminfo, [docker_line, *warnings])
        return Finding.ok(
            "Host memory",
            f"Docker host: {human_bytes(host.mem_total)} memory, {host.ncpu} CPUs",
            details=[
                docker_line,
                "the bot runs on another machine: that host's free memory and swap are not visible here",
                *warnings,
            ],
            data={"mem_total": host.mem_total, "ncpu": host.ncpu},
        )
    if meminfo:
        return meminfo_finding(
            "Host memory", meminfo, [f"the Docker host is not known ({problem}): this is the bot's own machine"]
        )
    return Finding.skipped("Host memory", f"neither the Docker host ({problem}) nor /proc/meminfo is readable")


# --- the trend -------------------------------------------------------------------------------------


@runbook.check("memory", component="Memory trend", section=LEAKS, timeout=15)
async def memory_trend(ctx: CheckContext) -> Finding:
    """Memory used over time: the processes' resident memory in Prometheus, else the Docker stats sampled."""
    sampled = trends.sampled_series(ctx, lambda sample: sample.memory_history)
    return await trends.trend(ctx, "Memory trend", "memory used", "process_resident_memory_bytes", sampled, human_bytes)


runbook.triage_for(
    "HighMemoryUsage",
    "CriticalMemoryUsage",
    "HighMemoryUsageSystem",
    checks=("memory_usage", "goroutines", "pprof_profiles", "host_memory", "memory_processes"),
)
runbook.triage_for("HighGoroutineCount", "CriticalGoroutineCount", checks=("goroutines", "pprof_profiles"))
