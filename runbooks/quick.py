"""Guide: "Quick Diagnostics" — health endpoints, PostgreSQL, Redis and the Docker containers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import cast

from bot.context import CheckContext
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, Status, worst
from bot.core.registry import Runbook
from bot.core.units import human_bytes, human_duration
from bot.targets import Targets
from bot.targets.api import HttpResult
from bot.targets.docker import ContainerNotFound, translated
from bot.targets.docker_models import parse_time

runbook = Runbook("health")

SECTION = "Quick Diagnostics › Health Check Endpoints"
runbook.verb("health", "API health endpoints, PostgreSQL, Redis and the ERPGo containers", ack="Running health checks…")

SUB_ENDPOINTS = ("/health/detailed", "/health/database", "/health/cache")
ERPGO_HEALTHY = {"healthy", "ok", "up", "pass"}
ERPGO_DEGRADED = {"degraded", "warn", "warning"}


def percent_status(used: float, limit: float, warn_at: float = 80, crit_at: float = 90) -> Status:
    if not limit:
        return Status.OK
    pct = used * 100 / limit
    return Status.CRIT if pct >= crit_at else Status.WARN if pct >= warn_at else Status.OK


# --- ERPGo API -------------------------------------------------------------------------------


def erpgo_status(value: object) -> Status:
    text = str(value or "").lower()
    if text in ERPGO_HEALTHY:
        return Status.OK
    if text in ERPGO_DEGRADED:
        return Status.WARN
    return Status.CRIT


def describe_health_checks(checks: dict, indent: str = "") -> tuple[list[str], list[Status]]:
    """One line per (nested) check of the real /health shape, latencies in ns shown as ms."""
    lines, statuses = [], []
    for name, check in checks.items():
        if not isinstance(check, dict):
            continue
        status = erpgo_status(check.get("status"))
        statuses.append(status)
        latency = check.get("latency")
        latency_text = f" ({latency / 1e6:.2f} ms)" if isinstance(latency, (int, float)) else ""
        message = check.get("message") or ""
        lines.append(
            f"{indent}{status.emoji} {name}: {check.get('status', '?')}{latency_text}"
            + (f" — {message}" if message else "")
        )
        pool = (check.get("details") or {}).get("pool_stats")
        if isinstance(pool, dict):
            lines.append(f"{indent}    pool: {describe_pool(pool)}")
            statuses.append(percent_status(pool.get("acquired_conns", 0), pool.get("max_conns", 0)))
        nested = check.get("checks")
        if isinstance(nested, dict):
            nested_lines, nested_statuses = describe_health_checks(nested, indent + "    ")
            lines += nested_lines
            statuses += nested_statuses
    return lines, statuses


def describe_pool(pool: dict) -> str:
    return (
        f"{pool.get('acquired_conns', '?')}/{pool.get('max_conns', '?')} acquired, "
        f"{pool.get('idle_conns', '?')} idle, {pool.get('total_conns', '?')} open, "
        f"{pool.get('constructing_conns', 0)} connecting"
    )


def health_finding(result: HttpResult) -> Finding:
    component = "ERPGo API"
    body = result.json
    if body is None:
        return Finding.crit(
            component,
            f"GET /health answered {result.status} with a body that is not JSON",
            evidence=[result.text[:300]],
            data={"http_status": result.status},
        )
    if not isinstance(body, dict) or "status" not in body:
        return Finding.warn(
            component,
            f"GET /health answered {result.status} in an unexpected shape",
            evidence=[result.text[:300]],
            data={"http_status": result.status},
        )
    lines, statuses = describe_health_checks(body.get("checks") or {})
    overall = erpgo_status(body.get("status"))
    if result.status >= 500:
        overall = Status.CRIT
    status = worst([overall, *statuses])
    failing = [line.strip() for line in lines if not line.strip().startswith(Status.OK.emoji) and "pool:" not in line]
    title = f"{body.get('status')} (HTTP {result.status}, {result.elapsed_ms:.0f} ms)"
    if failing and status is not Status.OK:
        title += " — " + failing[0].split(" ", 1)[1]
    version = body.get("version")
    details = ([f"version {version}"] if version else []) + lines
    return Finding(status, component, title, details=details, data={"http_status": result.status, "body": body})


async def fetch_optional(ctx: CheckContext, path: str) -> str:
    try:
        result = await ctx.targets.api.get(path)
    except Exception as exc:  # the sub-endpoints are extras: their failure is a detail line
        return f"{path}: failed ({type(exc).__name__})"
    if result.status == 404:
        return f"{path}: not exposed"
    state = result.json.get("status") if isinstance(result.json, dict) else None
    return f"{path}: HTTP {result.status}" + (f", {state}" if state else "") + f" ({result.elapsed_ms:.0f} ms)"


@runbook.check("health", component="ERPGo API", section=SECTION)
async def api_health(ctx: CheckContext) -> Finding:
    api = ctx.targets.api
    main, *extras = await asyncio.gather(
        api.get("/health"), *(fetch_optional(ctx, path) for path in SUB_ENDPOINTS), return_exceptions=True
    )
    if isinstance(main, BaseException):
        raise main
    finding = health_finding(cast(HttpResult, main))
    finding.details += [line for line in extras if isinstance(line, str)]
    return finding


# --- PostgreSQL --------------------------------------------------------------------------------

PG_OVERVIEW = """
SELECT current_setting('server_version') AS version,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active') AS active,
       pg_database_size(current_database()) AS database_size,
       current_database() AS database
