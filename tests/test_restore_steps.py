"""The restore that never drops anything, end to end on a real cluster with the real pg_dump and
pg_restore: the live name ends up with the dump's rows and the old database is kept row for row; a
corrupt or suspicious dump stops before anything is renamed; a failure after the renames puts the
names back; a process killed between steps is brought back to a consistent state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import runbooks.restore as restore
from bot.targets.backups import database_exists, dump, with_database
from runbooks.restore import STEPS, RestoreJob, resume_or_revert
from tests.emergency_support import add_rows, database_of, make_shop, snapshot

TIMEOUT = 60.0
NOW = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
STAMP = "20261201093005"


class Killed(BaseException):
    """The process dies: nothing after this point runs, no cleanup, no undo."""


@dataclass
class Api:
    """The ERPGo API as the restore sees it: a container to stop and start, and a /health that reads
    the live database (healthy only while the container runs and the database answers)."""

    live_dsn: str
    calls: list[str] = field(default_factory=list)
    running: bool = True
    broken: bool = False  # /health fails whatever the database holds

    async def stop(self) -> None:
        self.calls.append("stop")
        self.running = False

    async def start(self) -> None:
        self.calls.append("start")
        self.running = True

    async def health(self) -> bool:
        self.calls.append("health")
        if not self.running or self.broken:
            return False
        conn = await asyncpg.connect(self.live_dsn, timeout=5)
        try:
            return await conn.fetchval("SELECT count(*) FROM users") > 0
        finally:
            await conn.close()


@dataclass
class Recorder:
    """The bot's store for restore state; `kill_at` = (step, phase) dies instead of storing that record."""

    kill_at: tuple[str, str] | None = None
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, step: str, state: dict[str, Any]) -> None:
        if (step, state["phase"]) == self.kill_at:
            raise Killed(step)
        json.dumps(state)  # it has to fit the bot's database
        self.records.append((step, state))

    def phases(self) -> list[tuple[str, str]]:
        return [(step, state["phase"]) for step, state in self.records]


@dataclass
class Shop:
    admin_dsn: str
    live: str
    dump_path: str
    at_dump: dict[str, list[tuple]]  # the rows the dump holds
    live_rows: dict[str, list[tuple]]  # the rows live holds now (more than the dump)

    @property
    def live_dsn(self) -> str:
        return with_database(self.admin_dsn, self.live)

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)

    def job(self, api: Api, recorder: Recorder, **kwargs: Any) -> RestoreJob:
        kwargs.setdefault("dump_path", self.dump_path)
        return RestoreJob(
            admin_dsn=self.admin_dsn,
            live_db=self.live,
            stop_api=api.stop,
            start_api=api.start,
            check_health=api.health,
            record=recorder,
            timeout=TIMEOUT,
            now=NOW,
            **kwargs,
        )

    async def exists(self, *names: str) -> list[bool]:
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            return [await database_exists(admin, name) for name in names]
        finally:
            await admin.close()


@pytest.fixture
async def shop(postgres_server, fresh_database, tmp_path) -> Shop:
    """A live database with rows, dumped, then written to again so old and restored data differ."""
    live_dsn = fresh_database("bk")
    await make_shop(live_dsn)
    backup, _ = await dump(live_dsn, str(tmp_path), prefix="bk", timeout=TIMEOUT)
    at_dump = await snapshot(live_dsn)
    conn = await asyncpg.connect(live_dsn)
    try:
        await add_rows(conn, users=2, products=1, orders=3)
        await conn.execute("UPDATE products SET price = price * 2")
    finally:
        await conn.close()
    live_rows = await snapshot(live_dsn)
    assert live_rows != at_dump
    return Shop(postgres_server.dsn("postgres"), database_of(live_dsn), backup.path, at_dump, live_rows)


def names(shop: Shop) -> tuple[str, str]:
    return f"{shop.live}_restore_{STAMP}", f"{shop.live}_before_restore_{STAMP}"


async def test_restore_puts_the_dump_under_the_live_name_and_keeps_the_old_database(shop):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn), Recorder()

    result = await shop.job(api, recorder).run()

    assert result.ok, result.summary()
    assert await snapshot(shop.live_dsn) == shop.at_dump
    assert await snapshot(shop.dsn(before)) == shop.live_rows
    assert await shop.exists(restored) == [False]  # it became the live database
    assert api.calls == ["stop", "start", "health"]
    assert recorder.phases() == [(s, p) for s in STEPS for p in ("started", "done")] + [("finished", "done")]
    assert [line for line in result.comparison.lines()] == [
        "tables: 3 of the dump's 3 restored",
        "users: restored 3 rows, live 5 rows",
        "products: restored 2 rows, live 3 rows",
        "orders: restored 4 rows, live 7 rows",
    ]
    assert result.where == [
        f"{shop.live} holds the data restored from {shop.dump_path}",
        f"{before} holds the data {shop.live} had before the restore (kept)",
        "the API container is running",
    ]


