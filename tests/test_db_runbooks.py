"""The guide's database runbooks (`db`, `db connections`, `db slow`, `db indexes`, `db sizes`,
`db settings`, `db explain`) and their remediations, on a real PostgreSQL with pg_stat_statements.

The module's database is the demo `erp` schema plus the conditions the runbooks look for, made for
real: a 50,000-row table read by sequential scans and never analyzed, an index nothing uses, an
index left invalid by a failed concurrent build, and a statement that takes over a second.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import time
import uuid
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bot.cli import run_check
from bot.core.findings import Status
from bot.core.registry import Refused
from bot.local.shell import Shell
from bot.settings import load_settings
from runbooks.database import connections as db_connections
from runbooks.database import overview as db_overview
from runbooks.database import settings as db_settings
from tests.db_support import flush_stats, one, remediate, run_verb, text_of, wait_until
from tests.fixtures.erpgo import load_demo_database

BIG_ROWS = 50_000
DB_VERBS = ["db", "db connect", "db connections", "db slow", "db indexes", "db sizes", "db settings", "db explain"]


@pytest.fixture(scope="module")
async def lab(postgres_server) -> str:
    """The demo schema with the runbooks' conditions planted; returns its DSN."""
    name = f"dblab_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    dsn = postgres_server.dsn(name)
    await load_demo_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # a big table, never analyzed (autovacuum off for it), read by sequential scans
        await conn.execute(
            "CREATE TABLE audit_log (id bigint, actor text, happened_at timestamptz) WITH (autovacuum_enabled = off)"
        )
        await conn.execute(
            f"INSERT INTO audit_log SELECT g, 'user' || (g % 100), now() - g * interval '1 minute'"
            f" FROM generate_series(1, {BIG_ROWS}) g"
        )
        await conn.execute("CREATE INDEX idx_audit_log_happened_at ON audit_log (happened_at)")  # nothing uses it
        for _ in range(4):
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'user7'")
        await conn.fetchval("SELECT count(*) FROM audit_log")
        # an index left invalid by a failed CREATE UNIQUE INDEX CONCURRENTLY (duplicate codes)
        await conn.execute("CREATE TABLE coupons (code text)")
        await conn.execute("INSERT INTO coupons VALUES ('WELCOME'), ('WELCOME'), ('SPRING')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_coupons_code ON coupons (code)")
        # a statement slower than the guide's one second, and one with a constant (so a parameter)
        await conn.execute("SELECT pg_sleep(1.1)")
        await conn.fetch("SELECT * FROM audit_log WHERE id = 42")
        # a DELETE that pg_stat_statements records although its transaction rolled back
        await conn.execute("CREATE TABLE sessions_archive AS SELECT g AS id FROM generate_series(1, 100) g")
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("DELETE FROM sessions_archive")
        await transaction.rollback()
        await flush_stats(conn)
    finally:
        await conn.close()
    return dsn


