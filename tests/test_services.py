"""The service fixtures give real, working services (not mocks)."""

from __future__ import annotations

import asyncio
import uuid

import aiodocker
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from demo.services import free_port


async def test_postgres_runs_queries_and_tracks_statements(postgres_server):
    database = f"t_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    conn = await asyncpg.connect(postgres_server.dsn(database))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        assert await conn.fetchval("SELECT $1::int AS probe", 42) == 42
        # PostgreSQL 13+ names the timing columns *_exec_time.
        calls = await conn.fetchval(
            "SELECT sum(calls) FROM pg_stat_statements WHERE query = $1 AND mean_exec_time >= 0",
            "SELECT $1::int AS probe",
        )
        assert calls >= 1
    finally:
        await conn.close()


async def test_postgres_shows_a_real_lock_wait(postgres_server):
    dsn = postgres_server.dsn()
    holder, waiter = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        table = f"locked_{uuid.uuid4().hex[:8]}"
        await holder.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int);INSERT INTO {table} VALUES (1, 0)")
        holding = holder.transaction()
        await holding.start()
        await holder.execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
        blocked = asyncio.create_task(waiter.execute(f"UPDATE {table} SET n = 1 WHERE id = 1"))
        blocker_pid = holder.get_server_pid()
        for _ in range(100):
            blockers = await holder.fetchval("SELECT pg_blocking_pids($1)", waiter.get_server_pid())
            if blockers:
                break
            await asyncio.sleep(0.05)
        assert blockers == [blocker_pid]
        await holding.rollback()
        await asyncio.wait_for(blocked, 5)
    finally:
        await holder.close()
        await waiter.close()


async def test_redis_answers(redis_server):
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
        await client.set("erpgo:test", "ok", ex=10)
        assert await client.get("erpgo:test") == b"ok"
    finally:
        await client.aclose()


async def test_docker_container_logs_are_readable(docker_engine):
    name = f"logs-{uuid.uuid4().hex[:8]}"
    docker_engine.run(name, "echo 'GET /api/v1/products 200 12ms'; echo 'panic: runtime error' >&2; sleep 30")
    docker = aiodocker.Docker(url=docker_engine.host)
    try:
        container = await docker.containers.get(name)
        lines: list[str] = []
        for _ in range(100):
            lines = await container.log(stdout=True, stderr=True)
            if len(lines) >= 2:
                break
            await asyncio.sleep(0.05)
        text = "".join(lines)
        assert "GET /api/v1/products 200" in text
        assert "panic: runtime error" in text
        assert (await container.show())["State"]["Running"] is True
    finally:
        await docker.close()
        docker_engine.remove(name)


async def test_alertmanager_posts_to_the_webhook_with_the_bearer_token(alertmanager_factory):
    received: asyncio.Queue = asyncio.Queue()

    async def webhook(request: web.Request) -> web.Response:
        await received.put((request.headers.get("Authorization"), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        manager = await asyncio.to_thread(alertmanager_factory, f"http://127.0.0.1:{port}/alerts", "webhook-token")
        labels = {"alertname": "ErpgoApiDown", "severity": "critical"}
        await asyncio.to_thread(manager.fire, labels, {"summary": "erpgo-api is down"})
        authorization, payload = await asyncio.wait_for(received.get(), 15)
        assert authorization == "Bearer webhook-token"
        assert payload["version"] == "4" and payload["status"] == "firing"
        assert payload["alerts"][0]["labels"] == labels
        assert payload["alerts"][0]["fingerprint"]

        await asyncio.to_thread(manager.resolve, labels)
        _, payload = await asyncio.wait_for(received.get(), 15)
        assert payload["status"] == "resolved"
    finally:
        await runner.cleanup()
