"""Guide: "Slow Query Performance" — `db slow` (pg_stat_statements, stale planner statistics), with the
remediations it proposes: `db.analyze`, `db.slowlog` (and its revert), `db.pgss_reset`. Each proposal's
preview is the exact SQL that runs. `db explain` is in runbooks/database/explain.py."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Outcome, Refused, Runbook
from bot.core.units import plural
from runbooks.database.common import (
    APP_NAME,
    LONG_STATEMENT_S,
    SLOW,
    SLOW_MEAN_CRIT_MS,
    SLOW_MEAN_WARN_MS,
    SLOWLOG_DEFAULT_MS,
    STALE_STATS_FRACTION,
    STALE_STATS_MIN_CHANGES,
    STATEMENTS_SCANNED,
    TOP,
    count,
    db_check,
    db_connection,
    find_relation,
    first_line,
    fmt_ms,
    qualified,
    server_version_num,
    statement_text,
    text_arg,
)

runbook = Runbook("database.statements")


runbook.verb(
    "db slow",
    "slowest statements (pg_stat_statements) and stale planner statistics",
    ack="Looking for slow statements…",
)
# statements the application sends (not the bot's nor a monitor's catalogue reads)
APPLICATION_KEYWORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "MERGE", "VALUES", "TABLE", "CALL", "COPY")
LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
MONITORING = re.compile(
    r"\b(?:pg_catalog\.|information_schema\.|pg_stat_\w+|pg_(?:settings|file_settings|class|namespace|"
    r"index|database|roles|extension|available_extensions|type|attribute|constraint)\b)",
    re.I,
)


def first_keyword(query: str) -> str:
    rest = LEADING_NOISE.sub("", query, count=1)
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).upper() if match else ""


# --- pg_stat_statements -------------------------------------------------------------------------


@dataclass
class StatementsSource:
    """Where (and whether) pg_stat_statements can be read in this database."""

    available: bool
    problem: str = ""  # why not, and how to enable it
    version_num: int = 0

    @property
    def mean_col(self) -> str:
        return "mean_exec_time" if self.version_num >= 130000 else "mean_time"

    @property
    def total_col(self) -> str:
        return "total_exec_time" if self.version_num >= 130000 else "total_time"


def preload_listed(value: str | None) -> bool | None:
    if value is None:
        return None
    names = [item.strip().strip('"').rsplit("/", 1)[-1].removesuffix(".so") for item in value.split(",")]
    return "pg_stat_statements" in names


HOW_TO_ENABLE = (
    "add pg_stat_statements to shared_preload_libraries (postgresql.conf, or "
    "`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`), restart PostgreSQL, then run "
    "`CREATE EXTENSION pg_stat_statements;` in database {db}"
)


async def statements_source(conn) -> StatementsSource:
    version_num = await server_version_num(conn)
    database = await conn.fetchval("SELECT current_database()")
    installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    try:
        preload = preload_listed(await conn.fetchval("SELECT current_setting('shared_preload_libraries')"))
    except asyncpg.InsufficientPrivilegeError:
        preload = None
    if installed:
        try:
            await conn.fetchval("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except asyncpg.ObjectNotInPrerequisiteStateError:
            return StatementsSource(
                False,
                f"pg_stat_statements is created in {database} but not loaded: add it to "
                "shared_preload_libraries and restart PostgreSQL",
                version_num,
            )
        return StatementsSource(True, "", version_num)
    available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'")
    if not available:
        return StatementsSource(
            False,
            "pg_stat_statements is not installed on the server (Debian/Ubuntu: the "
            "postgresql-contrib package; the official Docker image has it), then " + HOW_TO_ENABLE.format(db=database),
            version_num,
        )
    if preload:
        return StatementsSource(
            False,
            f"pg_stat_statements is loaded but not created in database {database}: run "
            "`CREATE EXTENSION pg_stat_statements;` there",
            version_num,
        )
    return StatementsSource(
        False, "pg_stat_statements is not enabled: " + HOW_TO_ENABLE.format(db=database), version_num
    )


def statements_sql(source: StatementsSource, order_by: str) -> str:
    """Top statements of this database; column names by server version (mean_exec_time from 13 on)."""
    mean, total = source.mean_col, source.total_col
    order = {"mean": mean, "total": total}[order_by]
    return f"""
