"""The backup target against a real PostgreSQL 15 cluster with the real pg_dump and pg_restore:
dumps that pg_restore reads back, truncated and foreign files caught, backups listed newest first,
and a password that reaches pg_dump only through its environment."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from bot.targets import backups
from bot.targets.backups import (
    BackupDirectoryError,
    DumpFailed,
    DumpUnreadable,
    create_database,
    database_exists,
    database_identifier,
    dump,
    dump_command,
    end_sessions,
    list_backups,
    rename_database,
    restore_into,
    row_counts,
    split_password,
    verify,
)
from demo.services import PostgresServer
from tests.emergency_support import database_of, make_shop, snapshot

PASSWORD = "Backup-s3cret/horse battery"  # '/' and ' ' must survive the URL quoting
TIMEOUT = 60.0

SHOP_SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users,
                     product_id int NOT NULL REFERENCES products, quantity int NOT NULL);
"""


@pytest.fixture
async def shop_dsn(fresh_database) -> str:
    dsn = fresh_database("bk")
    await make_shop(dsn)
    return dsn


@pytest.fixture(scope="module")
def password_cluster(tmp_path_factory):
    """A cluster whose TCP logins need a password, so a dump that works proves the password got there."""
    server = PostgresServer(tmp_path_factory.mktemp("bk-password-pg"), password=PASSWORD, pg_stat_statements=False)
    try:
        server.start()
        server.create_database("bk_secret_shop")
        yield server
    finally:
        server.cleanup()


# --- dump and verify --------------------------------------------------------------------------


async def test_dump_writes_a_verified_dump_named_by_utc_time(shop_dsn, tmp_path):
    before = datetime.now(UTC).replace(microsecond=0)
    backup, seconds = await dump(shop_dsn, str(tmp_path), prefix="bk", timeout=TIMEOUT)

    match = re.fullmatch(r"bk_(\d{14})\.dump", backup.name)
    assert match, backup.name
    assert before <= datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC) <= datetime.now(UTC)
    assert os.listdir(tmp_path) == [backup.name]  # no temporary file left behind
    assert backup.size == os.path.getsize(backup.path) > 0
    assert 0 < seconds < TIMEOUT

    toc = await verify(backup.path, timeout=TIMEOUT)
    assert toc.dbname == database_of(shop_dsn)
    assert toc.format == "CUSTOM"
    assert re.fullmatch(r"1\.\d+-\d+", toc.dump_version or "")
    assert (toc.server_version or "").startswith("15.")
    assert set(toc.tables) == set(toc.tables_with_data) == {"public.users", "public.products", "public.orders"}
    assert toc.entries > 6  # tables, data, sequences, constraints