async def queryid_of(dsn: str, pattern: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        queryid = await conn.fetchval(
            "SELECT queryid FROM pg_stat_statements WHERE query LIKE $1"
            " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            pattern,
        )
    finally:
        await conn.close()
    assert queryid is not None, f"{pattern!r} not recorded by pg_stat_statements"
    return queryid


@asynccontextmanager
async def sessions(dsn: str, *application_names: str):
    """Open connections with these application names; closed on exit."""
    conns = [await asyncpg.connect(dsn, server_settings={"application_name": name}) for name in application_names]
    try:
        yield conns
    finally:
        for conn in conns:
            await conn.close()


# --- /erpgo help, the shell and the CLI ------------------------------------------------------


async def test_help_lists_every_db_verb(start_bot):
    bot = await start_bot()
    result = await bot.command("help")
    text = result.json["blocks"][0]["text"]["text"]
    for verb in DB_VERBS:
        assert f"`/erpgo {verb}" in text, verb
    assert '`/erpgo db explain &lt;queryid | "SELECT …"&gt;`' in text


async def test_db_with_an_unknown_subcommand_lists_the_db_verbs(start_bot):
    bot = await start_bot()
    result = await bot.command("db frobnicate")
    text = result.json["blocks"][0]["text"]["text"]
    assert "unknown `db` subcommand `frobnicate`" in text and "`db slow`" in text and "`db connect`" in text
    assert bot.slack.channel_messages("C0OPS") == []


async def test_db_overview_in_slack_puts_the_worst_first(start_bot, lab):
    """A session holds a row lock in an open transaction; another waits for it."""
    holder = await asyncpg.connect(lab, server_settings={"application_name": "billing"})
    waiter = await asyncpg.connect(lab, server_settings={"application_name": "reports"})
    await holder.execute("BEGIN; SELECT * FROM coupons WHERE code = 'SPRING' FOR UPDATE")
    task = asyncio.ensure_future(waiter.execute("UPDATE coupons SET code = 'SPRING' WHERE code = 'SPRING'"))
    try:
        await wait_until(
            holder,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reports' AND wait_event_type = 'Lock'",
        )
        bot = await start_bot(erpgo_database_url=lab)
        await bot.command("db")
        head = bot.slack.channel_messages("C0OPS")[0]
        lines = [
            line
            for block in head["blocks"]
            if block["type"] == "section"
            for line in block["text"]["text"].splitlines()
        ]
        assert head["blocks"][0]["text"]["text"] == "ERPGo db: WARNING"
        assert lines[0].startswith(":large_yellow_circle: *PostgreSQL locks* — 1 blocked session")
        assert f"blocked by pid {await holder.fetchval('SELECT pg_backend_pid()')}" in lines[0]
        components = [re.match(r"^:\w+: \*(.+?)\*", line).group(1) for line in lines]
        assert set(components) == {
            "PostgreSQL",
            "PostgreSQL connections",
            "PostgreSQL cache",
            "PostgreSQL transactions",
            "PostgreSQL locks",
        }
        transactions = next(line for line in lines if "*PostgreSQL transactions*" in line)
        assert "(billing, user postgres), idle in transaction" in transactions
        thread = bot.slack.thread("C0OPS", head["ts"])
        assert "no replica attached" in str(thread[0]["blocks"])
    finally:
        await holder.execute("ROLLBACK")
        await task
        await holder.close()
        await waiter.close()


async def test_db_overview_statuses(lab, monkeypatch):
    findings = await run_verb("db", lab)
    server = one(findings, "PostgreSQL")
    assert server.status is Status.OK and server.title.startswith("PostgreSQL 15")
    assert "(primary), up " in server.title and "connect " in server.title
    connections = one(findings, "PostgreSQL connections")
    assert connections.status is Status.OK and connections.data["usable"] == 97  # 100 minus 3 for superusers
    assert one(findings, "PostgreSQL locks").title == "no blocked sessions"
    assert one(findings, "PostgreSQL cache").status is Status.OK
    async with sessions(lab, "billing") as (idle,):
        await idle.execute("BEGIN; SELECT 1")
        monkeypatch.setattr(db_overview, "LONG_TRANSACTION_WARN_S", 0.0)
        findings = await run_verb("db", lab)
    longest = one(findings, "PostgreSQL transactions")
    assert longest.status is Status.WARN and "billing" in longest.title
    assert any("idle in transaction for" in line for line in longest.details)


async def test_shell_runs_a_db_verb(start_bot, lab):
    bot = await start_bot(erpgo_database_url=lab)
    out = io.StringIO()
    shell = Shell(bot.slack, bot.runtime, "U0SHELL", out=out)
    await shell.handle("/erpgo db sizes")
    text = out.getvalue()
    assert "Measuring tables and indexes" in text
    assert "largest table public.audit_log" in text


async def test_cli_check_db_connections_json(lab, capsys):
    settings = load_settings(erpgo_database_url=lab)
    async with sessions(lab, "billing", "billing"):
        code = await run_check(settings, ["db", "connections"], as_json=True)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["verb"] == "db connections" and doc["status"] == "ok"
    components = [f["component"] for f in doc["findings"]]
    assert components == [
        "PostgreSQL connections",
        "PostgreSQL clients",
        "PostgreSQL idle in transaction",
        "PostgreSQL activity",
    ]


# --- db connections ----------------------------------------------------------------------------


async def test_connections_by_state_user_and_application(lab, monkeypatch):
    apps = ["billing"] * 3 + ["reports"] * 2 + ["erpgo-api"]
    async with sessions(lab, *apps) as conns:
        await conns[0].execute("BEGIN; SELECT count(*) FROM coupons")  # billing, idle in transaction
        pid = await conns[0].fetchval("SELECT pg_backend_pid()")
        await conns[3].execute("SELECT pg_sleep(0)")
        findings = await run_verb("db connections", lab)
        monkeypatch.setattr(db_connections, "IDLE_IN_TRANSACTION_WARN_S", 0.0)
        warned = await run_verb("db connections", lab)
        await conns[0].execute("ROLLBACK")

    by_state = one(findings, "PostgreSQL connections")
    assert by_state.status is Status.OK
    assert by_state.data["by_state"]["idle in transaction"] >= 1 and by_state.data["by_state"]["idle"] >= 5
    assert by_state.data["max_connections"] == 100 and by_state.data["superuser_reserved"] == 3
    assert "3 reserved for superusers, 97 for everyone else" in text_of(by_state)

    clients = one(findings, "PostgreSQL clients")
    rows = {c["application"]: c for c in clients.data["clients"]}
    assert rows["billing"]["total"] == 3 and rows["billing"]["idle_in_transaction"] == 1
    assert rows["reports"]["total"] == 2 and rows["erpgo-api"]["total"] == 1
    assert clients.title.startswith("billing (user postgres) holds the most: 3 of")
    assert "erpgo-chatops" not in [c["application"] for c in clients.data["clients"]]
    assert any(line.startswith("billing ") and " 3 " in line for line in clients.evidence)

    idle = one(findings, "PostgreSQL idle in transaction")
    assert idle.status is Status.OK  # seconds old: below the guide-sized threshold
    assert f"pid {pid} (billing, user postgres)" in idle.title
    idle_warned = one(warned, "PostgreSQL idle in transaction")
    assert idle_warned.status is Status.WARN and f"pid {pid}" in idle_warned.title
    assert any("only pg_terminate_backend" in line for line in idle_warned.details)
    assert idle_warned.data["sessions"][0]["pid"] == pid


async def test_database_activity_counts_commits_and_rollbacks(lab):
    async with sessions(lab, "billing") as (conn,):
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.execute("SELECT 1/0")
        await flush_stats(conn)
        findings = await run_verb("db connections", lab)
    activity = one(findings, "PostgreSQL activity")
    assert activity.status is Status.OK
    assert activity.data["database"].startswith("dblab_")
    assert activity.data["xact_commit"] > 0 and activity.data["xact_rollback"] >= 1
    assert re.search(r"\d+ backends, [\d,]+ commits, [\d,]+ rollbacks", activity.title)


# --- db slow, db explain --------------------------------------------------------------------------


async def test_slow_statements_rank_by_mean_and_total(lab):
    findings = await run_verb("db slow", lab)
    slow = one(findings, "PostgreSQL slow statements")
    assert slow.status is Status.WARN  # over the guide's one second, under its five
    assert "SELECT pg_sleep($1)" in slow.title and slow.data["columns"] == ["mean_exec_time", "total_exec_time"]
    top = slow.data["by_mean"][0]
    assert top["mean_ms"] >= 1000 and top["calls"] == 1 and top["rows"] == 1
    assert slow.evidence[0].startswith(f"{top['queryid']}  mean ")
    assert not any("CREATE " in line for line in slow.evidence)  # DDL is not an application statement
    [enable] = slow.proposals  # the slow query log is off on this server
    assert enable.action == "db.slowlog" and enable.args == {"ms": 1000, "previous": -1}
    assert enable.preview == "ALTER SYSTEM SET log_min_duration_statement = 1000;\nSELECT pg_reload_conf();"

    busiest = one(findings, "PostgreSQL busiest statements")
    assert busiest.status is Status.OK and busiest.data["by_total"][0]["query"] == "SELECT pg_sleep($1)"
    [reset] = busiest.proposals
    assert reset.action == "db.pgss_reset" and reset.args == {}
    assert reset.preview == (
        "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database();"
    )


async def test_stale_statistics_propose_analyze(lab):
    findings = await run_verb("db slow", lab)
    stale = one(findings, "PostgreSQL statistics")
    assert stale.status is Status.WARN and "public.audit_log" in stale.title
    assert "never analyzed" in stale.evidence[0]
    [proposal] = stale.proposals
    assert proposal.action == "db.analyze" and proposal.args == {"schema": "public", "table": "audit_log"}
    assert proposal.preview == 'ANALYZE "public"."audit_log";'


async def test_slow_without_the_extension_in_this_database_says_how(fresh_database):
    dsn = fresh_database("nopgss")  # preloaded on the server, but CREATE EXTENSION never ran here
    findings = await run_verb("db slow", dsn)
    statements = one(findings, "PostgreSQL statements")
    assert statements.status is Status.WARN
    assert "loaded but not created" in statements.title
    assert "CREATE EXTENSION pg_stat_statements" in statements.title
    findings = await run_verb(f"db explain {1}", dsn)
    assert one(findings, "PostgreSQL plan").status is Status.WARN


async def test_explain_plans_without_running_the_statement(lab):
    queryid = await queryid_of(lab, "DELETE FROM sessions_archive")
    [plan] = await run_verb(f"db explain {queryid}", lab)
    assert plan.status is Status.OK
    assert plan.title.startswith(f"plan for queryid {queryid}: Delete on sessions_archive")
    assert any("Seq Scan on sessions_archive" in line for line in plan.evidence)
    assert not any("actual time" in line for line in plan.evidence)  # EXPLAIN, never EXPLAIN ANALYZE
    assert any("planned, not run" in line for line in plan.details)
    conn = await asyncpg.connect(lab)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sessions_archive") == 100
    finally:
        await conn.close()


async def test_explain_points_at_a_big_sequential_scan(lab):
    queryid = await queryid_of(lab, "SELECT count(*) FROM audit_log")
    [plan] = await run_verb(f"db explain {queryid}", lab)
    assert plan.status is Status.OK and "Seq Scan on audit_log" in "\n".join(plan.evidence)
    assert any(line.startswith("sequential scan on audit_log") for line in plan.details)


async def test_a_parameterised_statement_gets_a_generic_plan_never_run(lab):
    """PostgreSQL 12-15: PREPARE with plan_cache_mode = force_generic_plan, EXPLAIN EXECUTE with NULLs."""
    queryid = await queryid_of(lab, "SELECT * FROM audit_log WHERE id = $1")
    [plan] = await run_verb(f"db explain {queryid}", lab)
    assert plan.status is Status.OK and plan.title.startswith(f"plan for queryid {queryid}: ")
    assert any("$1" in line for line in plan.evidence), "a generic plan keeps the parameter"
    assert not any("actual time" in line for line in plan.evidence)
    assert any(line.startswith("a generic plan: the values of $1") for line in plan.details)


async def test_a_typed_select_is_explained_without_running_it(lab):
    started = time.perf_counter()
    [plan] = await run_verb("db explain 'SELECT pg_sleep(30), count(*) FROM audit_log WHERE id > 5'", lab)
    assert plan.status is Status.OK and plan.title.startswith("plan for your SELECT: ")
    assert time.perf_counter() - started < 10, "planned, not run: pg_sleep(30) never slept"
    [with_parameter] = await run_verb("db explain 'SELECT * FROM audit_log WHERE id = $1::bigint'", lab)
    assert with_parameter.status is Status.OK and any("$1" in line for line in with_parameter.evidence)


@pytest.mark.parametrize(
    "sql, why",
    [
        ("DELETE FROM audit_log", "it is DELETE, not a SELECT"),
        ("SELECT 1; DELETE FROM audit_log", "2 statements: give one SELECT"),
        ("WITH gone AS (DELETE FROM audit_log RETURNING id) SELECT count(*) FROM gone", "its WITH runs DELETE"),
        ("SELECT * INTO stolen FROM audit_log", "SELECT … INTO creates a table"),
        ("SELECT * FROM audit_log FOR UPDATE", "FOR UPDATE/SHARE takes row locks"),
        ("SELEC * FROM audit_log", "PostgreSQL cannot parse it"),
    ],
)
async def test_a_typed_statement_other_than_one_read_only_select_is_refused(lab, sql, why):
    [plan] = await run_verb("db explain " + shlex.quote(sql), lab)
    assert plan.status is Status.WARN and plan.title.startswith("refused: only one read-only SELECT is explained")
    assert why in plan.title and plan.evidence == []
    conn = await asyncpg.connect(lab)
    try:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") > 0
        assert await conn.fetchval("SELECT to_regclass('stolen')") is None
    finally:
        await conn.close()


async def test_explain_refuses_what_is_not_a_query(lab):
    queryid = await queryid_of(lab, "CREATE INDEX idx_audit_log_happened_at%")
    [plan] = await run_verb(f"db explain {queryid}", lab)
    assert plan.status is Status.WARN and "is CREATE, not one of SELECT/INSERT/UPDATE/DELETE/WITH" in plan.title
    [unknown] = await run_verb(f"db explain {12345}", lab)
    assert unknown.status is Status.WARN and "queryid 12345 is not in pg_stat_statements" in unknown.title


async def test_explain_needs_an_integer_queryid(start_bot, lab):
    bot = await start_bot(erpgo_database_url=lab)
    for text, problem in (
        ("db explain abc", "queryid must be an integer, not `abc`"),
        ("db explain", "give one queryid"),
        ("db explain 1 2", "give one queryid"),
    ):
        result = await bot.command(text)
        answer = result.json["blocks"][0]["text"]["text"]
        assert problem in answer and '`/erpgo db explain &lt;queryid | "SELECT …"&gt;`' in answer, answer
    assert bot.slack.channel_messages("C0OPS") == []


# --- db indexes, db sizes --------------------------------------------------------------------------


async def test_indexes_unused_invalid_and_sequential_scans(lab):
    findings = await run_verb("db indexes", lab)
    unused = one(findings, "PostgreSQL unused indexes")
    assert unused.status is Status.WARN
    names = [u["index"] for u in unused.data["unused"]]
    assert "public.idx_audit_log_happened_at" in names and "public.idx_products_barcode" in names
    assert "public.orders_pkey" not in names and "public.products_sku_key" not in names  # they enforce rules
    big = next(u for u in unused.data["unused"] if u["index"] == "public.idx_audit_log_happened_at")
    assert big["size"] > 500_000
    assert unused.title.startswith(f"{len(names)} unused indexes") and "idx_audit_log_happened_at (" in unused.title

    invalid = one(findings, "PostgreSQL invalid indexes")
    assert invalid.status is Status.WARN and invalid.data["invalid"] == ["public.idx_coupons_code"]
    [rebuild] = invalid.proposals
    assert rebuild.action == "db.reindex" and rebuild.args == {"schema": "public", "index": "idx_coupons_code"}
    assert rebuild.preview == 'REINDEX INDEX CONCURRENTLY "public"."idx_coupons_code";'

    scans = one(findings, "PostgreSQL sequential scans")
    assert scans.status is Status.WARN and scans.title.startswith("public.audit_log: ")
    table = scans.data["tables"][0]
    assert table["seq_scan"] >= 5 and table["seq_tup_read"] >= 5 * BIG_ROWS and table["n_live_tup"] == BIG_ROWS

    usage = one(findings, "PostgreSQL index usage")
    assert usage.status is Status.OK and usage.data["indexes"] >= 20


async def test_sizes_show_the_largest_tables_and_indexes(lab):
    findings = await run_verb("db sizes", lab)
    tables = one(findings, "PostgreSQL tables")
    assert tables.status is Status.OK
    top = tables.data["tables"][0]
    assert top["table"] == "public.audit_log" and top["rows"] == BIG_ROWS
    assert top["total"] == top["heap"] + top["indexes"] + top["toast"]
    assert "largest table public.audit_log" in tables.title
    indexes = one(findings, "PostgreSQL indexes")
    assert indexes.data["indexes"][0]["index"] == "public.idx_audit_log_happened_at"


async def test_everything_is_fine_on_an_empty_database(fresh_database):
    dsn = fresh_database("empty")
    for verb in ("db indexes", "db sizes"):
        findings = await run_verb(verb, dsn)
        assert all(f.status is Status.OK for f in findings), [(f.component, f.title) for f in findings]


# --- db settings -------------------------------------------------------------------------------------


async def test_settings_note_what_looks_wrong_for_the_machine(lab):
    findings = await run_verb("db settings", lab)
    assert [f.component for f in findings] == list(db_settings.SETTINGS)
    ram = one(findings, "shared_buffers").data["ram"]
    assert ram and ram > 1024**3  # read by the server from /proc/meminfo
    shared = one(findings, "shared_buffers")
    if ram / 16 > 128 * 1024**2:  # the cluster's 128MB default against this machine's RAM
        assert shared.status is Status.WARN and "low for" in shared.title
        assert any("25 % of RAM" in line for line in shared.details)
    assert any("needs a restart" in line for line in shared.details)
    slowlog = one(findings, "log_min_duration_statement")
    assert slowlog.status is Status.WARN and slowlog.title.startswith("off (-1) — slow query log is off")
    [enable] = slowlog.proposals
    assert enable.args == {"ms": 1000, "previous": -1}
    assert one(findings, "work_mem").status is Status.OK
    assert one(findings, "max_connections").title == "100 connections"


@pytest.mark.parametrize(
    ("ram", "values", "name", "expected"),
    [
        (8 * 1024**3, {"shared_buffers": 6 * 1024**3}, "shared_buffers", "more than half of RAM"),
        (8 * 1024**3, {"effective_cache_size": 16 * 1024**3}, "effective_cache_size", "larger than the server's RAM"),
        (4 * 1024**3, {"work_mem": 256 * 1024**2, "max_connections": 100}, "work_mem", "far above RAM"),
    ],
)
def test_setting_notes_for_other_machines(ram, values, name, expected):
    row = {"bytes": values.get(name), "setting": str(values.get(name, 0))}
    status, notes = db_settings.setting_note(name, row, values, ram)
    assert status is Status.WARN and expected in notes[0]


# --- remediations ----------------------------------------------------------------------------------


async def test_analyze_a_table_then_the_database(fresh_database):
    dsn = fresh_database("analyze")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute('CREATE TABLE "Weird ""Name""" (n int) WITH (autovacuum_enabled = off)')
        await conn.execute('INSERT INTO "Weird ""Name""" SELECT generate_series(1, 5000)')
        await flush_stats(conn)
        stale = one(await run_verb("db slow", dsn), "PostgreSQL statistics")
        [proposal] = stale.proposals
        assert proposal.preview == 'ANALYZE "public"."Weird ""Name""";'
        result = await remediate(proposal.action, dsn, **proposal.args)
        assert result.startswith('ran `ANALYZE "public"."Weird ""Name""";`') and "≈ 5,000 rows" in result
        assert await conn.fetchval(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1", 'Weird "Name"'
        )
        fresh = one(await run_verb("db slow", dsn), "PostgreSQL statistics")
        assert fresh.status is Status.OK

        whole = await remediate("db.analyze", dsn)
        assert whole.startswith("ran `ANALYZE;`") and "statistics refreshed for the 1 tables" in whole
        await conn.execute('DROP TABLE "Weird ""Name"""')
        with pytest.raises(Refused, match="no longer exists"):
            await remediate("db.analyze", dsn, schema="public", table='Weird "Name"')
        with pytest.raises(Refused, match="identifier"):
            await remediate("db.analyze", dsn, schema="public", table="")
    finally:
        await conn.close()


async def test_reindex_rebuilds_an_invalid_index_once_the_data_is_fixed(fresh_database):
    dsn = fresh_database("reindex")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE coupons (code text); INSERT INTO coupons VALUES ('A'), ('A'), ('B')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_coupons_code ON coupons (code)")
        invalid = one(await run_verb("db indexes", dsn), "PostgreSQL invalid indexes")
        [proposal] = invalid.proposals
        await conn.execute("DELETE FROM coupons WHERE ctid = (SELECT max(ctid) FROM coupons WHERE code = 'A')")
        result = await remediate(proposal.action, dsn, **proposal.args)
        assert result.startswith('ran `REINDEX INDEX CONCURRENTLY "public"."idx_coupons_code";`')
        assert result.endswith(", valid")
        assert await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_coupons_code'::regclass")
        assert one(await run_verb("db indexes", dsn), "PostgreSQL invalid indexes").status is Status.OK
        with pytest.raises(asyncpg.UniqueViolationError):  # and it enforces uniqueness again
            await conn.execute("INSERT INTO coupons VALUES ('B')")

        with pytest.raises(Refused, match="no longer exists"):
            await remediate("db.reindex", dsn, schema="public", index="idx_gone")
        with pytest.raises(Refused, match="system index"):
            await remediate("db.reindex", dsn, schema="pg_catalog", index="pg_class_oid_index")
        with pytest.raises(Refused, match="no longer exists"):  # a table is not an index
            await remediate("db.reindex", dsn, schema="public", index="coupons")
    finally:
        await conn.close()


async def test_slowlog_records_the_previous_value_and_offers_the_revert(lab, postgres_server):
    try:
        outcome = await remediate("db.slowlog", lab, ms=250, previous=-1)
        assert outcome == "log_min_duration_statement is now 250 ms (was off (-1)); to revert, approve db.slowlog ms=-1"
        [revert] = outcome.proposals
        assert revert.action == "db.slowlog" and revert.args == {"ms": -1, "previous": 250}
        assert revert.preview == "ALTER SYSTEM SET log_min_duration_statement = -1;\nSELECT pg_reload_conf();"
        conn = await asyncpg.connect(lab)
        try:
            assert await conn.fetchval("SHOW log_min_duration_statement") == "250ms"  # a new session sees it
        finally:
            await conn.close()

        setting = one(await run_verb("db settings", lab), "log_min_duration_statement")
        assert setting.status is Status.OK and setting.title == "statements slower than 250 ms"
        assert [p.args for p in setting.proposals] == [{"ms": -1, "previous": 250}]  # the revert, from the server
        assert any("ALTER SYSTEM" in line for line in setting.details)

        with pytest.raises(Refused, match="is now 250 ms, not off"):  # proposed before the change: stale
            await remediate("db.slowlog", lab, ms=1000, previous=-1)
        assert await remediate("db.slowlog", lab, **revert.args) == (
            "log_min_duration_statement is now off (-1) (was 250 ms); to revert, approve db.slowlog ms=250"
        )
    finally:
        postgres_server.psql("ALTER SYSTEM RESET log_min_duration_statement; SELECT pg_reload_conf();")


async def test_pgss_reset_clears_only_this_database(fresh_database, lab):
    dsn = fresh_database("reset")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        await conn.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'zz%'")
        busiest = one(await run_verb("db slow", dsn), "PostgreSQL busiest statements")
        [proposal] = busiest.proposals
        assert proposal.summary.startswith("Reset pg_stat_statements for database reset_")
        result = await remediate(proposal.action, dsn, **proposal.args)
        assert result.startswith(f"ran `{proposal.preview}`: ") and "statements of reset_" in result
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%relname LIKE%'"
                " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            == 0
        )
    finally:
        await conn.close()
    assert await queryid_of(lab, "SELECT pg_sleep($1)")  # another database keeps its statistics