SELECT s.queryid, s.calls, s.rows, s.{mean}::float8 AS mean_ms, s.{total}::float8 AS total_ms, s.query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls > 0
ORDER BY s.{order} DESC NULLS LAST
LIMIT {STATEMENTS_SCANNED}
"""


def statement_line(row) -> str:
    return (
        f"{row['queryid']}  mean {fmt_ms(row['mean_ms'])} · {count(row['calls'])} calls · total {fmt_ms(row['total_ms'])} "
        f"· {count(row['rows'])} rows — {statement_text(row['query'], 100)}"
    )


def application_statements(rows) -> list:
    """The statements an application runs (queries and DML) — not DDL, VACUUM or SET, nor queries on the
    catalogs and statistics views such as this bot's own; the top TOP of them."""
    return [
        row
        for row in rows
        if first_keyword(row["query"] or "") in APPLICATION_KEYWORDS and not MONITORING.search(row["query"] or "")
    ][:TOP]


async def slowlog_value(conn) -> int:
    return int(await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'log_min_duration_statement'"))


@db_check(runbook, "db slow", section=SLOW, proposes=("db.pgss_reset", "db.slowlog"))
async def slow_statements(ctx: CheckContext) -> list[Finding]:
    """Guide: "Query statistics" — top statements by mean and by total time, with calls and rows."""
    async with db_connection(ctx) as conn:
        source = await statements_source(conn)
        database = await conn.fetchval("SELECT current_database()")
        slowlog = await slowlog_value(conn)
        if not source.available:
            return [
                Finding.warn(
                    "PostgreSQL statements",
                    "pg_stat_statements unavailable — " + source.problem,
                    details=["without it the bot cannot rank statements; `db slow` and `db explain` need it"],
                    data={"pg_stat_statements": False},
                )
            ]
        by_mean = application_statements(await conn.fetch(statements_sql(source, "mean")))
        by_total = application_statements(await conn.fetch(statements_sql(source, "total")))
        tracked = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        )
    if not by_mean:
        return [
            Finding.ok(
                "PostgreSQL statements",
                f"no statements recorded yet for {database}",
                data={"pg_stat_statements": True, "statements": 0},
            )
        ]
    return [slowest_finding(source, by_mean, slowlog), busiest_finding(source, by_total, database, tracked)]


def slowest_finding(source: StatementsSource, by_mean: list[Any], slowlog: int) -> Finding:
    """The statements by mean time: the slowest one's level, and the slow query log if it is off."""
    slowest = by_mean[0]
    mean_ms = slowest["mean_ms"] or 0.0
    status = Status.CRIT if mean_ms >= SLOW_MEAN_CRIT_MS else Status.WARN if mean_ms >= SLOW_MEAN_WARN_MS else Status.OK
    slow_count = sum(1 for row in by_mean if (row["mean_ms"] or 0) >= SLOW_MEAN_WARN_MS)
    title = (
        f"slowest on average: {fmt_ms(mean_ms)} over {count(slowest['calls'])} calls — "
        f"{statement_text(slowest['query'], 80)}"
    )
    details = [
        f"{slow_count} of the top {len(by_mean)} statements average ≥ {SLOW_MEAN_WARN_MS:.0f} ms"
        if slow_count
        else f"no statement averages ≥ {SLOW_MEAN_WARN_MS:.0f} ms",
        "each line starts with its queryid: `db explain <queryid>` shows its plan",
        "only application statements are ranked: queries and DML, not DDL, VACUUM or SET, nor queries on the "
        "catalogs and statistics views (like this bot's own)",
    ]
    proposals = []
    if slowlog < 0 and status is not Status.OK:
        details.append("the slow query log is off, so the server log does not show these")
        reason = "the guide's first step for slow queries: log what is slow"
        proposals.append(slowlog_proposal(SLOWLOG_DEFAULT_MS, slowlog, reason=reason))
    data = {
        "pg_stat_statements": True,
        "columns": [source.mean_col, source.total_col],
        "by_mean": [statement_dict(row) for row in by_mean],
    }
    evidence = [statement_line(row) for row in by_mean]
    return Finding(status, "PostgreSQL slow statements", title, details, evidence, proposals=proposals, data=data)


def busiest_finding(source: StatementsSource, by_total: list[Any], database: str, tracked: int) -> Finding:
    """The statements by total time, with the reset that measures afresh."""
    busiest = by_total[0]
    grand_total = sum(row["total_ms"] or 0 for row in by_total)
    title = (
        f"most time in total: {fmt_ms(busiest['total_ms'])} in {count(busiest['calls'])} calls — "
        f"{statement_text(busiest['query'], 80)}"
    )
    return Finding.ok(
        "PostgreSQL busiest statements",
        title,
        details=[
            f"the top {len(by_total)} account for {fmt_ms(grand_total)}; {count(tracked)} statements tracked "
            f"for {database}",
            "after fixing a statement, reset the statistics to measure afresh",
        ],
        evidence=[statement_line(row) for row in by_total],
        proposals=[pgss_reset_proposal(source.version_num, database, tracked)],
        data={"by_total": [statement_dict(row) for row in by_total], "statements": tracked},
    )


