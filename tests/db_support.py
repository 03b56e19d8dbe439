"""Helpers for the database runbook tests: run a verb's checks against a DSN, pick findings, wait
for a session to reach a state."""

from __future__ import annotations

import asyncpg

from bot.app import build_registry
from bot.core.engine import CheckContext, run_checks
from bot.core.findings import Finding
from bot.settings import load_settings
from bot.targets import Targets
from tests.support import eventually

registry = build_registry()


def context(dsn: str | None, **settings) -> tuple[CheckContext, Targets]:
    if dsn is not None:
        settings["erpgo_database_url"] = dsn
    loaded = load_settings(**settings)
    targets = Targets(loaded)
    return CheckContext(targets, loaded, {"requester": "U0TEST"}), targets


async def run_verb(verb: str, dsn: str | None, params: dict | None = None, **settings) -> list[Finding]:
    """The findings `/erpgo <verb>` would post, without Slack."""
    ctx, targets = context(dsn, **settings)
    ctx.params.update(params or {})
    try:
        return await run_checks(registry.verbs[verb].checks, ctx)
    finally:
        await targets.close()


async def remediate(action: str, dsn: str, **args) -> str:
    """Run a remediation as the approval engine does once someone approved it."""
    ctx, targets = context(dsn)
    try:
        return await registry.remediations[action].func(ctx, **args)
    finally:
        await targets.close()


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
