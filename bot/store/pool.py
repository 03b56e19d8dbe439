"""The bot's own state in PostgreSQL (BOT_DATABASE_URL): versioned migrations and a pool.

Migrations are the files bot/store/migrations/NNNN_name.sql, applied in order, each once, in one
transaction, under an advisory lock so replicas starting together do not race. Each file's SHA-256
is recorded; the runner refuses (MigrationRefused) when a file that was applied has changed since,
or when the database holds a migration this code does not ship (it is newer than the code).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from bot.core.errors import NotConfigured
from bot.core.logs import log

MIGRATION_LOCK = 7_301_117  # advisory lock key, any constant unique to this application
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationRefused(Exception):
    """The bot's database does not match the migrations this code ships: starting would corrupt it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migration_files() -> list[Migration]:
    """Every migration shipped with the bot, in order."""
    folder = resources.files("bot.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied now. MigrationRefused, before anything is
    applied, when an applied file changed or the database is newer than the code."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        shipped = migration_files()
        applied = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        refuse_mismatch(applied, shipped)
        done = {row["version"] for row in applied}
        for migration in shipped:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
            applied_now.append(migration.name)
            log.info("migration_applied", migration=migration.name)
        await record_checksums(conn, shipped)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied_now


def refuse_mismatch(applied: list[asyncpg.Record], shipped: list[Migration]) -> None:
    by_version = {migration.version: migration for migration in shipped}
    for row in applied:
        migration = by_version.get(row["version"])
        if migration is None:
            raise MigrationRefused(
                f"the bot's database has migration {row['name']}, which this code does not ship: "
                "the database is newer than the code (run the newer release, or restore the database)"
            )
        recorded = row.get("checksum")
        if recorded is not None and recorded != migration.checksum:
            raise MigrationRefused(
                f"migration {migration.name} changed since it was applied to the bot's database: "
                "restore the file as it was, and add a new migration for the change"
            )


async def record_checksums(conn: asyncpg.Connection, shipped: list[Migration]) -> None:
    """The checksum of every applied file that has none yet (once the column exists)."""
    has_column = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'schema_migrations' AND column_name = 'checksum')"
    )
    if not has_column:
        return
    await conn.executemany(
        "UPDATE schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL",
        [(migration.version, migration.checksum) for migration in shipped],
    )


class Store:
    """A small pool on the bot's database. Calls fail fast when it is unreachable; without a DSN
    (BOT_DATABASE_URL unset) it is a stand-in whose every use raises NotConfigured."""

    def __init__(self, dsn: str | None, timeout: float = 5.0):
        self.dsn = dsn
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._held: set[asyncpg.Connection] = set()  # connections outside the pool, closed with it
        self._migrated = False
        self._migrating = asyncio.Lock()  # one migration at a time in this process (loops start together)

    @property
    def configured(self) -> bool:
        return bool(self.dsn)

    async def pool(self) -> asyncpg.Pool:
        if not self.dsn:
            raise NotConfigured("BOT_DATABASE_URL")
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=10,
                timeout=self.timeout,
                command_timeout=self.timeout,
                server_settings={"application_name": "erpgo-chatops-state"},
            )
        return self._pool

    async def hold(self) -> asyncpg.Connection:
        """A connection of its own for a caller that uses one all the time (no pool round trip, no reset
        query at each release); `release_held` gives it back, `close` closes what is still held."""
        if not self.dsn:
            raise NotConfigured("BOT_DATABASE_URL")
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.timeout,
            command_timeout=self.timeout,
            server_settings={"application_name": "erpgo-chatops-state"},
        )
        self._held.add(conn)
        return conn

    async def release_held(self, conn: asyncpg.Connection) -> None:
        self._held.discard(conn)
        try:
            await asyncio.wait_for(conn.close(), self.timeout)
        except Exception:  # a broken connection closes anyway
            conn.terminate()

    def acquire(self) -> _Acquire:
        """`async with store.acquire() as conn:` — raises quickly if the database is down."""
        return _Acquire(self)

    async def migrate(self) -> list[str]:
        async with self._migrating:
            return await self._migrate()

    async def ready(self) -> None:
        """Migrate once per process, lazily, so a database that was down at start is used once back."""
        if self._migrated:
            return
        async with self._migrating:
            if not self._migrated:  # another caller may have done it while this one waited
                await self._migrate()

    async def _migrate(self) -> list[str]:
        async with self.acquire() as conn:
            applied = await migrate(conn)
        self._migrated = True
        return applied

    async def ping(self) -> None:
        """Raise unless the database answers (and is migrated)."""
        await self.ready()
        async with self.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        for conn in list(self._held):
            await self.release_held(conn)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class _Acquire:
    def __init__(self, store: Store):
        self.store = store
        self._cm: Any = None  # the pool's acquire context, once entered

    async def __aenter__(self) -> asyncpg.Connection:
        pool = await self.store.pool()
        self._cm = pool.acquire(timeout=self.store.timeout)
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._cm.__aexit__(*exc)
