"""Guide: "Slow Query Performance" and "Performance Issues › Database Performance" — `db indexes`
(usage, unused, invalid, sequential scans) and `db sizes`, with `db.reindex`."""

from __future__ import annotations

import time

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal
from bot.core.registry import Refused, Runbook
from bot.core.units import human_bytes
from runbooks.database.common import (
    APP_NAME,
    LONG_STATEMENT_S,
    PERFORMANCE,
    SEQ_SCAN_MIN_ROWS,
    SEQ_SCAN_MIN_SCANS,
    SLOW,
    TOP,
    count,
    db_check,
    db_connection,
    find_relation,
    first_line,
    qualified,
    text_arg,
)

runbook = Runbook("database.indexes")


runbook.verb("db indexes", "index usage, unused and invalid indexes, heavy sequential scans", ack="Checking indexes…")
runbook.verb("db sizes", "largest tables and indexes", ack="Measuring tables and indexes…")


# --- `db indexes` --------------------------------------------------------------------------------

INDEX_USAGE_SQL = f"""
SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read, pg_relation_size(s.indexrelid) AS size
FROM pg_stat_user_indexes s
ORDER BY s.idx_scan DESC NULLS LAST, s.indexrelname
LIMIT {TOP}
"""

UNUSED_INDEXES_SQL = """
SELECT s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid) AS size,
       t.seq_scan + COALESCE(t.idx_scan, 0) AS table_reads
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_stat_user_tables t ON t.relid = s.relid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY size DESC, s.indexrelname
"""

INVALID_INDEXES_SQL = """
SELECT n.nspname AS schemaname, t.relname, c.relname AS indexrelname, pg_relation_size(c.oid) AS size,
       i.indisunique
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 3
"""

SEQ_SCANS_SQL = f"""
SELECT schemaname, relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan, n_live_tup,
       pg_total_relation_size(relid) AS size
FROM pg_stat_user_tables
WHERE n_live_tup >= {SEQ_SCAN_MIN_ROWS} AND seq_scan >= {SEQ_SCAN_MIN_SCANS} AND seq_scan > COALESCE(idx_scan, 0)
ORDER BY seq_tup_read DESC
LIMIT {TOP}
"""

STATS_SINCE_SQL = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"


@db_check(runbook, "db indexes", component="PostgreSQL index usage", section=SLOW)
async def index_usage(ctx: CheckContext) -> Finding:
    """Guide: "Check index usage" — pg_stat_user_indexes by scans."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(INDEX_USAGE_SQL)
        total = await conn.fetchval("SELECT count(*) FROM pg_stat_user_indexes")
    if not rows:
        return Finding.ok("PostgreSQL index usage", "no user indexes", data={"indexes": 0})
    top = rows[0]
    title = f"{total} indexes; most used: {top['schemaname']}.{top['indexrelname']} ({count(top['idx_scan'])} scans)"
    evidence = [
        f"{r['schemaname']}.{r['relname']}.{r['indexrelname']}: {count(r['idx_scan'])} scans, "
        f"{count(r['idx_tup_read'])} entries read, {human_bytes(r['size'])}"
        for r in rows
    ]
    return Finding.ok(
        "PostgreSQL index usage", title, evidence=evidence, data={"indexes": total, "top": [dict(r) for r in rows]}
    )


@db_check(runbook, "db indexes", component="PostgreSQL unused indexes", section=SLOW)
async def unused_indexes(ctx: CheckContext) -> Finding:
    """Indexes never scanned since statistics began: they cost every write and buy nothing."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(UNUSED_INDEXES_SQL)
        since = await conn.fetchval(STATS_SINCE_SQL)
    component = "PostgreSQL unused indexes"
    since_text = f"since {since:%Y-%m-%d %H:%M}" if since else "since statistics began"
    if not rows:
        return Finding.ok(component, f"every index has been used {since_text}", data={"unused": []})
    size = sum(r["size"] for r in rows)
    names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({human_bytes(r['size'])})" for r in rows[:3])
    title = f"{len(rows)} unused index{'es' if len(rows) != 1 else ''} ({human_bytes(size)}): {names}" + (
        ", …" if len(rows) > 3 else ""
    )
    evidence = [
        f"{r['schemaname']}.{r['relname']}.{r['indexrelname']}: 0 scans, {human_bytes(r['size'])}, "
        f"table read {count(r['table_reads'])} times"
        for r in rows
    ]
    return Finding.warn(
        component,
        title,
        evidence=evidence,
        details=[
            f"0 index scans {since_text} (unique and constraint indexes are not listed: they "
            "enforce rules even when unread)",
            "every write to the table maintains them; drop one only after checking replicas "
            "and rare jobs (month-end reports) do not use it",
        ],
        data={
            "unused": [
                {
                    "index": f"{r['schemaname']}.{r['indexrelname']}",
                    "size": r["size"],
                    "table": f"{r['schemaname']}.{r['relname']}",
                }
                for r in rows
            ]
        },
    )


