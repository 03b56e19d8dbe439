"""`/erpgo perf` against the simulator, a real PostgreSQL with pg_stat_statements and a real Redis:
latency samples against the guide's 5 s, pool pressure, a statement slower than a second, a cache
that mostly misses."""

from __future__ import annotations

import time

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.core.findings import Status
from demo.services import RedisServer
from tests.db_support import one, run_verb


async def test_a_slow_statement_and_a_missing_cache_are_judged(simulator, fresh_database, tmp_path):
    dsn = fresh_database("perf")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        await conn.execute("SELECT pg_sleep(1.05)")
        await conn.fetch("SELECT 1 AS quick")
    finally:
        await conn.close()
    cache = RedisServer(tmp_path / "redis")
    cache.start()
    try:
        client = aioredis.from_url(cache.url)
        await client.set("product:1", "x")
        for key in ["product:1"] * 5 + [f"product:{n}" for n in range(2, 47)]:
            await client.get(key)
        await client.aclose()

        findings = await run_verb("perf", dsn, erpgo_api_url=simulator.url, erpgo_redis_url=cache.url)
    finally:
        cache.cleanup()

    latency = one(findings, "API latency")
    assert latency.status is Status.OK and latency.title.startswith("GET /health p50 ")
    assert "over 5 samples (slow: > 5 s)" in latency.title and len(latency.data["samples_ms"]) == 5
    [sparkline] = [line for line in latency.details if line.startswith(tuple("▁▂▃▄▅▆▇█"))]
    assert "GET /health — min " in sparkline and " · last " in sparkline, "the samples' shape in the message"
    assert latency.chart is not None and len(latency.chart.series[0].points) == 5, "no Prometheus: the bot's samples"
    pool = one(findings, "API DB pool")
    assert pool.status is Status.OK and pool.title == "at most 1/20 connections acquired (5 %) over 5 samples"
    statements = one(findings, "PostgreSQL statements")
    assert statements.status is Status.WARN
    assert statements.title.startswith("1 statements average ≥ 1 s; the slowest 1.0")
    assert any("pg_sleep" in line for line in statements.evidence)
    assert statements.section == "Performance Issues › High Response Times › Database Performance"
    cached = one(findings, "Redis")
    assert cached.status is Status.WARN
    assert cached.title.startswith("hit rate 10.0 % is below 80 %, PING ")
    assert "hit rate: 10.0 % (5 hits, 45 misses)" in cached.details
    assert cached.section == "Performance Issues › High Response Times › Cache Performance"


async def test_a_full_pool_then_an_api_slower_than_the_timeout(simulator):
    simulator.app["sim"].update({"pool": {"acquired_conns": 19}})
    findings = await run_verb("perf", None, erpgo_api_url=simulator.url)
    pool = one(findings, "API DB pool")
    assert pool.status is Status.CRIT and pool.title.startswith("at most 19/20 connections acquired (95 %)")
    assert one(findings, "PostgreSQL statements").title == "not configured (set ERPGO_DATABASE_URL)"
    assert one(findings, "Redis").status is Status.SKIPPED

    simulator.app["sim"].update({"delay": 1.5})
    started = time.monotonic()
    findings = await run_verb("perf", None, erpgo_api_url=simulator.url, erpgo_check_timeout=1)
    assert time.monotonic() - started < 3.5, "two timeouts are enough: no five"
    latency = one(findings, "API latency")
    assert latency.status is Status.CRIT and latency.data["timeouts"] == 2
    assert "2 without an answer within 1 s" in latency.details
    assert one(findings, "API DB pool").status is Status.SKIPPED


# --- 500 Errors 4, Monitoring M1: the error rate from /metrics ---------------------------------------


@pytest.fixture
async def counting_api():
    """An API whose /metrics exports http_requests_total, as the guide expects: each read adds 90 answers
    of 200 and 10 of 500 — an error rate of 10 % between any two reads."""
    reads = {"n": 0}

    async def metrics(request: web.Request) -> web.Response:
        reads["n"] += 1
        ok, failed = 90 * reads["n"], 10 * reads["n"]
        text = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{method="GET",status="200"}} {ok}\n'
            f'http_requests_total{{method="POST",status="500"}} {failed}\n'
            "# TYPE go_goroutines gauge\ngo_goroutines 12\n"
        )
        return web.Response(text=text, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_the_error_rate_is_a_percentage_of_the_requests_between_two_reads(counting_api):
    rate = one(await run_verb("perf", None, erpgo_api_url=counting_api), "Error rate")
    assert rate.status is Status.CRIT and rate.data["percent"] == pytest.approx(10.0)
    assert rate.title.startswith("10.0 % of requests answered 5xx (10 of 100 in ")
    assert "by status: 200 ×90, 500 ×10" in rate.details


async def test_an_api_without_http_requests_total_says_so(simulator):
    rate = one(await run_verb("perf", None, erpgo_api_url=simulator.url), "Error rate")
    assert rate.status is Status.SKIPPED
    assert rate.title == "/metrics exports no http_requests_total: the error rate cannot be measured there"
    assert any("`/erpgo logs`" in line for line in rate.details)
