"""The bot's database migrations: each file's checksum recorded, and a start refused — before anything
is applied — when an applied file changed since or the database is newer than the code."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest

from bot.app import build_runtime
from bot.settings import ConfigError, load_settings
from bot.store.pool import MIGRATION_LOCK, MigrationRefused, Store, migration_files
from tests.support import eventually


async def migrated(dsn: str) -> Store:
    store = Store(dsn)
    await store.migrate()
    return store


async def rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_every_applied_file_has_its_checksum(fresh_database):
    dsn = fresh_database("mig")
    store = await migrated(dsn)
    await store.close()
    recorded = {r["name"]: r["checksum"] for r in await rows(dsn, "SELECT name, checksum FROM schema_migrations")}
    assert recorded == {m.name: m.checksum for m in migration_files()}
    again = Store(dsn)
    assert await again.migrate() == [], "an unchanged database starts as it is"
    await again.close()


async def test_a_changed_migration_file_refuses_the_start_naming_it(fresh_database):
    dsn = fresh_database("mig")
    await (await migrated(dsn)).close()
    await rows(dsn, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE name = '0002_alerts.sql'")
    store = Store(dsn)
    with pytest.raises(MigrationRefused, match=re.escape("migration 0002_alerts.sql changed since it was applied")):
        await store.migrate()
    await store.close()

    runtime = build_runtime(load_settings(bot_database_url=dsn), offline=True)
    try:
        with pytest.raises(
            ConfigError, match=re.escape("configuration error: BOT_DATABASE_URL migration 0002_alerts.sql")
        ):
            await runtime.start()
    finally:
        await runtime.close()


async def test_a_database_newer_than_the_code_refuses_the_start_and_applies_nothing(fresh_database):
    dsn = fresh_database("mig")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL)")
    await conn.execute("INSERT INTO schema_migrations VALUES (9999, '9999_from_a_newer_release.sql')")
    await conn.close()
    store = Store(dsn)
    with pytest.raises(
        MigrationRefused, match=re.escape("9999_from_a_newer_release.sql, which this code does not ship")
    ):
        await store.migrate()
    await store.close()
    assert [r["version"] for r in await rows(dsn, "SELECT version FROM schema_migrations")] == [9999]


async def test_a_database_migrated_before_checksums_gets_them_once(fresh_database):
    dsn = fresh_database("mig")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL)")
    older = [m for m in migration_files() if m.name < "0008"]
    for migration in older:
        await conn.execute(migration.sql)
        await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", migration.version, migration.name)
    await conn.close()
    store = Store(dsn)
    assert await store.migrate() == [m.name for m in migration_files() if m.name >= "0008"]
    await store.close()
    recorded = await rows(dsn, "SELECT count(*) AS n FROM schema_migrations WHERE checksum IS NULL")
    assert recorded[0]["n"] == 0


async def test_loops_starting_together_wait_for_one_migration_on_one_connection(fresh_database):
    dsn = fresh_database("mig")
    other_replica = await asyncpg.connect(dsn)
    await other_replica.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)  # migrating right now
    store = Store(dsn)
    starting = asyncio.gather(*(store.ready() for _ in range(8)))  # the bot's loops, all at its start
    await eventually(lambda: waiting_for_the_migration_lock(dsn), what="the bot waits for the other replica")
    await other_replica.close()
    await asyncio.wait_for(starting, 10)

    connections = await rows(
        dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'erpgo-chatops-state'"
    )
    await store.close()
    assert connections[0][0] == 1


async def waiting_for_the_migration_lock(dsn: str) -> bool:
    found = await rows(dsn, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    return found[0][0] >= 1
