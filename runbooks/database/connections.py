"""Guide: "Database Connection Issues" — `db connections`: by state, user and application; idle in
transaction; vs max_connections."""

from __future__ import annotations

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.registry import Runbook
from bot.core.units import human_bytes
from runbooks.database.common import (
    APP_NAME,
    CONNECTION,
    CONNECTIONS_CRIT_PCT,
    CONNECTIONS_WARN_PCT,
    IDLE_IN_TRANSACTION_CRIT_S,
    IDLE_IN_TRANSACTION_WARN_S,
    ROLLBACK_MIN_XACTS,
    ROLLBACK_WARN_PCT,
    ago,
    by_seconds,
    count,
    db_check,
    db_connection,
    one_line,
    session_label,
)
from runbooks.database.overview import usable_connections
from runbooks.quick import percent_status

runbook = Runbook("database.connections")


runbook.verb(
    "db connections",
    "connections by state, user and application; idle in transaction",
    ack="Counting database connections…",
)


# --- `db connections` -----------------------------------------------------------------------------

BY_STATE_SQL = """
SELECT COALESCE(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC, 1
"""

LIMITS_SQL = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type <> 'client backend') AS background,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'MEMBER')
         AS sees_all
"""

BY_DATABASE_SQL = """
SELECT COALESCE(datname, '-') AS datname, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC, 1
"""

BY_CLIENT_SQL = """
SELECT COALESCE(NULLIF(application_name, ''), '(none)') AS application, COALESCE(usename::text, '?') AS usename,
       count(*) AS total,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
       string_agg(DISTINCT COALESCE(client_addr::text, 'local'), ', ') AS clients
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2
ORDER BY total DESC, 1, 2
"""

OWN_CONNECTIONS_SQL = f"""
SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE '{APP_NAME}%'
"""

IDLE_IN_TRANSACTION_SQL = f"""
SELECT pid, usename, application_name, client_addr::text AS client, datname, state, backend_start,
       EXTRACT(epoch FROM now() - state_change)::float8 AS idle_s,
       EXTRACT(epoch FROM now() - xact_start)::float8 AS xact_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE state LIKE 'idle in transaction%' AND backend_type = 'client backend'
  AND application_name NOT LIKE '{APP_NAME}%'  -- this bot's checks, between two statements
ORDER BY state_change
"""

DATABASE_ACTIVITY_SQL = """
SELECT datname, numbackends, xact_commit, xact_rollback, deadlocks, conflicts, temp_files, temp_bytes,
       blks_hit, blks_read, stats_reset
