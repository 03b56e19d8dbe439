"""Guide: "Slow Query Performance › Analyze Query Plans" — `db explain <queryid>` and `db explain "<SELECT…>"`:
EXPLAIN, never ANALYZE, so the statement is planned and never run.

pg_stat_statements keeps statements with their constants replaced by $1, $2…: those are planned as a
*generic plan* (the plan PostgreSQL uses when it does not know the values) — `EXPLAIN (GENERIC_PLAN)` from
PostgreSQL 16, before that `PREPARE` with `plan_cache_mode = force_generic_plan` and `EXPLAIN EXECUTE` with
NULLs. A statement typed by the user is refused unless PostgreSQL's own parser (pglast) reads it as one
read-only SELECT (no INTO, no FOR UPDATE, no data-modifying WITH). Everything runs in a READ ONLY transaction
under a statement_timeout that is rolled back, and a prepared statement is deallocated whatever happens."""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.parse import ascii_int
from bot.core.registry import Args, Runbook, UsageError
from runbooks.database.common import (
    SEQ_SCAN_MIN_ROWS,
    SLOW,
    count,
    db_check,
    db_connection,
    first_line,
    fmt_ms,
    one_line,
    server_version_num,
    statement_text,
)
from runbooks.database.statements import first_keyword, statements_source

runbook = Runbook("database.explain")

COMPONENT = "PostgreSQL plan"
MAX_SQL = 4000
EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
GENERIC_PLAN_FROM = 160000  # PostgreSQL 16: EXPLAIN (GENERIC_PLAN)
PREPARED = "erpgo_chatops_explain"
PARAMETER = re.compile(r"\$\d+")
PLAN_SEQ_SCAN = re.compile(r"Seq Scan on (\S+).*?rows=(\d+)")
NOT_RUN = "EXPLAIN only: the statement was planned, not run (read-only transaction, rolled back)"


@dataclass(frozen=True)
class ExplainArgs(Args):
    queryid: int | None = None
    sql: str | None = None


def parse_explain(words: list[str]) -> ExplainArgs:
    if not words:
        raise UsageError('give one queryid (the number `db slow` shows before each statement) or a quoted "SELECT …"')
    if all(re.fullmatch(r"-?\d+", word) for word in words):
        if len(words) > 1:
            raise UsageError("give one queryid (the number `db slow` shows before each statement)")
        return ExplainArgs(queryid=ascii_int(words[0], min=-(2**63), max=2**63 - 1, what="queryid"))
    if len(words) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", words[0]):
        raise UsageError(f"queryid must be an integer, not `{words[0]}`; give one queryid or a quoted SELECT")
    sql = " ".join(words).strip().rstrip(";").strip()
    if len(sql) > MAX_SQL:
        raise UsageError(f"the statement is longer than {MAX_SQL} characters")
    return ExplainArgs(sql=sql)


runbook.verb(
    "db explain",
    "EXPLAIN (never ANALYZE) a statement from `db slow`, or a read-only SELECT you give (quoted)",
    usage='<queryid | "SELECT …">',
    parse=parse_explain,
    ack="Planning the statement…",
)


# --- planning ------------------------------------------------------------------------------------------


async def parameter_count(conn: asyncpg.Connection) -> int:
    types = await conn.fetchval("SELECT parameter_types FROM pg_prepared_statements WHERE name = $1", PREPARED)
    return len(types or [])