async def test_truncated_dump_is_unreadable_though_its_table_of_contents_lists(shop_dsn, tmp_path):
    conn = await asyncpg.connect(shop_dsn)
    try:  # enough data that the cut falls into the data section, after the table of contents
        await conn.execute(
            "INSERT INTO users (email) SELECT 'bulk' || g || '@example.com' FROM generate_series(1, 20000) g"
        )
    finally:
        await conn.close()
    backup, _ = await dump(shop_dsn, str(tmp_path), prefix="bk", timeout=TIMEOUT)
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(Path(backup.path).read_bytes()[: backup.size // 2])

    assert (await verify(str(truncated), timeout=TIMEOUT, read_data=False)).tables_with_data
    with pytest.raises(DumpUnreadable) as caught:
        await verify(str(truncated), timeout=TIMEOUT)
    assert caught.value.reason == "could not read from input file: end of file"
    assert str(caught.value) == "truncated.dump is not a readable dump: could not read from input file: end of file"


async def test_a_file_that_is_not_a_dump_is_unreadable(tmp_path):
    notes = tmp_path / "notes.dump"
    notes.write_text("SELECT 1;\n" * 20)
    with pytest.raises(DumpUnreadable) as caught:
        await verify(str(notes), timeout=TIMEOUT)
    assert "does not appear to be a valid archive" in caught.value.reason


async def test_password_reaches_pg_dump_only_through_its_environment(password_cluster, tmp_path, monkeypatch):
    dsn = password_cluster.dsn("bk_secret_shop")
    await make_shop(dsn)
    launched: list[tuple[tuple[str, ...], dict[str, str]]] = []
    real_exec = asyncio.create_subprocess_exec

    async def spying_exec(*argv, **kwargs):
        launched.append((argv, kwargs.get("env") or {}))
        return await real_exec(*argv, **kwargs)

    monkeypatch.setattr(backups.asyncio, "create_subprocess_exec", spying_exec)
    backup, _ = await dump(dsn, str(tmp_path), prefix="bk", timeout=TIMEOUT)

    pg_dump_argv, pg_dump_env = launched[0]
    assert Path(pg_dump_argv[0]).name == "pg_dump"
    assert pg_dump_env["PGPASSWORD"] == PASSWORD
    for argv, _ in launched:
        assert not any(PASSWORD in arg or "Backup-s3cret" in arg for arg in argv), argv
    assert (await verify(backup.path, timeout=TIMEOUT)).tables_with_data

    launched.clear()
    admin = await asyncpg.connect(password_cluster.dsn("postgres"))
    try:
        await create_database(admin, "bk_secret_copy")
        await restore_into(password_cluster.dsn("bk_secret_copy"), backup.path, TIMEOUT)
    finally:
        await admin.close()
    ((restore_argv, restore_env),) = launched
    assert Path(restore_argv[0]).name == "pg_restore" and restore_env["PGPASSWORD"] == PASSWORD
    assert not any("Backup-s3cret" in arg for arg in restore_argv)
    assert await snapshot(password_cluster.dsn("bk_secret_copy")) == await snapshot(dsn)


async def test_failed_dump_leaves_no_file_and_no_password_in_the_error(password_cluster, tmp_path):
    with pytest.raises(DumpFailed) as missing:
        await dump(password_cluster.dsn("bk_no_such_db"), str(tmp_path), prefix="bk", timeout=TIMEOUT)
    assert 'database "bk_no_such_db" does not exist' in str(missing.value)

    wrong = password_cluster.dsn("bk_secret_shop", password="Wrong-pass-4321")
    with pytest.raises(DumpFailed) as refused:
        await dump(wrong, str(tmp_path), prefix="bk", timeout=TIMEOUT)
    assert "password authentication failed" in str(refused.value)
    for error in (missing.value, refused.value):
        assert "Backup-s3cret" not in str(error) and "Wrong-pass" not in str(error)
    assert os.listdir(tmp_path) == []


async def test_dump_into_a_missing_directory(shop_dsn, tmp_path):
    with pytest.raises(BackupDirectoryError, match="does not exist"):
        await dump(shop_dsn, str(tmp_path / "gone"), timeout=TIMEOUT)


def test_dump_command_has_no_password_in_its_arguments():
    argv, env = dump_command("postgresql://erpgo:Pa%2Fss%20word@db:5432/erp?sslmode=disable", "/backups/x.dump")
    assert argv[1:] == [
        "-Fc",
        "--no-password",
        "--dbname=postgresql://erpgo@db:5432/erp?sslmode=disable",
        "-f",
        "/backups/x.dump",
    ]
    assert env == {"PGPASSWORD": "Pa/ss word"}


@pytest.mark.parametrize(
    ("dsn", "url", "password"),
    [
        ("postgresql://u:p@h/erp", "postgresql://u@h/erp", "p"),
        ("postgres://u@h:5433/erp", "postgres://u@h:5433/erp", None),
        ("postgresql://u@h/erp?password=p%40x&sslmode=require", "postgresql://u@h/erp?sslmode=require", "p@x"),
        ("postgresql://u:p@h1:5432,h2:5433/erp", "postgresql://u@h1:5432,h2:5433/erp", "p"),
        ("postgresql://h?dbname=erp", "postgresql://h?dbname=erp", None),
    ],
)
def test_split_password(dsn, url, password):
    assert split_password(dsn) == (url, password)


# --- listing ----------------------------------------------------------------------------------


def test_list_backups_newest_first(tmp_path):
    now = datetime.now(UTC).timestamp()
    for name, hours_ago in [
        ("erp_a.dump", 30),
        ("erp_b.dump", 2),
        ("erp_c.dump", 50),
        ("notes.txt", 1),
        (".erp_d.dump.partial", 0),
    ]:
        path = tmp_path / name
        path.write_bytes(b"x" * len(name))
        os.utime(path, (now - hours_ago * 3600, now - hours_ago * 3600))
    (tmp_path / "old.dump").mkdir()  # a directory named like a dump is not one

    found = list_backups(str(tmp_path))
    assert [b.name for b in found] == ["erp_b.dump", "erp_a.dump", "erp_c.dump"]
    assert [round(b.age_seconds() / 3600) for b in found] == [2, 30, 50]
    assert found[0].mtime.tzinfo is not None and found[0].size == len("erp_b.dump")
    assert [b.name for b in list_backups(str(tmp_path), pattern="*.txt")] == ["notes.txt"]


def test_list_backups_of_a_missing_directory_says_so(tmp_path):
    with pytest.raises(BackupDirectoryError, match=r"backup directory .*/nowhere does not exist") as caught:
        list_backups(str(tmp_path / "nowhere"))
    assert isinstance(caught.value, OSError)


def test_find_tool_prefers_the_highest_postgresql_version(tmp_path, monkeypatch):
    for version in ("9", "13", "16", "15"):
        tool = tmp_path / version / "bin" / "pg_dump"
        tool.parent.mkdir(parents=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    monkeypatch.setattr(backups, "PG_BIN_GLOB", str(tmp_path / "*" / "bin"))
    assert backups.find_tool("pg_dump") == str(tmp_path / "16" / "bin" / "pg_dump")


# --- the helpers a restore uses ---------------------------------------------------------------


async def test_row_counts_say_none_for_a_missing_table(shop_dsn):
    conn = await asyncpg.connect(shop_dsn)
    try:
        counts = await row_counts(conn, ["users", "public.orders", "invoices"])
    finally:
        await conn.close()
    assert counts == {"users": 3, "public.orders": 4, "invoices": None}


async def test_end_sessions_and_rename(postgres_server, shop_dsn):
    name = database_of(shop_dsn)
    renamed = f"{name}_moved"
    admin = await asyncpg.connect(postgres_server.dsn("postgres"))
    client = await asyncpg.connect(shop_dsn)
    try:
        assert await end_sessions(admin, name) == 1
        with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError)):
            await client.fetchval("SELECT 1")
        await rename_database(admin, name, renamed)
        assert (await database_exists(admin, name), await database_exists(admin, renamed)) == (False, True)
        await rename_database(admin, renamed, name)
    finally:
        await client.close()
        await admin.close()


@pytest.mark.parametrize("name", ["", "erp; DROP DATABASE erp", 'erp"x', "1erp", "x" * 64])
def test_database_names_are_validated(name):
    with pytest.raises(ValueError):
        database_identifier(name)
