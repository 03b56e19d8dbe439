"""Helpers for the database runbook tests: run a verb's checks against a DSN, pick findings, wait
for a session to reach a state."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

from bot.core.findings import Finding
from bot.settings import Settings, load_settings
from tests import harness
from tests.support import eventually

registry = harness.registry


def settings_for(dsn: str | None, **settings) -> Settings:
    if dsn is not None:
        settings["erpgo_database_url"] = dsn
    return load_settings(**settings)


async def run_verb(words: str, dsn: str | None, **settings) -> list[Finding]:
    """The findings `/erpgo <words>` would post, without Slack."""
    return await harness.run_words(words, settings_for(dsn, **settings))


async def remediate(action: str, dsn: str, **args) -> str:
    """Run a remediation as the approval engine does once someone approved it."""
    return await harness.remediate(action, settings_for(dsn), **args)


def one(findings: list[Finding], component: str) -> Finding:
    matching = [f for f in findings if f.component == component]
    assert len(matching) == 1, f"expected one {component!r} finding in {[f.component for f in findings]}"
    return matching[0]


def text_of(finding: Finding) -> str:
    return "\n".join([finding.title, *finding.details, *finding.evidence])


async def wait_until(conn: asyncpg.Connection, sql: str, *args, timeout: float = 10.0):
    """Poll the server until `sql` returns a true value (e.g. a session is waiting on a lock)."""
    return await eventually(lambda: conn.fetchval(sql, *args), timeout=timeout, what=sql)


async def flush_stats(conn: asyncpg.Connection) -> None:
    """Make this backend publish its table and database statistics now (PostgreSQL 15+), not within a second."""
    await conn.execute("SELECT pg_stat_force_next_flush()")


class Blocking:
    """A real lock wait: `blocker` holds a row lock and sits idle in transaction (or runs a query
    while holding it, with active=True); `waiter` UPDATEs the same row and waits."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.blocker: asyncpg.Connection | None = None
        self.waiter: asyncpg.Connection | None = None
        self.update: asyncio.Task | None = None
        self.blocker_query: asyncio.Task | None = None
        self.blocker_pid = self.waiter_pid = 0
        self.backend_start: datetime | None = None

    async def start(self, *, active: bool = False) -> Blocking:
        admin = await asyncpg.connect(self.dsn)
        try:
            await admin.execute(
                "CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, balance int NOT NULL);"
                "INSERT INTO accounts VALUES (1, 100) ON CONFLICT DO NOTHING"
            )
        finally:
            await admin.close()
        self.blocker = await asyncpg.connect(self.dsn, server_settings={"application_name": "billing-worker"})
        self.blocker_pid = self.blocker.get_server_pid()
        await self.blocker.execute("BEGIN")
        await self.blocker.execute("SELECT * FROM accounts WHERE id = 1 FOR UPDATE")
        if active:  # still holding the lock, now busy with a long statement
            self.blocker_query = asyncio.create_task(self.blocker.execute("SELECT pg_sleep(60)"))
        self.waiter = await asyncpg.connect(self.dsn, server_settings={"application_name": "erpgo-api"})
        self.waiter_pid = self.waiter.get_server_pid()
        self.update = asyncio.create_task(self.waiter.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1"))
        self.backend_start = await eventually(self._waiting, what="the UPDATE to wait for the lock")
        if active:
            await eventually(self._blocker_active, what="the blocker's query to start")
        return self

    async def _probe(self, sql: str, *args):
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def _waiting(self):
        return await self._probe(
            "SELECT b.backend_start FROM pg_stat_activity b WHERE b.pid = $1"
            " AND $1 = ANY (SELECT unnest(pg_blocking_pids($2)))",
            self.blocker_pid,
            self.waiter_pid,
        )

    async def _blocker_active(self):
        return await self._probe(
            "SELECT state = 'active' AND query LIKE '%pg_sleep%' FROM pg_stat_activity WHERE pid = $1", self.blocker_pid
        )

    async def blocker_alive(self) -> bool:
        return bool(await self._probe("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", self.blocker_pid))

    async def update_finished(self, timeout: float = 5.0) -> str:
        return await asyncio.wait_for(asyncio.shield(self.update), timeout)

    async def close(self) -> None:
        for task in (self.update, self.blocker_query):
            if task is not None and not task.done():
                task.cancel()
        for conn in (self.blocker, self.waiter):
            if conn is not None and not conn.is_closed():
                conn.terminate()
        for task in (self.update, self.blocker_query):
            if task is not None:
                try:
                    await task
                except BaseException:
                    pass