async def test_restored_tables_belong_to_the_owner_of_the_live_database(postgres_server, tmp_path):
    """ERPGo's own role owns its database and tables; after the restore the API can still read them."""
    live = f"bk_owned_{STAMP[-6:]}"
    owner = f"{live}_app"
    postgres_server.psql(f'CREATE ROLE "{owner}" LOGIN; CREATE DATABASE "{live}" OWNER "{owner}"')
    admin_dsn = postgres_server.dsn("postgres")
    app_dsn = postgres_server.dsn(live, user=owner)
    await make_shop(app_dsn)
    backup, _ = await dump(app_dsn, str(tmp_path), prefix="bk_owned", timeout=TIMEOUT)
    api = Api(app_dsn)

    result = await RestoreJob(
        admin_dsn=admin_dsn,
        live_db=live,
        dump_path=backup.path,
        stop_api=api.stop,
        start_api=api.start,
        check_health=api.health,
        record=Recorder(),
        timeout=TIMEOUT,
        now=NOW,
    ).run()

    assert result.ok, result.summary()
    conn = await asyncpg.connect(app_dsn)
    try:
        tables = await conn.fetch("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        owners = {row["tableowner"] for row in tables}
        assert owners == {owner}
        assert await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", live) == owner
        await conn.execute("INSERT INTO users (email) VALUES ('after-restore@example.com')")
    finally:
        await conn.close()


async def test_corrupt_dump_stops_before_anything_is_created_or_renamed(shop, tmp_path):
    restored, before = names(shop)
    corrupt = tmp_path / "corrupt.dump"
    corrupt.write_bytes(Path(shop.dump_path).read_bytes()[:-200])
    api, recorder = Api(shop.live_dsn), Recorder()

    result = await shop.job(api, recorder, dump_path=str(corrupt)).run()

    assert (result.ok, result.stopped_at, result.reverted) == (False, "verify", True)
    assert result.error == "corrupt.dump is not a readable dump: could not read from input file: end of file"
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert await shop.exists(restored, before) == [False, False]
    assert api.calls == []
    assert recorder.records[-1][1]["status"] == "reverted"
    assert result.where == [
        "nothing had been changed yet",
        f"{shop.live} holds the data it had before the restore",
        "the API container is running",
    ]


async def test_dump_that_fails_half_way_leaves_the_partial_copy_under_its_own_name(shop, postgres_server, tmp_path):
    """A dump granting to a role that no longer exists: pg_restore stops at the GRANT, after the data."""
    restored, before = names(shop)
    ghost = f"{shop.live}_ghost"
    postgres_server.psql(f'CREATE ROLE "{ghost}"; GRANT SELECT ON users TO "{ghost}"', shop.live)
    backup, _ = await dump(shop.live_dsn, str(tmp_path), prefix="bk_ghost", timeout=TIMEOUT)
    postgres_server.psql(f'REVOKE ALL ON users FROM "{ghost}"; DROP ROLE "{ghost}"', shop.live)
    api, recorder = Api(shop.live_dsn), Recorder()

    result = await shop.job(api, recorder, dump_path=backup.path).run()

    assert (result.ok, result.stopped_at) == (False, "restore")
    assert f'role "{ghost}" does not exist' in result.error
    assert await shop.exists(restored, before) == [True, False]
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert api.calls == []
    assert (
        f"{restored} holds the restore of {backup.path}; nothing was dropped, drop it by hand once nobody needs it"
        in result.where
    )


async def test_suspicious_restore_stops_before_the_api_is_touched(shop, fresh_database, tmp_path):
    empty_shop = fresh_database("bk")
    await make_shop(empty_shop, orders=0)
    backup, _ = await dump(empty_shop, str(tmp_path), prefix="bk_empty", timeout=TIMEOUT)
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn), Recorder()

    result = await shop.job(api, recorder, dump_path=backup.path).run()

    assert (result.ok, result.stopped_at) == (False, "compare")
    assert "orders is empty in the restored database but has 7 rows live" in result.error
    assert await shop.exists(restored, before) == [True, False]
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert api.calls == []


async def test_failure_at_the_second_rename_puts_the_names_back(shop, monkeypatch):
    restored, before = names(shop)
    real_rename = restore.rename_database

    async def rename_failing_for_the_restored_copy(admin, old, new):
        if old == restored:
            raise OSError("could not rename: disk quota exceeded")
        await real_rename(admin, old, new)

    monkeypatch.setattr(restore, "rename_database", rename_failing_for_the_restored_copy)
    api, recorder = Api(shop.live_dsn), Recorder()

    result = await shop.job(api, recorder).run()

    assert (result.ok, result.stopped_at, result.reverted) == (False, "rename_restored", True)
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert await shop.exists(restored, before) == [True, False]
    assert api.calls == ["stop", "start"]
    assert result.where[0] == f"undone: rename {before} back to {shop.live}, start the API"
    assert recorder.phases()[-4:] == [
        ("rename_restored", "failed"),
        ("rename_restored", "undoing"),
        ("rename_restored", "undoing"),
        ("rename_restored", "reverted"),
    ]


