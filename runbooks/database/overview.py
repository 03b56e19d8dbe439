"""Guide: "Database Issues" — `db`, PostgreSQL at a glance.

Every check opens its own short connection (the frame's rule: no stale state). When the database
cannot be reached, the first check of a report says why, with the guide's hint, and the others
stay quiet instead of repeating it."""

from __future__ import annotations

import time

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.registry import NO_ARGS, Args, Runbook, UsageError
from bot.core.units import human_bytes, human_duration
from runbooks.database.common import (
    APP_NAME,
    CACHE_HIT_WARN_PCT,
    CACHE_MIN_BLOCKS,
    CONNECTION,
    CONNECTIONS_CRIT_PCT,
    CONNECTIONS_WARN_PCT,
    LOCK_WAIT_CRIT_S,
    LOCKS,
    LONG_TRANSACTION_CRIT_S,
    LONG_TRANSACTION_WARN_S,
    PERFORMANCE,
    REPLICATION_LAG_CRIT_S,
    REPLICATION_LAG_WARN_S,
    ago,
    by_seconds,
    count,
    db_check,
    db_connection,
    one_line,
    session_label,
)
from runbooks.quick import percent_status

runbook = Runbook("database.overview")


DB_SUBVERBS = (
    "db connect",
    "db connections",
    "db explain",
    "db indexes",
    "db locks",
    "db long-queries",
    "db sizes",
    "db settings",
    "db slow",
)


def parse_overview(words: list[str]) -> Args:
    if words:
        raise UsageError(
            f"unknown `db` subcommand `{words[0][:40]}`; try: " + ", ".join(f"`{name}`" for name in DB_SUBVERBS)
        )
    return NO_ARGS


runbook.verb(
    "db",
    "PostgreSQL at a glance: version, uptime, connections, cache, transactions, locks, replication",
    parse=parse_overview,
    ack="Looking at PostgreSQL…",
)


# --- `db`: the overview -------------------------------------------------------------------------

OVERVIEW_SQL = """
SELECT current_setting('server_version') AS version,
       pg_postmaster_start_time() AS started,
       EXTRACT(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s,
       pg_is_in_recovery() AS in_recovery,
       current_database() AS database,
       pg_database_size(current_database()) AS database_size,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active') AS active,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state LIKE 'idle in transaction%') AS idle_in_transaction,
       d.blks_hit, d.blks_read, d.deadlocks,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'MEMBER')
         AS sees_all
FROM pg_stat_database d
WHERE d.datname = current_database()
"""

LONGEST_TRANSACTION_SQL = f"""
SELECT pid, usename, application_name, state, backend_start,
       EXTRACT(epoch FROM now() - xact_start)::float8 AS xact_s,
       EXTRACT(epoch FROM now() - state_change)::float8 AS state_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND application_name NOT LIKE '{APP_NAME}%'
ORDER BY xact_start
LIMIT 1
"""

BLOCKED_SQL = """
SELECT pid, usename, application_name, pg_blocking_pids(pid) AS blockers,
       EXTRACT(epoch FROM now() - COALESCE(query_start, state_change))::float8 AS wait_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE cardinality(pg_blocking_pids(pid)) > 0
ORDER BY wait_s DESC
"""

REPLICAS_SQL = """
SELECT application_name, client_addr::text AS client, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       EXTRACT(epoch FROM replay_lag)::float8 AS lag_s
FROM pg_stat_replication
ORDER BY application_name
"""

STANDBY_SQL = """
SELECT EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS delay_s,
       pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() AS caught_up
"""


def usable_connections(row) -> int:
    return max(row["max_connections"] - row["superuser_reserved"] - row["reserved"], 1)


def server_finding(row, connect_ms: float) -> Finding:
    role = "replica (in recovery)" if row["in_recovery"] else "primary"
    title = (
        f"PostgreSQL {row['version']} ({role}), up {human_duration(row['uptime_s'])}, "
        f"connect {connect_ms:.0f} ms, database {row['database']} {human_bytes(row['database_size'])}"
    )
    details = [f"started at {row['started']:%Y-%m-%d %H:%M:%S %Z}"]
    if not row["sees_all"]:
        details.append("the bot's database user cannot see other users' sessions in full: grant it pg_read_all_stats")
    return Finding.ok(
        "PostgreSQL",
        title,
        details=details,
        section=CONNECTION,
        data={
            "version": row["version"],
            "uptime_s": row["uptime_s"],
            "in_recovery": row["in_recovery"],
            "connect_ms": round(connect_ms, 2),
            "database": row["database"],
            "database_size": row["database_size"],
        },
    )


def connection_usage_finding(row) -> Finding:
    used, usable = row["connections"], usable_connections(row)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    pct = used * 100 / usable
    title = (
        f"{used} of {usable} usable connections ({pct:.0f} %): {row['active']} active, "
        f"{row['idle_in_transaction']} idle in transaction"
    )
    details = [
        f"max_connections {row['max_connections']}, of which {row['superuser_reserved']} reserved for "
        f"superusers" + (f" and {row['reserved']} for pg_use_reserved_connections" if row["reserved"] else "")
    ]
    if status is not Status.OK:
        details.append("`db connections` shows who holds them")
    return Finding(
        status,
        "PostgreSQL connections",
        title,
        details=details,
        section=CONNECTION,
        data={
            "connections": used,
            "usable": usable,
            "max_connections": row["max_connections"],
            "active": row["active"],
            "idle_in_transaction": row["idle_in_transaction"],
        },
    )


