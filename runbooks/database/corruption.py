"""Guide: "Emergency Procedures › Data Corruption › Data Recovery" step 2, Assess Damage — `db corruption`.

Three reads, none of which changes anything: PostgreSQL's own checks on the largest indexes and their
tables (`pg_amcheck --heapallindexed` where the tool is installed beside the bot, else the `amcheck`
extension's `bt_index_check` in SQL, each under a timeout); whether data checksums are on (and the
checksum failures the server counted); and the guide's schema-only dump, compared with the newest
backup's table of contents — a table the backup has and the database lost is damage, one the database
has and the backup lacks is a backup older than the schema.
"""

from __future__ import annotations

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.registry import Runbook
from bot.targets import NotConfigured
from bot.targets.backup_store import backups_at, location_of
from bot.targets.backups import BackupError, DumpToc
from bot.targets.pg_check import ToolNotFound, pg_amcheck, schema_toc
from runbooks.database.common import db_check, db_connection

runbook = Runbook("database.corruption")

SECTION = "Emergency Procedures › Data Corruption › Data Recovery › Assess Damage"
LARGEST_INDEXES = 10
AMCHECK_SECONDS = 60.0
INDEX_SECONDS = 10.0  # per index, when bt_index_check runs in SQL
DUMP_SECONDS = 60.0
SHOWN = 8

runbook.verb(
    "db corruption",
    "signs of corruption: pg_amcheck (or amcheck's bt_index_check) on the largest indexes, data checksums on or "
    "off, a schema-only dump compared with the newest backup's table of contents",
    ack="Checking the database for corruption (this reads the largest indexes)…",
)

LARGEST_INDEXES_SQL = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index,
       quote_ident(tn.nspname) || '.' || quote_ident(t.relname) AS table_name,
       c.oid AS index_oid, pg_relation_size(c.oid) AS bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY pg_relation_size(c.oid) DESC, 1
LIMIT $1
"""
AMCHECK_INSTALLED = "SELECT extversion FROM pg_extension WHERE extname = 'amcheck'"
CHECKSUMS_SQL = """
SELECT current_setting('data_checksums') AS checksums,
       (SELECT checksum_failures FROM pg_stat_database WHERE datname = current_database()) AS failures,
       (SELECT checksum_last_failure FROM pg_stat_database WHERE datname = current_database()) AS last_failure
