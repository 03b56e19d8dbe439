"""Guide: "Performance Issues › High Response Times" — `/erpgo perf`.

The API's latency over several samples (p50 / p95 against the guide's 5 seconds) and its database
connection pool under them (from `/health`'s pool stats), the slowest statements by mean time
(the guide's `mean_time > 1000` query, through runbooks/database/statements.py), and the cache:
Redis's hit rate judged (below 80 % is a warning) and its latency.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.registry import Runbook
from bot.core.series import Chart, Series, describe
from bot.core.units import human_bytes
from runbooks.database.common import PERFORMANCE, SLOW_MEAN_CRIT_MS, SLOW_MEAN_WARN_MS, db_check, db_connection
from runbooks.database.statements import (
    application_statements,
    statement_dict,
    statement_line,
    statements_source,
    statements_sql,
)
from runbooks.quick import describe_pool, percent_status
from runbooks.resources import trends

runbook = Runbook("performance")

SECTION = "Performance Issues › High Response Times"
CACHE = "Performance Issues › High Response Times › Cache Performance"
SAMPLES = 5
SLOW_MS, WARN_MS = 5000.0, 1000.0  # the guide: "API responses > 5 seconds"; a fifth of that is worth a look
HIT_RATE_WARN = 80.0
MIN_LOOKUPS = 20  # fewer keyspace lookups than this say nothing about a hit rate
PING_WARN_MS, PING_CRIT_MS = 10.0, 100.0
POOL_WARN, POOL_CRIT = 80.0, 90.0  # the guide: connection pool usage > 90 %
SHOWN = 5

runbook.verb(
    "perf",
    "response times (p50/p95 over several samples vs 5 s), the API's DB pool, the slowest statements, "
    "Redis hit rate and latency",
    ack="Sampling response times…",
)


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt_ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


# --- the API ------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # unix seconds it was sent
    ms: float
    status: int | None  # None: no answer within the timeout
    pool: dict[str, Any] | None
    query_ns: float | None  # the database query latency /health itself measured


def pool_of(body: Any) -> tuple[dict[str, Any] | None, float | None]:
    database = ((body or {}).get("checks") or {}).get("database") if isinstance(body, dict) else None
    if not isinstance(database, dict):
        return None, None
    pool = (database.get("details") or {}).get("pool_stats")
    query = ((database.get("checks") or {}).get("query") or {}).get("latency")
    return (pool if isinstance(pool, dict) else None), (float(query) if isinstance(query, (int, float)) else None)


async def sample_health(ctx: CheckContext) -> Sample:
    sent, started = time.time(), time.perf_counter()
    try:
        result = await ctx.targets.api.get("/health")
    except TimeoutError:
        return Sample(sent, (time.perf_counter() - started) * 1000, None, None, None)
    pool, query = pool_of(result.json)
    return Sample(sent, result.elapsed_ms, result.status, pool, query)


def latency_finding(samples: list[Sample], timeout: float) -> Finding:
    answered = [s.ms for s in samples if s.status is not None]
    timeouts = len(samples) - len(answered)
    errors = sum(1 for s in samples if s.status is not None and s.status >= 500)
    times = [s.ms for s in samples]
    p50, p95 = percentile(times, 50), percentile(times, 95)
    status = Status.CRIT if p95 >= SLOW_MS or timeouts else Status.WARN if p95 >= WARN_MS else Status.OK
    if errors:
        status = worst([status, Status.CRIT if errors == len(samples) else Status.WARN])
    title = f"GET /health p50 {fmt_ms(p50)}, p95 {fmt_ms(p95)} over {len(samples)} samples (slow: > 5 s)"
    details = [
        "each sample: "
        + ", ".join(fmt_ms(s.ms) + ("" if s.status == 200 else f" ({s.status or 'timeout'})") for s in samples),
        "/health is the API's cheapest request: what it takes, every request takes at least",
    ]
    details.append(describe(latency_series(samples), fmt_ms))
    if timeouts:
        details.append(f"{timeouts} without an answer within {timeout:g} s")
    if errors:
        details.append(f"{errors} answered 5xx: see `/erpgo health` and `/erpgo logs`")
    queries = [s.query_ns for s in samples if s.query_ns is not None]
    if queries:
        details.append(f"its own database query check took {fmt_ms(percentile(queries, 50) / 1e6)} (p50, from /health)")
    data = {
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "samples_ms": [round(t, 2) for t in times],
        "timeouts": timeouts,
    }
    return Finding(status, "API latency", title, details=details, data=data)


def pool_finding(samples: list[Sample]) -> Finding:
    pools = [s.pool for s in samples if s.pool]
    if not pools:
        return Finding.skipped("API DB pool", "no pool_stats in /health's database check", data={"pool": None})
    busiest = max(pools, key=lambda p: (p.get("acquired_conns") or 0, p.get("constructing_conns") or 0))
    acquired, limit = busiest.get("acquired_conns") or 0, busiest.get("max_conns") or 0
    status = percent_status(acquired, limit, POOL_WARN, POOL_CRIT)
    share = f" ({acquired * 100 / limit:.0f} %)" if limit else ""
    title = f"at most {acquired}/{limit} connections acquired{share} over {len(pools)} samples"
    details = [f"busiest sample: {describe_pool(busiest)}"]
    if busiest.get("constructing_conns"):
        details.append("connections being opened: the pool is growing or reconnecting")
    if status is not Status.OK:
        details.append("a full pool makes every request queue for a connection: `/erpgo db connections`")
    return Finding(status, "API DB pool", title, details=details, data={"pool": busiest})


@runbook.check("perf", component="API latency", section=SECTION, timeout=60)
async def api_latency(ctx: CheckContext) -> list[Finding]:
    """Several requests one after another: their p50 and p95, and the DB pool they saw."""
    timeout = ctx.settings.erpgo_check_timeout
    samples: list[Sample] = []
    for _ in range(SAMPLES):
        samples.append(await sample_health(ctx))
        if sum(1 for s in samples if s.status is None) >= 2:
            break  # two timeouts say enough; no need to wait for more
    latency = latency_finding(samples, timeout)
    if not ctx.settings.prometheus_url:  # with Prometheus, perf_trend charts its series instead
        latency.chart = Chart(
            title="GET /health response time, ms (sampled by the bot)", series=[latency_series(samples)]
        )
    return [latency, pool_finding(samples)]


def latency_series(samples: list[Sample]) -> Series:
    return Series("GET /health", [(s.at, s.ms) for s in samples])


@runbook.check("perf", component="Response time trend", section=SECTION, timeout=15)
async def perf_trend(ctx: CheckContext) -> list[Finding]:
    """With Prometheus: how long each target took to answer its scrapes over the last hour (the API's
    /metrics among them); without, the API latency finding charts the bot's own samples."""
    if not ctx.settings.prometheus_url:
        return []
    return [
        await trends.trend(ctx, "Response time trend", "scrape time, ms", "scrape_duration_seconds * 1000", [], fmt_ms)
    ]