FROM pg_stat_database WHERE datname = current_database()
"""


@db_check(runbook, "db connections", section=CONNECTION)
async def connections_by_state(ctx: CheckContext) -> Finding:
    """Guide step 3, "Check Connection Limits": connections by state against max_connections."""
    async with db_connection(ctx) as conn, conn.transaction(readonly=True):  # one snapshot of pg_stat_activity
        limits = await conn.fetchrow(LIMITS_SQL)
        states = await conn.fetch(BY_STATE_SQL)
        databases = await conn.fetch(BY_DATABASE_SQL)
        ours = await conn.fetchval(OWN_CONNECTIONS_SQL)
    used, usable = limits["connections"], usable_connections(limits)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    by_state = {row["state"]: row["n"] for row in states}
    title = f"{used} of {usable} usable connections ({used * 100 / usable:.0f} %): " + (
        ", ".join(f"{n} {state}" for state, n in by_state.items()) or "none"
    )
    details = [
        f"max_connections {limits['max_connections']}: {limits['superuser_reserved']} reserved for superusers"
        + (f", {limits['reserved']} for pg_use_reserved_connections" if limits["reserved"] else "")
        + f", {usable} for everyone else",
        "by database: " + ", ".join(f"{row['datname']} {row['n']}" for row in databases),
        f"{limits['background']} background processes (autovacuum, WAL writer, …) do not count against the limit",
        f"{ours} of the connections are this bot's own (its checks connect briefly)",
    ]
    if status is not Status.OK:
        details.append(
            'at the limit new logins fail with 53300 "too many clients": end idle sessions, shrink the '
            "ERPGo pool, or raise max_connections (restart) / add a pooler such as PgBouncer"
        )
    if not limits["sees_all"]:
        details.append("the bot's user cannot see other users' session states: grant it pg_read_all_stats")
    return Finding(
        status,
        "PostgreSQL connections",
        title,
        details=details,
        data={
            "connections": used,
            "usable": usable,
            "max_connections": limits["max_connections"],
            "superuser_reserved": limits["superuser_reserved"],
            "reserved": limits["reserved"],
            "by_state": by_state,
            "by_database": {r["datname"]: r["n"] for r in databases},
        },
    )


@db_check(runbook, "db connections", component="PostgreSQL clients", section=CONNECTION)
async def connections_by_client(ctx: CheckContext) -> Finding:
    """Who holds the connections: by application_name and user (pg_stat_activity)."""
    async with db_connection(ctx) as conn, conn.transaction(readonly=True):  # one snapshot of pg_stat_activity
        everyone = await conn.fetch(BY_CLIENT_SQL)
        limits = await conn.fetchrow(LIMITS_SQL)
    rows = [row for row in everyone if not row["application"].startswith(APP_NAME)]
    own = sum(row["total"] for row in everyone) - sum(row["total"] for row in rows)
    total = sum(row["total"] for row in rows)
    users: dict[str, int] = {}
    for row in rows:
        users[row["usename"]] = users.get(row["usename"], 0) + row["total"]
    apps = {row["application"] for row in rows}
    if not rows:
        return Finding.ok("PostgreSQL clients", "no client connections besides this bot's", data={"clients": []})
    top = rows[0]
    share = top["total"] * 100 / usable_connections(limits)
    status = Status.WARN if share >= CONNECTIONS_WARN_PCT else Status.OK
    title = (
        f"{top['application']} (user {top['usename']}) holds the most: {top['total']} of {total} connections; "
        f"{len(apps)} application{'s' if len(apps) != 1 else ''}, {len(users)} user{'s' if len(users) != 1 else ''}"
    )
    evidence = [f"{'application':<24} {'user':<14} {'total':>5} {'active':>6} {'idle':>5} {'idle-tx':>7}  clients"]
    evidence += [
        f"{one_line(row['application'], 24):<24} {one_line(row['usename'], 14):<14} {row['total']:>5} "
        f"{row['active']:>6} {row['idle']:>5} {row['idle_in_transaction']:>7}  {one_line(row['clients'], 40)}"
        for row in rows
    ]
    details = [
        "by user: " + ", ".join(f"{user} {n}" for user, n in sorted(users.items(), key=lambda kv: -kv[1])),
        f"not listed: this bot's own {own} connection{'s' if own != 1 else ''} ({APP_NAME})",
    ]
    if status is Status.WARN:
        details.append(f"{top['application']} alone uses {share:.0f} % of the usable connections: check its pool size")
    clients = [
        {k: row[k] for k in ("application", "usename", "total", "active", "idle", "idle_in_transaction")}
        for row in rows
    ]
    return Finding(
        status,
        "PostgreSQL clients",
        title,
        details=details,
        evidence=evidence,
        data={"clients": clients, "by_user": users, "own": own},
    )


@db_check(runbook, "db connections", component="PostgreSQL idle in transaction", section=CONNECTION)
async def idle_in_transaction(ctx: CheckContext) -> Finding:
    """Sessions idle in transaction, oldest first, with their age: they hold locks and snapshots."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(IDLE_IN_TRANSACTION_SQL)
        timeout_setting = await conn.fetchval("SELECT current_setting('idle_in_transaction_session_timeout')")
    component = "PostgreSQL idle in transaction"
    if not rows:
        return Finding.ok(component, "no session is idle in transaction", data={"sessions": []})
    oldest = rows[0]
    status = by_seconds(oldest["idle_s"], IDLE_IN_TRANSACTION_WARN_S, IDLE_IN_TRANSACTION_CRIT_S)
    n = len(rows)
    title = (
        f"{n} session{'s' if n != 1 else ''} idle in transaction, longest {ago(oldest['idle_s'])}: "
        f"{session_label(oldest)}"
    )
    evidence = [
        f"pid {row['pid']} {row['application_name'] or '-'} user {row['usename']} db {row['datname']}: idle "
        f"{ago(row['idle_s'])}, transaction open {ago(row['xact_s'])} — last: {one_line(row['query'], 80)}"
        for row in rows
    ]
    details = [
        "such a session keeps its locks and snapshot until it ends; pg_cancel_backend does not end it, "
        "only pg_terminate_backend does (`db locks` shows what it blocks and offers that)"
    ]
    if timeout_setting in ("0", "0ms"):
        details.append(
            "idle_in_transaction_session_timeout is off: setting it (e.g. 5min) makes such sessions end on their own"
        )
    else:
        details.append(f"idle_in_transaction_session_timeout is {timeout_setting}")
    sessions = [
        {
            "pid": row["pid"],
            "application_name": row["application_name"],
            "usename": row["usename"],
            "idle_s": row["idle_s"],
            "xact_s": row["xact_s"],
            "state": row["state"],
            "backend_start": row["backend_start"].isoformat(),
        }
        for row in rows
    ]
    return Finding(status, component, title, details=details, evidence=evidence, data={"sessions": sessions})


@db_check(runbook, "db connections", component="PostgreSQL activity", section=CONNECTION)
async def database_activity(ctx: CheckContext) -> Finding:
    """Guide step 3, "Connection statistics": pg_stat_database for the ERPGo database."""
    async with db_connection(ctx) as conn:
        row = await conn.fetchrow(DATABASE_ACTIVITY_SQL)
    commits, rollbacks = row["xact_commit"], row["xact_rollback"]
    xacts = commits + rollbacks
    rollback_pct = rollbacks * 100 / xacts if xacts else 0.0
    status = Status.OK
    notes = []
    if xacts >= ROLLBACK_MIN_XACTS and rollback_pct >= ROLLBACK_WARN_PCT:
        status = Status.WARN
        notes.append(f"{rollback_pct:.1f} % of transactions roll back: look for errors in the ERPGo logs")
    if row["deadlocks"]:
        status = Status.WARN
        notes.append(f"{row['deadlocks']} deadlocks detected: see the guide's Database Locks and Deadlocks")
    since = f"since {row['stats_reset']:%Y-%m-%d %H:%M}" if row["stats_reset"] else "since statistics began"
    title = (
        f"{row['datname']}: {row['numbackends']} backends, {count(commits)} commits, {count(rollbacks)} rollbacks "
        f"({rollback_pct:.1f} %), {row['deadlocks']} deadlocks"
    )
    details = notes + [
        f"counters {since}",
        f"temporary files: {count(row['temp_files'])} ({human_bytes(row['temp_bytes'])}) — many mean work_mem is "
        "too small for the sorts and hashes"
        if row["temp_files"]
        else "temporary files: none",
    ]
    return Finding(
        status,
        "PostgreSQL activity",
        title,
        details=details,
        data={
            "database": row["datname"],
            "numbackends": row["numbackends"],
            "xact_commit": commits,
            "xact_rollback": rollbacks,
            "deadlocks": row["deadlocks"],
            "temp_files": row["temp_files"],
        },
    )