"""
HOW_TO_AMCHECK = (
    "`CREATE EXTENSION amcheck;` in the database (a superuser, once: it only adds read-only check functions), "
    "then `/erpgo db corruption` again"
)


# --- indexes and their tables ------------------------------------------------------------------


async def sql_index_checks(conn: asyncpg.Connection, indexes: list[asyncpg.Record]) -> list[str]:
    """bt_index_check(heapallindexed) on each index in turn, each under its own timeout: the problems found."""
    problems = []
    for row in indexes:
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {int(INDEX_SECONDS * 1000)}")
                await conn.execute(
                    "SELECT bt_index_check(index => $1::oid::regclass, heapallindexed => true)", row["index_oid"]
                )
        except asyncpg.QueryCanceledError:
            problems.append(f"{row['index']}: not checked within {INDEX_SECONDS:g} s")
        except asyncpg.PostgresError as exc:
            problems.append(f"{row['index']}: {describe_error(exc)}")
    return problems


def amcheck_finding(how: str, indexes: list[asyncpg.Record], problems: list[str], error: str = "") -> Finding:
    checked = f"{len(indexes)} largest index{'es' if len(indexes) != 1 else ''} and their tables"
    data = {"indexes": [r["index"] for r in indexes], "problems": problems, "how": how}
    if error:
        return Finding.error("Index check", f"{how} could not finish: {error}", data=data)
    if problems:
        title = f"{how} found {len(problems)} problem{'s' if len(problems) != 1 else ''} in the {checked}"
        details = [
            "a corrupt index answers wrong rows: stop the application (the guide's step 1) and rebuild it "
            "(`REINDEX INDEX CONCURRENTLY`), or restore (`/erpgo restore`) when a table is damaged",
            "`/erpgo logs <postgres container>` shows the server's own errors about it",
        ]
        return Finding.crit("Index check", title, details=details, evidence=problems[:50], data=data)
    return Finding.ok(
        "Index check",
        f"{how}: no corruption in the {checked}",
        evidence=[r["index"] for r in indexes][:SHOWN],
        data=data,
    )


async def run_amcheck(ctx: CheckContext, indexes: list[asyncpg.Record]) -> Finding:
    tables = sorted({r["table_name"] for r in indexes})
    try:
        report = await pg_amcheck(
            ctx.targets.pg.dsn, indexes=[r["index"] for r in indexes], tables=tables, timeout=AMCHECK_SECONDS
        )
    except TimeoutError:
        return amcheck_finding("pg_amcheck", indexes, [], f"no answer within {AMCHECK_SECONDS:g} s")
    return amcheck_finding("pg_amcheck --heapallindexed", indexes, list(report.problems), report.error)


@db_check(runbook, "db corruption", component="Index check", section=SECTION, timeout=AMCHECK_SECONDS + 30)
async def index_check(ctx: CheckContext) -> Finding:
    async with db_connection(ctx) as conn:
        if await conn.fetchval(AMCHECK_INSTALLED) is None:
            return Finding.skipped(
                "Index check", "the amcheck extension is not installed: indexes not checked", details=[HOW_TO_AMCHECK]
            )
        indexes = await conn.fetch(LARGEST_INDEXES_SQL, LARGEST_INDEXES)
        if not indexes:
            return Finding.ok("Index check", "no B-tree indexes to check")
        try:
            return await run_amcheck(ctx, indexes)
        except ToolNotFound:
            problems = await sql_index_checks(conn, indexes)
    return amcheck_finding("bt_index_check (amcheck, heapallindexed)", indexes, problems)


# --- data checksums ------------------------------------------------------------------------------


@db_check(runbook, "db corruption", component="Data checksums", section=SECTION)
async def data_checksums(ctx: CheckContext) -> Finding:
    async with db_connection(ctx) as conn:
        row = await conn.fetchrow(CHECKSUMS_SQL)
    failures = int(row["failures"] or 0)
    data = {"checksums": row["checksums"], "failures": failures}
    if failures:
        title = f"{failures} checksum failure{'s' if failures != 1 else ''}, the last at {row['last_failure']:%Y-%m-%d %H:%M} UTC"
        details = ["pages were damaged on disk: check the disk and its errors, then restore (`/erpgo restore`)"]
        return Finding.crit("Data checksums", title, details=details, data=data)
    if row["checksums"] == "on":
        return Finding.ok(
            "Data checksums", "on, no checksum failure counted: a damaged page is reported when it is read", data=data
        )
    details = [
        "without checksums a page damaged on disk is read as if it were good: corruption shows only as wrong "
        "answers or errors later",
        "turning them on is a host change: `pg_checksums --enable -D <data directory>` with the server stopped "
        "(minutes per 10 GB), or a new cluster made with `initdb --data-checksums` and the data restored into it",
    ]
    return Finding.warn("Data checksums", "off: damage on disk goes undetected", details=details, data=data)


# --- the schema against the newest backup --------------------------------------------------------


def compare_tables(live: DumpToc, backup: DumpToc, backup_name: str) -> Finding:
    lost = sorted(set(backup.tables) - set(live.tables))
    new = sorted(set(live.tables) - set(backup.tables))
    data = {"backup": backup_name, "tables": len(live.tables), "lost": lost, "new": new}
    same = f"{len(live.tables)} tables in the database, {len(backup.tables)} in {backup_name}"
    if lost:
        title = f"{len(lost)} table{'s' if len(lost) != 1 else ''} of the newest backup missing from the database: {', '.join(lost[:SHOWN])}"
        details = [
            same,
            "a table the backup has and the database lost is damage or a drop: `/erpgo restore` lists the dumps",
        ]
        return Finding.crit("Schema vs backup", title, details=details, data=data)
    if new:
        title = f"the database has {len(new)} table{'s' if len(new) != 1 else ''} the newest backup lacks: {', '.join(new[:SHOWN])}"
        details = [same, "the backup is older than the schema: a restore would lose them — `/erpgo backups now`"]
        return Finding.warn("Schema vs backup", title, details=details, data=data)
    return Finding.ok("Schema vs backup", f"the same {len(live.tables)} tables as {backup_name}", data=data)


@db_check(runbook, "db corruption", component="Schema vs backup", section=SECTION, timeout=2 * DUMP_SECONDS + 10)
async def schema_against_backup(ctx: CheckContext) -> Finding:
    try:
        location = location_of(ctx.settings)
    except NotConfigured as exc:
        return Finding.skipped("Schema vs backup", f"{exc}: no backup to compare the schema with")
    backups = backups_at(location, ctx.targets.docker)
    try:
        newest = (await backups.list())[:1]
        if not newest:
            return Finding.warn("Schema vs backup", "no backup to compare with", details=["`/erpgo backups now`"])
        backup = await backups.verify(newest[0], timeout=DUMP_SECONDS, read_data=False)
        live = await schema_toc(ctx.targets.pg.dsn, timeout=DUMP_SECONDS)
    except (BackupError, OSError) as exc:
        return Finding.error("Schema vs backup", str(exc)[:300])
    return compare_tables(live, backup, newest[0].name)