# --- the database ---------------------------------------------------------------------------------


@db_check(runbook, "perf", component="PostgreSQL statements", section=PERFORMANCE)
async def slowest_statements(ctx: CheckContext) -> Finding:
    """The guide's step 2: statements whose mean time exceeds a second, slowest first."""
    async with db_connection(ctx) as conn:
        source = await statements_source(conn)
        if not source.available:
            return Finding.warn(
                "PostgreSQL statements",
                "pg_stat_statements unavailable — " + source.problem,
                data={"pg_stat_statements": False},
            )
        rows = application_statements(await conn.fetch(statements_sql(source, "mean")))
    if not rows:
        return Finding.ok("PostgreSQL statements", "no statements recorded yet", data={"slow": 0})
    slow = [row for row in rows if (row["mean_ms"] or 0) >= SLOW_MEAN_WARN_MS]
    slowest = rows[0]["mean_ms"] or 0.0
    status = Status.CRIT if slowest >= SLOW_MEAN_CRIT_MS else Status.WARN if slow else Status.OK
    if slow:
        title = f"{len(slow)} statements average ≥ 1 s; the slowest {fmt_ms(slowest)}"
    else:
        title = f"no statement averages ≥ 1 s (the slowest: {fmt_ms(slowest)})"
    return Finding(
        status,
        "PostgreSQL statements",
        title,
        details=["`db slow` ranks them fully; `db explain <queryid>` shows a plan"],
        evidence=[statement_line(row) for row in (slow or rows)[:SHOWN]],
        data={"slow": len(slow), "statements": [statement_dict(row) for row in rows[:SHOWN]]},
    )


# --- the cache ------------------------------------------------------------------------------------


def hit_rate_text(hits: int, misses: int) -> tuple[float | None, str]:
    lookups = hits + misses
    if not lookups:
        return None, "no lookups yet"
    rate = hits * 100 / lookups
    return rate, f"{rate:.1f} % ({hits} hits, {misses} misses)"


@runbook.check("perf", component="Redis", section=CACHE)
async def cache_performance(ctx: CheckContext) -> Finding:
    """The guide's step 3: Redis's hit rate (warn below 80 %), its memory and evictions, and PING latency."""
    client = ctx.targets.redis.client
    pings = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await client.ping()
        pings.append((time.perf_counter() - started) * 1000)
    stats, memory = await client.info("stats"), await client.info("memory")
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    rate, rate_text = hit_rate_text(hits, misses)
    ping_p50 = percentile(pings, 50)
    statuses = [Status.CRIT if ping_p50 >= PING_CRIT_MS else Status.WARN if ping_p50 >= PING_WARN_MS else Status.OK]
    judged = rate is not None and hits + misses >= MIN_LOOKUPS
    if judged and rate is not None and rate < HIT_RATE_WARN:
        statuses.append(Status.WARN)
    used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    evicted = int(stats.get("evicted_keys", 0))
    details = [
        f"hit rate: {rate_text}" + ("" if judged else f" — too few lookups (< {MIN_LOOKUPS}) to judge"),
        f"PING: p50 {fmt_ms(ping_p50)}, max {fmt_ms(max(pings))} over {len(pings)}",
        f"memory {human_bytes(used)}"
        + (f" of maxmemory {human_bytes(limit)}" if limit else " (no maxmemory)")
        + f", policy {memory.get('maxmemory_policy', '?')}",
        f"evicted keys {evicted}, expired keys {stats.get('expired_keys', 0)}",
    ]
    if judged and rate is not None and rate < HIT_RATE_WARN:
        details.append(
            "below 80 %: most reads miss the cache and go to the database"
            + (" — keys are being evicted: maxmemory may be too small" if evicted else "")
        )
    title = f"hit rate {rate_text.split(' (')[0]}, PING {fmt_ms(ping_p50)}" if rate is not None else ""
    title = title or f"no cache lookups yet, PING {fmt_ms(ping_p50)}"
    if judged and rate is not None and rate < HIT_RATE_WARN:
        title = f"hit rate {rate:.1f} % is below 80 %, PING {fmt_ms(ping_p50)}"
    data = {"hit_rate": rate, "hits": hits, "misses": misses, "ping_ms": round(ping_p50, 3), "evicted_keys": evicted}
    return Finding(worst(statuses), "Redis", title, details=details, data=data)


runbook.triage_for(
    "HighResponseTime",
    "CriticalResponseTime",
    "SLAViolationResponseTime",
    checks=("api_latency", "slowest_statements", "cache_performance"),
)