async def generic_plan(conn: asyncpg.Connection, sql: str, version: int) -> list[str]:
    """The plan of `sql` without knowing its parameters' values; the caller holds a READ ONLY transaction."""
    if not PARAMETER.search(sql):
        return [r[0] for r in await conn.fetch("EXPLAIN " + sql)]
    if version >= GENERIC_PLAN_FROM:
        return [r[0] for r in await conn.fetch("EXPLAIN (GENERIC_PLAN) " + sql)]
    await conn.fetch("SET LOCAL plan_cache_mode = force_generic_plan")
    await conn.fetch(f"PREPARE {PREPARED} AS {sql}")  # fetch: the extended protocol takes one statement only
    nulls = ", ".join(["NULL"] * await parameter_count(conn))
    return [r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {PREPARED}({nulls})")]


async def plan_read_only(ctx: CheckContext, conn: asyncpg.Connection, sql: str) -> list[str]:
    timeout_ms = int(max(ctx.settings.erpgo_check_timeout - 0.5, 0.5) * 1000)
    version = await server_version_num(conn)
    transaction = conn.transaction(readonly=True)
    await transaction.start()
    try:
        await conn.fetch(f"SET LOCAL statement_timeout = {timeout_ms}")
        return await generic_plan(conn, sql, version)
    finally:
        await transaction.rollback()  # PREPARE is not transactional: deallocated by name
        if await conn.fetchval("SELECT count(*) FROM pg_prepared_statements WHERE name = $1", PREPARED):
            await conn.fetch(f"DEALLOCATE {PREPARED}")


def plan_finding(label: str, sql: str, plan: list[str], facts: list[str], data: dict[str, object]) -> Finding:
    notes = [
        f"sequential scan on {name} (≈ {count(int(rows))} rows): an index on its filter columns may help"
        for name, rows in PLAN_SEQ_SCAN.findall("\n".join(plan))
        if int(rows) >= SEQ_SCAN_MIN_ROWS
    ]
    generic = ["a generic plan: the values of $1… are unknown, as when the application prepares it"]
    details = [statement_text(sql, 300), *facts, NOT_RUN, *(generic if PARAMETER.search(sql) else []), *notes]
    title = f"plan for {label}: {one_line(plan[0] if plan else '', 140)}"
    return Finding.ok(COMPONENT, title, details=details, evidence=plan, data=data | {"plan": plan})


async def explained(
    ctx: CheckContext, conn: asyncpg.Connection, label: str, sql: str, data: dict[str, object], facts: list[str]
) -> Finding:
    try:
        plan = await plan_read_only(ctx, conn, sql)
    except asyncpg.PostgresError as exc:
        return Finding.error(
            COMPONENT,
            f"EXPLAIN of {label} failed: {first_line(exc)}",
            details=[
                statement_text(sql, 300),
                "the statement may rely on a search_path, temporary table or role the bot does not have, "
                "or a parameter whose type PostgreSQL cannot infer",
            ],
            data=data,
        )
    return plan_finding(label, sql, plan, facts, data)


# --- the checks ----------------------------------------------------------------------------------------

STATEMENT_OF = (
    "SELECT query, calls, {mean}::float8 AS mean_ms FROM pg_stat_statements "
    "WHERE queryid = $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY calls DESC LIMIT 1"
)


async def explain_queryid(ctx: CheckContext, conn: asyncpg.Connection, queryid: int) -> Finding:
    source = await statements_source(conn)
    if not source.available:
        return Finding.warn(COMPONENT, "pg_stat_statements unavailable — " + source.problem)
    row = await conn.fetchrow(STATEMENT_OF.format(mean=source.mean_col), queryid)
    if row is None:
        return Finding.warn(
            COMPONENT,
            f"queryid {queryid} is not in pg_stat_statements for this database",
            details=[
                "`db slow` lists the current queryids (they change when statistics are reset or the server is upgraded)"
            ],
            data={"queryid": queryid},
        )
    query = (row["query"] or "").strip().rstrip(";").rstrip()
    data = {"queryid": queryid, "query": statement_text(query, 300), "calls": row["calls"], "mean_ms": row["mean_ms"]}
    if query.startswith("<insufficient privilege>"):
        return Finding.warn(
            COMPONENT,
            f"queryid {queryid}: the statement text is hidden from the bot's user",
            details=["grant it pg_read_all_stats to see other users' statements"],
            data=data,
        )
    keyword = first_keyword(query)
    if keyword not in EXPLAINABLE:
        return Finding.warn(
            COMPONENT,
            f"queryid {queryid} is {keyword or 'not one statement'}, not one of {'/'.join(EXPLAINABLE)}: nothing to plan",
            details=[statement_text(query, 300)],
            data=data,
        )
    facts = [f"{count(row['calls'])} calls, mean {fmt_ms(row['mean_ms'])}"]
    return await explained(ctx, conn, f"queryid {queryid}", query, data, facts)


@db_check(runbook, "db explain", component=COMPONENT, section=SLOW)
async def explain_statement(ctx: CheckContext) -> Finding:
    """Guide: "Analyze Query Plans" — EXPLAIN of a pg_stat_statements statement or of a SELECT typed by the
    user, with a generic plan when it has parameters; never ANALYZE."""
    from runbooks.database.read_only import read_only_refusal  # loads pglast

    asked = ctx.arg(ExplainArgs)
    if asked.sql is not None and (refused := read_only_refusal(asked.sql)):
        return Finding.warn(
            COMPONENT,
            f"refused: only one read-only SELECT is explained — {refused}",
            details=[statement_text(asked.sql, 300)],
            data={"refused": refused},
        )
    async with db_connection(ctx) as conn:
        if asked.sql is not None:
            return await explained(ctx, conn, "your SELECT", asked.sql, {"query": statement_text(asked.sql, 300)}, [])
        return await explain_queryid(ctx, conn, asked.queryid or 0)