def cache_finding(row) -> Finding:
    hit, read = row["blks_hit"] or 0, row["blks_read"] or 0
    total = hit + read
    ratio = hit * 100 / total if total else None
    data = {"cache_hit_pct": ratio, "blks_hit": hit, "blks_read": read}
    if total < CACHE_MIN_BLOCKS:
        title = (
            f"cache hit ratio {ratio:.1f} % over only {count(total)} block reads: too little traffic to judge"
            if ratio is not None
            else "cache hit ratio: no reads yet"
        )
        return Finding.ok("PostgreSQL cache", title, section=PERFORMANCE, data=data)
    status = Status.WARN if ratio is not None and ratio < CACHE_HIT_WARN_PCT else Status.OK
    details = [f"{count(hit)} blocks from shared_buffers, {count(read)} from disk or the OS cache (aim for ≥ 99 %)"]
    if status is Status.WARN:
        details.append("reads miss shared_buffers often: look at `db settings` (shared_buffers) and `db slow`")
    return Finding(
        status, "PostgreSQL cache", f"cache hit ratio {ratio:.1f} %", details=details, section=PERFORMANCE, data=data
    )


def longest_transaction_finding(row) -> Finding:
    if row is None:
        return Finding.ok(
            "PostgreSQL transactions",
            "no open transactions besides this bot's",
            section=PERFORMANCE,
            data={"longest_transaction_s": 0},
        )
    status = by_seconds(row["xact_s"], LONG_TRANSACTION_WARN_S, LONG_TRANSACTION_CRIT_S)
    title = f"longest transaction {ago(row['xact_s'])} — {session_label(row)}, {row['state']}"
    details = [f"last statement: {one_line(row['query'], 200)}"]
    if (row["state"] or "").startswith("idle in transaction"):
        details.append(f"idle in transaction for {ago(row['state_s'])}: it holds its locks and snapshot until it ends")
    return Finding(
        status,
        "PostgreSQL transactions",
        title,
        details=details,
        section=PERFORMANCE,
        data={"longest_transaction_s": row["xact_s"], "pid": row["pid"], "state": row["state"]},
    )


def blocked_finding(rows) -> Finding:
    if not rows:
        return Finding.ok("PostgreSQL locks", "no blocked sessions", section=LOCKS, data={"blocked": 0})
    longest = max(row["wait_s"] or 0 for row in rows)
    blockers = sorted({pid for row in rows for pid in row["blockers"]})
    status = Status.CRIT if longest >= LOCK_WAIT_CRIT_S else Status.WARN
    title = (
        f"{len(rows)} blocked session{'s' if len(rows) != 1 else ''}, longest waiting {ago(longest)}, "
        f"blocked by pid {', '.join(map(str, blockers))}"
    )
    evidence = [
        f"pid {row['pid']} ({row['application_name'] or '-'}) waits {ago(row['wait_s'])} on "
        f"{', '.join(map(str, row['blockers']))}: {one_line(row['query'], 100)}"
        for row in rows
    ]
    return Finding(
        status,
        "PostgreSQL locks",
        title,
        section=LOCKS,
        evidence=evidence,
        details=["`db locks` shows the blocking tree and offers to end the blocker"],
        data={"blocked": len(rows), "longest_wait_s": longest, "blockers": blockers},
    )


def replication_findings(in_recovery: bool, replicas, standby) -> list[Finding]:
    if in_recovery and standby is not None:
        delay = standby["delay_s"]
        if standby["caught_up"] or delay is None:
            return [
                Finding.ok(
                    "PostgreSQL replication",
                    "replica has replayed all WAL it received",
                    section=CONNECTION,
                    data={"lag_s": 0},
                )
            ]
        status = by_seconds(delay, REPLICATION_LAG_WARN_S, REPLICATION_LAG_CRIT_S)
        return [
            Finding(
                status,
                "PostgreSQL replication",
                f"replica replay is {ago(delay)} behind",
                section=CONNECTION,
                data={"lag_s": delay},
            )
        ]
    findings = []
    for replica in replicas:
        lag_s, lag_bytes = replica["lag_s"] or 0.0, replica["lag_bytes"]
        status = by_seconds(lag_s, REPLICATION_LAG_WARN_S, REPLICATION_LAG_CRIT_S)
        if replica["state"] != "streaming":
            status = Status.WARN if status is Status.OK else status
        name = replica["application_name"] or replica["client"] or "replica"
        title = (
            f"{name} ({replica['sync_state']}, {replica['state']}): replay lag {ago(lag_s)}, "
            f"{human_bytes(lag_bytes) if lag_bytes is not None else 'n/a'} behind"
        )
        findings.append(
            Finding(
                status,
                f"PostgreSQL replica {name}",
                title,
                section=CONNECTION,
                data={"lag_s": lag_s, "lag_bytes": lag_bytes, "state": replica["state"]},
            )
        )
    return findings


@db_check(runbook, "db", section=CONNECTION)
async def database_overview(ctx: CheckContext) -> list[Finding]:
    """One connection, one line per aspect: server, connections, cache, transactions, locks, replication."""
    started = time.perf_counter()
    async with db_connection(ctx) as conn:
        connect_ms = (time.perf_counter() - started) * 1000
        row = await conn.fetchrow(OVERVIEW_SQL)
        longest = await conn.fetchrow(LONGEST_TRANSACTION_SQL)
        blocked = await conn.fetch(BLOCKED_SQL)
        if row["in_recovery"]:
            replicas, standby = [], await conn.fetchrow(STANDBY_SQL)
        else:
            replicas, standby = await conn.fetch(REPLICAS_SQL), None
    findings = [
        server_finding(row, connect_ms),
        connection_usage_finding(row),
        cache_finding(row),
        longest_transaction_finding(longest),
        blocked_finding(blocked),
        *replication_findings(row["in_recovery"], replicas, standby),
    ]
    if not replicas and not row["in_recovery"]:
        findings[0].details.append("replication: no replica attached")
    return findings