async def test_unhealthy_api_after_the_restore_puts_everything_back(shop):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn, broken=True), Recorder()

    result = await shop.job(api, recorder).run()

    assert (result.ok, result.stopped_at, result.reverted) == (False, "check_health", True)
    assert result.error == "the API is not healthy on the restored database"
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert await snapshot(shop.dsn(restored)) == shop.at_dump
    assert await shop.exists(before) == [False]
    assert api.calls == ["stop", "start", "health", "stop", "start"]


async def test_a_name_taken_meanwhile_is_reported_not_overwritten(shop, postgres_server):
    """Something recreates an empty live database between the renames: nothing is dropped to make room."""
    restored, before = names(shop)
    api = Api(shop.live_dsn)

    class Recreating(Recorder):
        async def __call__(self, step: str, state: dict[str, Any]) -> None:
            if (step, state["phase"]) == ("rename_restored", "started"):
                postgres_server.create_database(shop.live)
            await super().__call__(step, state)

    result = await shop.job(api, Recreating()).run()

    assert (result.ok, result.stopped_at, result.reverted) == (False, "rename_restored", False)
    assert result.where[0].startswith(f"could not rename {before} back to {shop.live}: ")
    assert await shop.exists(shop.live, restored, before) == [True, True, True]
    assert await snapshot(shop.dsn(before)) == shop.live_rows
    assert api.calls == ["stop"]  # not started on an empty database
    assert f"{shop.live} is a database this restore did not put there" in result.where
    assert "the API container is stopped" in result.where


@pytest.mark.parametrize("kill_at", [("rename_live", "done"), ("rename_restored", "started")])
async def test_killed_between_the_renames_resume_renames_the_old_database_back(shop, kill_at):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn), Recorder(kill_at=kill_at)
    with pytest.raises(Killed):
        await shop.job(api, recorder).run()
    assert await shop.exists(shop.live, restored, before) == [False, True, True]

    admin = await asyncpg.connect(shop.admin_dsn)
    try:
        said = await resume_or_revert(admin, recorder.records[-1][1], start_api=api.start)
    finally:
        await admin.close()

    assert said.splitlines()[0].startswith(f"renamed {before} back to {shop.live}")
    assert "started the API container again" in said
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert await snapshot(shop.dsn(restored)) == shop.at_dump
    assert api.calls == ["stop", "start"]
    assert await api.health()


async def test_killed_after_both_renames_resume_keeps_the_restore(shop):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn), Recorder(kill_at=("rename_restored", "done"))
    with pytest.raises(Killed):
        await shop.job(api, recorder).run()

    admin = await asyncpg.connect(shop.admin_dsn)
    try:
        said = await resume_or_revert(admin, recorder.records[-1][1])
    finally:
        await admin.close()

    assert said.splitlines() == [
        "the restore had completed both renames; kept it (check /health: the process died before confirming it)",
        f"{shop.live} holds the data restored from {shop.dump_path}",
        f"{before} holds the data {shop.live} had before the restore (kept)",
        "the API container was stopped by the restore and may still be stopped: start it",
    ]
    assert await snapshot(shop.live_dsn) == shop.at_dump
    assert await snapshot(shop.dsn(before)) == shop.live_rows
    assert await shop.exists(restored) == [False]


async def test_killed_before_any_rename_resume_changes_nothing(shop):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn), Recorder(kill_at=("end_sessions", "done"))
    with pytest.raises(Killed):
        await shop.job(api, recorder).run()

    admin = await asyncpg.connect(shop.admin_dsn)
    try:
        said = await resume_or_revert(admin, recorder.records[-1][1], start_api=api.start)
    finally:
        await admin.close()

    assert said.splitlines()[0] == f"{shop.live} was never renamed (or was already renamed back); nothing to rename"
    assert await shop.exists(shop.live, restored, before) == [True, True, False]
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert api.calls == ["stop", "start"]


async def test_killed_while_reverting_resume_finishes_the_revert(shop):
    restored, before = names(shop)
    api, recorder = Api(shop.live_dsn, broken=True), Recorder(kill_at=("check_health", "undoing"))
    with pytest.raises(Killed):
        await shop.job(api, recorder).run()
    assert recorder.records[-1][1]["status"] == "reverting"

    admin = await asyncpg.connect(shop.admin_dsn)
    try:
        said = await resume_or_revert(admin, recorder.records[-1][1], start_api=api.start)
    finally:
        await admin.close()

    assert said.splitlines()[0].startswith("finished the revert that was under way")
    assert await snapshot(shop.live_dsn) == shop.live_rows
    assert await snapshot(shop.dsn(restored)) == shop.at_dump
    assert await shop.exists(before) == [False]