@db_check(runbook, "db indexes", component="PostgreSQL invalid indexes", section=SLOW, proposes=("db.reindex",))
async def invalid_indexes(ctx: CheckContext) -> Finding:
    """Indexes left invalid by a failed CREATE INDEX / REINDEX CONCURRENTLY: unused by the planner, still written."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(INVALID_INDEXES_SQL)
    component = "PostgreSQL invalid indexes"
    if not rows:
        return Finding.ok(component, "no invalid indexes", data={"invalid": []})
    title = f"{len(rows)} invalid index{'es' if len(rows) != 1 else ''}: " + ", ".join(
        f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}" for r in rows[:3]
    )
    evidence = [
        f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}: {human_bytes(r['size'])}"
        + (", unique (not enforced while invalid)" if r["indisunique"] else "")
        for r in rows
    ]
    proposals = [
        reindex_proposal(
            r["schemaname"],
            r["indexrelname"],
            r["relname"],
            reason="left invalid by a failed concurrent build; the planner ignores it",
        )
        for r in rows[:3]
    ]
    return Finding.warn(
        component,
        title,
        evidence=evidence,
        proposals=proposals,
        details=[
            "an invalid index is maintained on every write but never used to read; a unique one "
            "does not enforce uniqueness. Rebuild it (after fixing what made the build fail, "
            "e.g. duplicates) or drop it"
        ],
        data={"invalid": [f"{r['schemaname']}.{r['indexrelname']}" for r in rows]},
    )


@db_check(runbook, "db indexes", component="PostgreSQL sequential scans", section=SLOW)
async def sequential_scans(ctx: CheckContext) -> Finding:
    """Big tables read mostly by sequential scans: the usual sign of a missing index."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(SEQ_SCANS_SQL)
    component = "PostgreSQL sequential scans"
    if not rows:
        return Finding.ok(
            component,
            f"no table of ≥ {count(SEQ_SCAN_MIN_ROWS)} rows is read mostly by sequential scans",
            data={"tables": []},
        )
    top = rows[0]
    title = (
        f"{top['schemaname']}.{top['relname']}: {count(top['seq_scan'])} sequential scans read "
        f"{count(top['seq_tup_read'])} rows (≈ {count(top['n_live_tup'])} rows, {count(top['idx_scan'])} index scans)"
    )
    if len(rows) > 1:
        title += f", and {len(rows) - 1} more table{'s' if len(rows) > 2 else ''}"
    evidence = [
        f"{r['schemaname']}.{r['relname']}: {count(r['seq_scan'])} seq scans, {count(r['seq_tup_read'])} rows "
        f"read, {count(r['idx_scan'])} index scans, ≈ {count(r['n_live_tup'])} rows, {human_bytes(r['size'])}"
        for r in rows
    ]
    return Finding.warn(
        component,
        title,
        evidence=evidence,
        details=[
            "find the statements behind them with `db slow`, then `db explain <queryid>`; an "
            "index on the columns they filter on usually helps"
        ],
        data={
            "tables": [
                {
                    "table": f"{r['schemaname']}.{r['relname']}",
                    "seq_scan": r["seq_scan"],
                    "seq_tup_read": r["seq_tup_read"],
                    "idx_scan": r["idx_scan"],
                    "n_live_tup": r["n_live_tup"],
                }
                for r in rows
            ]
        },
    )


# --- `db sizes` ------------------------------------------------------------------------------------

LARGEST_TABLES_SQL = f"""
SELECT schemaname, relname, heap + indexes + toast AS total, heap, indexes, toast, estimated_rows, n_live_tup
FROM (
  -- each part read once, so the total always equals its parts even while files grow
  SELECT n.nspname AS schemaname, c.relname,
         pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS heap,
         pg_indexes_size(c.oid) AS indexes,
         COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
         GREATEST(c.reltuples, 0)::bigint AS estimated_rows, s.n_live_tup
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%'
) sizes
ORDER BY total DESC, 1, 2
LIMIT {TOP}
"""

LARGEST_INDEXES_SQL = f"""
SELECT n.nspname AS schemaname, t.relname, c.relname AS indexrelname, pg_relation_size(c.oid) AS size
FROM pg_class c
JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY size DESC, 1, 3
LIMIT {TOP}
"""