def statement_dict(row) -> dict[str, Any]:
    return {
        "queryid": row["queryid"],
        "calls": row["calls"],
        "rows": row["rows"],
        "mean_ms": row["mean_ms"],
        "total_ms": row["total_ms"],
        "query": statement_text(row["query"], 300),
    }


STALE_STATS_SQL = f"""
SELECT schemaname, relname, n_live_tup, n_mod_since_analyze,
       GREATEST(last_analyze, last_autoanalyze) AS analyzed
FROM pg_stat_user_tables
WHERE n_mod_since_analyze >= {STALE_STATS_MIN_CHANGES}
  AND (GREATEST(last_analyze, last_autoanalyze) IS NULL
       OR n_mod_since_analyze > {STALE_STATS_FRACTION} * GREATEST(n_live_tup, 1))
ORDER BY n_mod_since_analyze DESC
"""


@db_check(runbook, "db slow", component="PostgreSQL statistics", section=SLOW, proposes=("db.analyze",))
async def table_statistics(ctx: CheckContext) -> Finding:
    """Guide: "Update Statistics" — tables whose planner statistics are missing or stale."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(STALE_STATS_SQL)
        tables = await conn.fetchval("SELECT count(*) FROM pg_stat_user_tables")
        database = await conn.fetchval("SELECT current_database()")
    component = "PostgreSQL statistics"
    if not rows:
        return Finding.ok(component, f"planner statistics are fresh for all {tables} tables", data={"stale": []})
    evidence = [
        f"{row['schemaname']}.{row['relname']}: {count(row['n_mod_since_analyze'])} rows changed since "
        + (f"the last analyze ({row['analyzed']:%Y-%m-%d %H:%M})" if row["analyzed"] else "ever: never analyzed")
        + f", ≈ {count(row['n_live_tup'])} rows"
        for row in rows
    ]
    first = rows[0]
    title = (
        f"{len(rows)} table{'s' if len(rows) != 1 else ''} with stale planner statistics, most changed: "
        f"{first['schemaname']}.{first['relname']} ({count(first['n_mod_since_analyze'])} changes)"
    )
    if len(rows) == 1:
        proposal = analyze_proposal(
            first["schemaname"],
            first["relname"],
            reason="row estimates are off after many changes; ANALYZE refreshes them",
        )
    else:
        proposal = analyze_proposal(database=database, reason=f"{plural(len(rows), 'table')} with stale statistics")
    return Finding.warn(
        component,
        title,
        evidence=evidence,
        proposals=[proposal],
        details=[
            "stale statistics make the planner misjudge row counts and pick slow plans; "
            "autovacuum normally analyzes, so check it is on for these tables"
        ],
        data={"stale": [f"{r['schemaname']}.{r['relname']}" for r in rows]},
    )


def analyze_sql(schema: str | None = None, table: str | None = None) -> str:
    return f"ANALYZE {qualified(schema or 'public', table)};" if table else "ANALYZE;"


def analyze_proposal(
    schema: str | None = None, table: str | None = None, *, database: str = "", reason: str = ""
) -> Proposal:
    if table:
        return analyze.propose(
            schema=schema,
            table=table,
            summary=f"ANALYZE table {schema}.{table} (refresh its planner statistics)",
            why=reason,
            preview=analyze_sql(schema, table),
        )
    return analyze.propose(
        summary=f"ANALYZE every table of database {database or 'ERPGo'} (refresh planner statistics)",
        why=reason,
        preview=analyze_sql(),
    )


def slowlog_statements(ms_value: int) -> list[str]:
    return [f"ALTER SYSTEM SET log_min_duration_statement = {int(ms_value)};", "SELECT pg_reload_conf();"]


def describe_slowlog(value: int) -> str:
    return "off (-1)" if value < 0 else "every statement (0)" if value == 0 else f"{value} ms"


def slowlog_proposal(ms_value: int, previous: int, *, reason: str = "", revert: bool = False) -> Proposal:
    verb = "Revert" if revert else "Set"
    return slowlog.propose(
        ms=int(ms_value),
        previous=int(previous),
        summary=f"{verb} log_min_duration_statement to {describe_slowlog(ms_value)} "
        f"(now {describe_slowlog(previous)}) and reload the configuration",
        why=reason,
        preview="\n".join(slowlog_statements(ms_value)),
    )


def pgss_reset_sql(version_num: int) -> str:
    if version_num >= 120000:  # reset only this database's statements
        return "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database();"
    return "SELECT pg_stat_statements_reset();"


def pgss_reset_proposal(version_num: int, database: str, tracked: int, *, reason: str = "") -> Proposal:
    scope = f"database {database}" if version_num >= 120000 else "the whole server"
    return pgss_reset.propose(
        summary=f"Reset pg_stat_statements for {scope} ({count(tracked)} statements)",
        why=reason or "start measuring afresh, e.g. after adding an index",
        preview=pgss_reset_sql(version_num),
    )


@runbook.remediation("db.analyze", "ANALYZE one table, or the whole database", timeout=LONG_STATEMENT_S)
async def analyze(ctx: CheckContext, schema: str | None = None, table: str | None = None) -> str:
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        if table is not None or schema is not None:
            schema, table = text_arg(schema, "schema"), text_arg(table, "table")
            found = await find_relation(conn, schema, table, "rpm")
            if found is None:
                raise Refused(f"table {schema}.{table} no longer exists")
            sql = analyze_sql(found["nspname"], found["relname"])
        else:
            sql = analyze_sql()
        started = time.perf_counter()
        await conn.execute(sql, timeout=LONG_STATEMENT_S - 5)
        elapsed = time.perf_counter() - started
        if table is not None:
            rows = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = $1", found["oid"])
            return f"ran `{sql}` in {elapsed:.2f} s: {schema}.{table} now estimated at ≈ {count(max(rows, 0))} rows"
        tables = await conn.fetchval("SELECT count(*) FROM pg_stat_user_tables")
        database = await conn.fetchval("SELECT current_database()")
    return f"ran `{sql}` in {elapsed:.2f} s: statistics refreshed for the {tables} tables of {database}"


@runbook.remediation("db.slowlog", "Set log_min_duration_statement (ALTER SYSTEM) and reload", timeout=30)
async def slowlog(ctx: CheckContext, ms: int, previous: int) -> str:
    try:
        ms_value, previous = int(ms), int(previous)
    except (TypeError, ValueError):
        raise Refused("`ms` and `previous` must be integers (milliseconds, -1 = off)") from None
    if not -1 <= ms_value <= 2_147_483_647:
        raise Refused("log_min_duration_statement must be -1 (off) or 0…2147483647 ms")
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        current = await slowlog_value(conn)
        if current != previous:
            raise Refused(
                f"log_min_duration_statement is now {describe_slowlog(current)}, not "
                f"{describe_slowlog(previous)} as when this was proposed"
            )
        if current == ms_value:
            raise Refused(f"log_min_duration_statement is already {describe_slowlog(ms_value)}")
        try:
            for statement in slowlog_statements(ms_value):
                await conn.execute(statement)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise Refused(f"the bot's database user may not ALTER SYSTEM: {first_line(exc)}") from None
        now = await wait_for_setting(conn, ms_value)
    if now != ms_value:
        raise RuntimeError(
            f"ALTER SYSTEM succeeded but the server still reports {describe_slowlog(now)} after the "
            "reload: check the server log for configuration errors"
        )
    revert = slowlog_proposal(previous, ms_value, revert=True, reason="undo this change")
    return Outcome(
        f"log_min_duration_statement is now {describe_slowlog(ms_value)} (was "
        f"{describe_slowlog(previous)}); to revert, approve db.slowlog ms={previous}",
        [revert],
    )


async def wait_for_setting(conn, expected: int, within: float = 3.0) -> int:
    """pg_reload_conf() only signals the server; the session applies the file at its next statement."""
    deadline = time.monotonic() + within
    while True:
        value = await slowlog_value(conn)
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@runbook.remediation("db.pgss_reset", "Reset pg_stat_statements for the ERPGo database", timeout=30)
async def pgss_reset(ctx: CheckContext) -> str:
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        source = await statements_source(conn)
        if not source.available:
            raise Refused("pg_stat_statements is not available: " + source.problem)
        before = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        )
        sql = pgss_reset_sql(source.version_num)
        try:
            await conn.execute(sql)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise Refused(f"the bot's database user may not reset pg_stat_statements: {first_line(exc)}") from None
        database = await conn.fetchval("SELECT current_database()")
    return f"ran `{sql}`: {count(before)} statements of {database} cleared; measuring afresh from now"