"""


@runbook.check("health", component="PostgreSQL", section="Database Issues › Database Connection Issues")
async def postgres_health(ctx: CheckContext) -> Finding:
    pg = ctx.targets.pg
    started = time.perf_counter()
    async with pg.connect() as conn:
        connect_ms = (time.perf_counter() - started) * 1000
        row = await conn.fetchrow(PG_OVERVIEW)
    used, limit = row["connections"], row["max_connections"]
    status = percent_status(used, limit)
    title = f"PostgreSQL {row['version']}: {used}/{limit} connections ({used * 100 / limit:.0f} %), connect {connect_ms:.0f} ms"
    details = [
        f"connect time: {connect_ms:.1f} ms",
        f"connections: {used} of max_connections {limit} ({row['active']} active, {row['reserved']} reserved for superusers)",
        f"database {row['database']}: {human_bytes(row['database_size'])}",
    ]
    data = dict(row.items()) | {"connect_ms": round(connect_ms, 2)}
    return Finding(status, "PostgreSQL", title, details=details, data=data)


# --- Redis ------------------------------------------------------------------------------------


@runbook.check("health", component="Redis", section="Performance Issues › High Response Times › Cache Performance")
async def redis_health(ctx: CheckContext) -> Finding:
    client = ctx.targets.redis.client
    started = time.perf_counter()
    await client.ping()
    ping_ms = (time.perf_counter() - started) * 1000
    info = await client.info()
    used, maxmemory = info.get("used_memory", 0), info.get("maxmemory", 0)
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    hit_rate = hits * 100 / (hits + misses) if hits + misses else None
    status = percent_status(used, maxmemory)
    memory = f"{human_bytes(used)} of {human_bytes(maxmemory)}" if maxmemory else f"{human_bytes(used)} (no maxmemory)"
    hit_text = f"{hit_rate:.1f} %" if hit_rate is not None else "n/a (no lookups yet)"
    title = f"Redis {info.get('redis_version', '?')}: PING {ping_ms:.1f} ms, memory {memory}, hit rate {hit_text}"
    details = [
        f"PING latency: {ping_ms:.2f} ms",
        f"memory: {memory}",
        f"hit rate: {hit_text} ({hits} hits, {misses} misses)",
        f"connected clients: {info.get('connected_clients', '?')}",
    ]
    data = {
        "ping_ms": round(ping_ms, 2),
        "used_memory": used,
        "maxmemory": maxmemory,
        "hit_rate": hit_rate,
        "connected_clients": info.get("connected_clients"),
    }
    return Finding(status, "Redis", title, details=details, data=data)


# --- Docker -----------------------------------------------------------------------------------


def uptime_seconds(started_at: str) -> float | None:
    try:
        started = datetime.fromisoformat(started_at[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None
    return (datetime.now(UTC) - started).total_seconds()


ONE_SHOT_POLICIES = ("", "no", "on-failure")  # policies under which an exit 0 stays exited, by design


def completed(info: dict) -> bool:
    """A one-shot container (a migrator: restart policy `no`) that exited 0 has done its job."""
    state = info.get("State") or {}
    policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or ""
    return state.get("Status") == "exited" and state.get("ExitCode") == 0 and policy in ONE_SHOT_POLICIES


def finished_ago(finished_at: str | None) -> str:
    moment = parse_time(finished_at)
    if moment is None:
        return "at an unknown time"
    return human_duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


async def inspect_container(name: str, targets: Targets) -> Finding:
    component = f"Docker {name}"
    try:
        info = await targets.docker.inspect_raw(name)
    except ContainerNotFound:
        return Finding.crit(component, "container not found", data={"state": "missing"})
    state = info.get("State") or {}
    status_text = state.get("Status", "unknown")
    health = (state.get("Health") or {}).get("Status")
    restarts = info.get("RestartCount", 0)
    data = {"state": status_text, "health": health, "restart_count": restarts}
    if completed(info):
        data["state"] = "completed"
        title = f"completed (exit code 0, a one-shot container), finished {finished_ago(state.get('FinishedAt'))}"
        return Finding.ok(component, title, data=data)
    if status_text != "running":
        title = f"{status_text} (exit code {state.get('ExitCode')}), {restarts} restarts"
        return Finding.crit(component, title, details=[f"finished at {state.get('FinishedAt')}"], data=data)
    sample = await targets.container_stats(name)  # the background sample: no wait for the engine's tick
    cpu, mem_used, mem_limit = sample.cpu_percent, sample.memory_used, sample.memory_limit
    uptime = uptime_seconds(state.get("StartedAt", ""))
    status = Status.OK
    if health == "unhealthy":
        status = Status.CRIT
    elif health == "starting" or restarts > 0:
        status = Status.WARN
    parts = [
        f"running{f' ({health})' if health else ''}",
        f"up {human_duration(uptime)}" if uptime is not None else None,
        f"{restarts} restarts",
        f"CPU {cpu:.1f} %" if cpu is not None else None,
        f"mem {human_bytes(mem_used)}" if mem_used is not None else None,
    ]
    data |= {"cpu_percent": cpu, "memory_usage": mem_used, "memory_limit": mem_limit, "uptime_s": uptime}
    return Finding(status, component, ", ".join(p for p in parts if p), data=data)


@runbook.check("health", component="Docker", section="Quick Diagnostics › Docker Environment Diagnostics")
async def docker_containers(ctx: CheckContext) -> list[Finding]:
    await ctx.targets.docker.version()  # one clear failure ("unreachable") when the engine itself is down
    watched = await ctx.targets.watched()
    if not watched.containers:
        return [Finding.crit("Docker", f"no containers in {watched.source}", data={"project": watched.project})]
    names = watched.names
    results = await asyncio.gather(*(inspect_container(name, ctx.targets) for name in names), return_exceptions=True)
    findings = []
    for name, result in zip(names, results, strict=False):
        if isinstance(result, BaseException):
            error = translated(result, name)
            result = (
                Finding.crit(f"Docker {name}", "unreachable — " + describe_error(error))
                if is_unreachable(error)
                else Finding.error(f"Docker {name}", describe_error(error))
            )
        result.data["service"] = watched.service_of(name)
        findings.append(result)
    return findings