@db_check(runbook, "db sizes", component="PostgreSQL tables", section=PERFORMANCE)
async def largest_tables(ctx: CheckContext) -> Finding:
    """Guide: "Check table sizes" — the largest tables with their indexes and TOAST."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(LARGEST_TABLES_SQL)
        database, size = await conn.fetchrow("SELECT current_database(), pg_database_size(current_database())")
    if not rows:
        return Finding.ok(
            "PostgreSQL tables",
            f"database {database} ({human_bytes(size)}) has no tables",
            data={"database_size": size, "tables": []},
        )
    top = rows[0]
    title = (
        f"database {database} {human_bytes(size)}; largest table {top['schemaname']}.{top['relname']} "
        f"{human_bytes(top['total'])} (≈ {count(rows_of(top))} rows)"
    )
    evidence = [
        f"{r['schemaname']}.{r['relname']}: {human_bytes(r['total'])} total = {human_bytes(r['heap'])} table + "
        f"{human_bytes(r['indexes'])} indexes + {human_bytes(r['toast'])} TOAST, ≈ {count(rows_of(r))} rows"
        for r in rows
    ]
    return Finding.ok(
        "PostgreSQL tables",
        title,
        evidence=evidence,
        data={
            "database": database,
            "database_size": size,
            "tables": [
                {
                    "table": f"{r['schemaname']}.{r['relname']}",
                    "total": r["total"],
                    "heap": r["heap"],
                    "indexes": r["indexes"],
                    "toast": r["toast"],
                    "rows": rows_of(r),
                }
                for r in rows
            ],
        },
    )


def rows_of(row) -> int:
    """reltuples is -1 until the first ANALYZE (PostgreSQL 14+); the statistics counter is better then."""
    return max(row["estimated_rows"] or 0, row["n_live_tup"] or 0)


@db_check(runbook, "db sizes", component="PostgreSQL indexes", section=PERFORMANCE)
async def largest_indexes(ctx: CheckContext) -> Finding:
    """The largest indexes."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(LARGEST_INDEXES_SQL)
    if not rows:
        return Finding.ok("PostgreSQL indexes", "no indexes", data={"indexes": []})
    top = rows[0]
    title = f"largest index {top['schemaname']}.{top['indexrelname']} on {top['relname']}: {human_bytes(top['size'])}"
    evidence = [f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}: {human_bytes(r['size'])}" for r in rows]
    return Finding.ok(
        "PostgreSQL indexes",
        title,
        evidence=evidence,
        data={"indexes": [{"index": f"{r['schemaname']}.{r['indexrelname']}", "size": r["size"]} for r in rows]},
    )


def reindex_sql(schema: str, index: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {qualified(schema, index)};"


def reindex_proposal(schema: str, index: str, table: str = "", *, reason: str = "") -> Proposal:
    return reindex.propose(
        schema=schema,
        index=index,
        summary=f"Rebuild index {schema}.{index}" + (f" on {table}" if table else "") + " without blocking writes",
        why=reason,
        preview=reindex_sql(schema, index),
    )


@runbook.remediation("db.reindex", "REINDEX INDEX CONCURRENTLY of one index", timeout=LONG_STATEMENT_S)
async def reindex(ctx: CheckContext, schema: str, index: str) -> str:
    schema, index = text_arg(schema, "schema"), text_arg(index, "index")
    if schema in ("pg_catalog", "information_schema") or schema.startswith("pg_toast"):
        raise Refused(f"{schema}.{index} is a system index: REINDEX CONCURRENTLY cannot rebuild those")
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        found = await find_relation(conn, schema, index, "iI")
        if found is None:
            raise Refused(f"index {schema}.{index} no longer exists")
        info = await conn.fetchrow(
            "SELECT t.relname AS table_name, i.indrelid, pg_relation_size(i.indexrelid) AS size, i.indisvalid, "
            "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x') AS exclusion, "
            "EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid) AS building "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE i.indexrelid = $1",
            found["oid"],
        )
        if info["exclusion"]:
            raise Refused(f"{schema}.{index} backs an exclusion constraint: it cannot be rebuilt concurrently")
        if info["building"]:
            raise Refused(f"an index build is already running on {info['table_name']}: wait for it to finish")
        sql = reindex_sql(found["nspname"], found["relname"])
        started = time.perf_counter()
        try:
            await conn.execute(f"SET statement_timeout = {int((LONG_STATEMENT_S - 10) * 1000)}")
            await conn.execute(sql, timeout=LONG_STATEMENT_S - 5)
        except asyncpg.PostgresError as exc:
            raise RuntimeError(
                f"{sql} failed: {first_line(exc)}; it may leave an invalid index named {index}_ccnew "
                "behind (`db indexes` lists invalid indexes)"
            ) from exc
        elapsed = time.perf_counter() - started
        after = await conn.fetchrow(
            "SELECT pg_relation_size(c.oid) AS size, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            schema,
            index,
        )
    validity = "valid" if after and after["indisvalid"] else "still INVALID"
    return (
        f"ran `{sql}` in {elapsed:.2f} s: {human_bytes(info['size'])} → "
        f"{human_bytes(after['size']) if after else '?'}, {validity}"
    )
