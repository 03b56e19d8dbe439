"""`/erpgo db corruption` on the real ERPGo schema: pg_amcheck (and amcheck's bt_index_check in SQL) find an
index that no longer matches its table, data checksums are said off, and a table the newest backup has
and the database lost is named."""

from __future__ import annotations

import asyncpg
import pytest

from bot.core.findings import Status
from bot.targets.backups import dump
from runbooks.database.corruption import LARGEST_INDEXES_SQL, sql_index_checks
from tests.db_support import one, run_verb, text_of
from tests.demo_dialects import load_demo

# An index over an IMMUTABLE function that is then redefined: the index keeps the old results, as one does
# after a collation change — heapallindexed finds the rows whose index entry does not match.
PLANT_BROKEN_INDEX = """
CREATE FUNCTION sku_key(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower($1) $$;
CREATE TABLE legacy_skus AS SELECT 'SKU-' || g AS sku FROM generate_series(1, 20000) AS g;
CREATE INDEX idx_legacy_skus_key ON legacy_skus (sku_key(sku));
CREATE OR REPLACE FUNCTION sku_key(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper($1) || '!' $$;
"""


@pytest.fixture
async def erp(fresh_database) -> str:
    dsn = fresh_database("corruption")
    await load_demo(dsn, "real")
    return dsn


async def execute(dsn: str, statement: str):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_clean_database_its_checksums_and_a_table_lost_since_the_backup(erp, tmp_path):
    await execute(erp, "CREATE EXTENSION amcheck")
    await dump(erp, str(tmp_path), prefix="erp", timeout=60)
    await execute(erp, "DROP TABLE audit_logs")

    findings = await run_verb("db corruption", erp, erpgo_backup_dir=str(tmp_path))

    index = one(findings, "Index check")
    assert index.status is Status.OK and index.title.startswith("pg_amcheck --heapallindexed: no corruption")
    checksums = one(findings, "Data checksums")
    assert checksums.status is Status.WARN and checksums.title == "off: damage on disk goes undetected"
    assert "pg_checksums --enable" in text_of(checksums)
    schema = one(findings, "Schema vs backup")
    assert schema.status is Status.CRIT and "missing from the database: public.audit_logs" in schema.title


async def test_an_index_that_no_longer_matches_its_table_is_found_by_both_checks(erp):
    await execute(erp, "CREATE EXTENSION amcheck")
    await execute(erp, PLANT_BROKEN_INDEX)

    findings = await run_verb("db corruption", erp)

    index = one(findings, "Index check")
    assert index.status is Status.CRIT and "pg_amcheck --heapallindexed found" in index.title
    assert any("idx_legacy_skus_key" in line for line in index.evidence)
    assert one(findings, "Schema vs backup").status is Status.SKIPPED  # no ERPGO_BACKUP_DIR

    conn = await asyncpg.connect(erp)
    try:
        indexes = await conn.fetch(LARGEST_INDEXES_SQL, 50)
        problems = await sql_index_checks(conn, indexes)
    finally:
        await conn.close()
    assert [p for p in problems if p.startswith("public.idx_legacy_skus_key: ")], problems


async def test_without_the_amcheck_extension_it_says_how_to_add_it(erp):
    findings = await run_verb("db corruption", erp)
    index = one(findings, "Index check")
    assert index.status is Status.SKIPPED and "amcheck extension is not installed" in index.title
    assert "CREATE EXTENSION amcheck;" in text_of(index)
