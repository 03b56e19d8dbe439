"""Replication lag on its own, for alert triage (PostgreSQLReplicationLag): the `db` overview's
replication findings without the rest of the overview, and a word when there is nothing to measure."""

from __future__ import annotations

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Runbook
from runbooks.database.common import CONNECTION, db_check, db_connection
from runbooks.database.overview import REPLICAS_SQL, STANDBY_SQL, replication_findings

runbook = Runbook("database.replication")


@db_check(runbook, component="PostgreSQL replication", section=CONNECTION)
async def replication_status(ctx: CheckContext) -> list[Finding]:
    """Each replica's state and replay lag (on a primary), or how far behind this replica is."""
    async with db_connection(ctx) as conn:
        in_recovery = await conn.fetchval("SELECT pg_is_in_recovery()")
        if in_recovery:
            replicas, standby = [], await conn.fetchrow(STANDBY_SQL)
        else:
            replicas, standby = await conn.fetch(REPLICAS_SQL), None
    findings = replication_findings(in_recovery, replicas, standby)
    if findings:
        return findings
    return [
        Finding.warn(
            "PostgreSQL replication",
            "a primary with no replica attached: nothing streams from this server",
            details=[
                "if a replica should be here, it is disconnected (its own log says why: `docker-compose logs` "
                "of the replica); if the alert measures another server, ERPGO_DATABASE_URL points elsewhere",
            ],
            data={"replicas": 0},
        )
    ]
