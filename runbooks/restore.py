"""Restore a dump under the live database's name without ever dropping anything.

The guide's recipe drops the live database before pg_restore: a bad or partial dump then leaves no
database at all. Here the dump goes into a new database first and replaces the live one only by
renames, so the old data is always kept under a name of its own:

  verify           read the whole dump (pg_restore), so a corrupt file stops before anything exists
  restore          CREATE DATABASE <live>_restore_<ts>, pg_restore into it
  compare          the dump's tables against the restored ones, and the row counts of the critical
                   tables (users, products, orders) restored against live; suspicious -> stop
  stop_api         the injected stop_api()
  end_sessions     terminate every session on the live database
  rename_live      <live> -> <live>_before_restore_<ts> (kept)
  rename_restored  <live>_restore_<ts> -> <live>
  start_api        the injected start_api()
  check_health     the injected check_health()

For the live database "erp" the names are erp_restore_<ts> and erp_before_restore_<ts>.
A failure at any step undoes the steps before it in reverse order (renames back, the API started
again) and the result says where it stopped and what is where. Every step is recorded through the
injected record(step, state) before and after it runs; `resume_or_revert` takes the last record
of a process that died in the middle and brings the databases back to a consistent state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bot.targets.backups import (
    DumpToc,
    create_database,
    database_exists,
    database_identifier,
    database_owner,
    end_sessions,
    rename_database,
    restore_into,
    row_counts,
    user_tables,
    utc_stamp,
    verify,
    with_database,
)

STEPS = (
    "verify",
    "restore",
    "compare",
    "stop_api",
    "end_sessions",
    "rename_live",
    "rename_restored",
    "start_api",
    "check_health",
)
CRITICAL_TABLES = ("users", "products", "orders")
# A client that reconnects between end_sessions and the rename makes the rename fail (after PostgreSQL
# has waited 5 s for it to leave): end the sessions again and retry.
RENAME_ATTEMPTS = 3

Callback = Callable[[], Awaitable[None]]
HealthCheck = Callable[[], Awaitable[bool]]
Record = Callable[[str, dict[str, Any]], Awaitable[None]]


class RestoreStopped(Exception):
    """A step found something that makes going on unsafe (not a crash); the message says what."""


@dataclass(frozen=True)
class RestoreNames:
    live: str
    restored: str
    before: str

    @classmethod
    def for_live(cls, live: str, stamp: str) -> RestoreNames:
        names = cls(live, f"{live}_restore_{stamp}", f"{live}_before_restore_{stamp}")
        for name in (names.live, names.restored, names.before):
            database_identifier(name)  # ValueError now rather than half way through
        return names


@dataclass(frozen=True)
class TableCount:
    table: str
    restored: int | None
    live: int | None

    def problem(self) -> str | None:
        if self.restored is None:
            return f"{self.table} is missing from the restored database"
        if self.restored == 0 and self.live:
            return f"{self.table} is empty in the restored database but has {self.live} rows live"
        return None

    def line(self) -> str:
        def shown(count: int | None) -> str:
            return "absent" if count is None else f"{count} rows"

        return f"{self.table}: restored {shown(self.restored)}, live {shown(self.live)}"


@dataclass(frozen=True)
class Comparison:
    dump_tables: tuple[str, ...]
    missing_tables: tuple[str, ...]  # in the dump's table of contents, not in the restored database
    counts: tuple[TableCount, ...]

    def problems(self) -> list[str]:
        problems = (
            [
                f"{len(self.missing_tables)} tables of the dump are missing after the restore: "
                + ", ".join(self.missing_tables[:10])
            ]
            if self.missing_tables
            else []
        )
        return problems + [p for p in (count.problem() for count in self.counts) if p]

    def lines(self) -> list[str]:
        restored = len(self.dump_tables) - len(self.missing_tables)
        return [f"tables: {restored} of the dump's {len(self.dump_tables)} restored"] + [c.line() for c in self.counts]


@dataclass
class RestoreResult:
    ok: bool
    names: RestoreNames
    stopped_at: str | None = None  # the step that failed
    error: str | None = None
    reverted: bool = False  # every completed step was undone
    where: list[str] = field(default_factory=list)  # what is where now, one sentence each
    comparison: Comparison | None = None

    def summary(self) -> str:
        head = (
            f"restored {self.names.live} from the dump"
            if self.ok
            else f"restore stopped at {self.stopped_at}: {self.error}"
        )
        return "\n".join([head, *self.where])


class RestoreJob:
    """One restore of `dump_path` under the name `live_db`; run() once."""

    def __init__(
        self,
        *,
        admin_dsn: str,
        live_db: str,
        dump_path: str,
        stop_api: Callback,
        start_api: Callback,
        check_health: HealthCheck,
        record: Record,
        force: bool = False,
        timeout: float = 600.0,
        callback_timeout: float = 120.0,
        critical_tables: Sequence[str] = CRITICAL_TABLES,
        now: datetime | None = None,
    ):
        self.admin_dsn = admin_dsn
        self.dump_path = dump_path
        self.names = RestoreNames.for_live(live_db, utc_stamp(now))
        self.force = force
        self.timeout = timeout
        self.callback_timeout = callback_timeout
        self.critical_tables = tuple(critical_tables)
        self._stop_api, self._start_api, self._check_health, self._record = stop_api, start_api, check_health, record
        self._toc: DumpToc | None = None
        self._comparison: Comparison | None = None
        self._live_existed = False
        self._owner: str | None = None
        self._done: list[str] = []
        self._undo: list[tuple[str, Callable[[asyncpg.Connection], Awaitable[None]]]] = []
        self._api = "running"  # as far as this job knows: running, stopped, unknown
        self._live_holds = "old"  # what the live name holds now: old, restored, or unknown (not ours)
        self._status = "running"

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> RestoreResult:
        steps: dict[str, Callable[[asyncpg.Connection], Awaitable[None]]] = {
            "verify": self._verify,
            "restore": self._restore,
            "compare": self._compare,
            "stop_api": self._stop,
            "end_sessions": self._end_sessions,
            "rename_live": self._rename_live,
            "rename_restored": self._rename_restored,
            "start_api": self._start,
            "check_health": self._health,
        }
        async with _connect(self.admin_dsn, self.timeout) as admin:
            self._live_existed = await database_exists(admin, self.names.live)
            for step in STEPS:
                try:
                    await self._note(step, "started")
                    await steps[step](admin)
                    self._done.append(step)
                    await self._note(step, "done")
                except Exception as exc:  # any failure: put things back, say where it stopped
                    return await self._fail(admin, step, exc)
            self._status = "done"
            await self._note("finished", "done")
            return RestoreResult(True, self.names, where=await self._where(admin), comparison=self._comparison)

    async def _verify(self, admin: asyncpg.Connection) -> None:
        self._toc = await verify(self.dump_path, timeout=self.timeout)

    async def _restore(self, admin: asyncpg.Connection) -> None:
        self._owner = await database_owner(admin, self.names.live) if self._live_existed else None
        await create_database(admin, self.names.restored, owner=self._owner)
        await restore_into(
            with_database(self.admin_dsn, self.names.restored), self.dump_path, self.timeout, role=self._owner
        )

    async def _compare(self, admin: asyncpg.Connection) -> None:
        assert self._toc is not None
        async with _connect(with_database(self.admin_dsn, self.names.restored), self.timeout) as restored:
            present = await user_tables(restored)
            restored_counts = await row_counts(restored, self.critical_tables)
        live_counts: dict[str, int | None] = dict.fromkeys(self.critical_tables)
        if self._live_existed:
            async with _connect(with_database(self.admin_dsn, self.names.live), self.timeout) as live:
                live_counts = await row_counts(live, self.critical_tables)
        self._comparison = Comparison(
            self._toc.tables,
            tuple(t for t in self._toc.tables if t not in present),
            tuple(TableCount(t, restored_counts[t], live_counts[t]) for t in self.critical_tables),
        )
        problems = self._comparison.problems()
        if problems and not self.force:
            raise RestoreStopped(
                "the restored database looks wrong (approve with force to restore anyway): " + "; ".join(problems)
            )

    async def _stop(self, admin: asyncpg.Connection) -> None:
        self._api = "unknown"
        self._undo.append(("start the API", self._undo_start))
        await self._call(self._stop_api)
        self._api = "stopped"

    async def _end_sessions(self, admin: asyncpg.Connection) -> None:
        if self._live_existed:
            await end_sessions(admin, self.names.live)

    async def _rename_live(self, admin: asyncpg.Connection) -> None:
        if self._live_existed:
            await _rename_when_free(admin, self.names.live, self.names.before)
            self._live_holds = "unknown"
            self._undo.append((f"rename {self.names.before} back to {self.names.live}", self._undo_rename_live))

    async def _rename_restored(self, admin: asyncpg.Connection) -> None:
        await _rename_when_free(admin, self.names.restored, self.names.live)
        self._live_holds = "restored"
        self._undo.append((f"rename {self.names.live} back to {self.names.restored}", self._undo_rename_restored))

    async def _start(self, admin: asyncpg.Connection) -> None:
        self._api = "unknown"
        self._undo.append(("stop the API", self._undo_stop))
        await self._call(self._start_api)
        self._api = "running"

    async def _health(self, admin: asyncpg.Connection) -> None:
        if not await asyncio.wait_for(self._check_health(), self.callback_timeout):
            raise RestoreStopped("the API is not healthy on the restored database")

    # --- undoing ------------------------------------------------------------------------------

    async def _fail(self, admin: asyncpg.Connection, step: str, exc: Exception) -> RestoreResult:
        error = str(exc) or type(exc).__name__
        self._status = "reverting"
        await self._note(step, "failed", error=error, quiet=True)
        if admin.is_closed():
            async with _connect(self.admin_dsn, self.timeout) as fresh:
                return await self._revert(fresh, step, error)
        return await self._revert(admin, step, error)

    async def _revert(self, admin: asyncpg.Connection, step: str, error: str) -> RestoreResult:
        undone: list[str] = []
        while self._undo:
            what, action = self._undo[-1]
            await self._note(step, "undoing", error=error, undoing=what, undone=undone, quiet=True)
            try:
                await action(admin)
            except Exception as exc:
                self._status = "revert_failed"
                await self._note(step, "revert_failed", error=error, undone=undone, quiet=True)
                where = [f"could not {what}: {exc}", *await self._where(admin)]
                return RestoreResult(False, self.names, step, error, False, where, self._comparison)
            undone.append(self._undo.pop()[0])
        self._status = "reverted"
        await self._note(step, "reverted", error=error, undone=undone, quiet=True)
        undo_line = f"undone: {', '.join(undone)}" if undone else "nothing had been changed yet"
        where = [undo_line, *await self._where(admin)]
        return RestoreResult(False, self.names, step, error, True, where, self._comparison)

    async def _undo_start(self, admin: asyncpg.Connection) -> None:
        await self._call(self._start_api)
        self._api = "running"

    async def _undo_stop(self, admin: asyncpg.Connection) -> None:
        await self._call(self._stop_api)
        self._api = "stopped"

    async def _undo_rename_live(self, admin: asyncpg.Connection) -> None:
        await _rename_when_free(admin, self.names.before, self.names.live)
        self._live_holds = "old"

    async def _undo_rename_restored(self, admin: asyncpg.Connection) -> None:
        await _rename_when_free(admin, self.names.live, self.names.restored)
        self._live_holds = "unknown"

    # --- reporting ----------------------------------------------------------------------------

    async def _call(self, callback: Callback) -> None:
        await asyncio.wait_for(callback(), self.callback_timeout)

    def state(self, step: str, phase: str, **extra: Any) -> dict[str, Any]:
        """What a later resume_or_revert needs, JSON-serialisable."""
        return {
            "job": "db.restore",
            "step": step,
            "phase": phase,
            "status": self._status,
            "live": self.names.live,
            "restored": self.names.restored,
            "before": self.names.before,
            "dump": self.dump_path,
            "live_existed": self._live_existed,
            "done": list(self._done),
            "api": self._api,
            "comparison": self._comparison.lines() if self._comparison else None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **extra,
        }

    async def _note(self, step: str, phase: str, *, quiet: bool = False, **extra: Any) -> None:
        """Record the state; while reverting (quiet) a failing record must not stop the revert."""
        try:
            await asyncio.wait_for(self._record(step, self.state(step, phase, **extra)), self.callback_timeout)
        except Exception:
            if not quiet:
                raise

    async def _where(self, admin: asyncpg.Connection) -> list[str]:
        lines = await describe_databases(admin, self.names, self.dump_path, live_holds=self._live_holds)
        return lines + [
            f"the API container is {self._api}"
            if self._api != "unknown"
            else "the API container's state is unknown (its stop or start failed)"
        ]


_LIVE_HOLDS = {
    "old": "holds the data it had before the restore",
    "restored": "holds the data restored from {dump}",
    "unknown": "is a database this restore did not put there",
}


async def describe_databases(
    admin: asyncpg.Connection, names: RestoreNames, dump: str, *, live_holds: str
) -> list[str]:
    """One sentence per database of this restore that exists, saying whose data it holds.
    `live_holds`: what the live name holds, as far as the caller knows: old, restored or unknown."""
    lines: list[str] = []
    if await database_exists(admin, names.live):
        lines.append(f"{names.live} " + _LIVE_HOLDS[live_holds].format(dump=dump))
    else:
        lines.append(f"there is no database named {names.live}")
    if await database_exists(admin, names.before):
        lines.append(f"{names.before} holds the data {names.live} had before the restore (kept)")
    if await database_exists(admin, names.restored):
        lines.append(
            f"{names.restored} holds the restore of {dump}; nothing was dropped, drop it by hand once nobody needs it"
        )
    return lines


@asynccontextmanager
async def _connect(dsn: str, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(
        dsn,
        timeout=min(timeout, 30.0),
        command_timeout=timeout,
        server_settings={"application_name": "erpgo-chatops restore"},
    )
    try:
        yield conn
    finally:
        await conn.close(timeout=10)


async def _rename_when_free(admin: asyncpg.Connection, old: str, new: str) -> None:
    """End the sessions on `old`, then rename it; again if a client got back in between."""
    for attempt in range(1, RENAME_ATTEMPTS + 1):
        await end_sessions(admin, old)
        try:
            await rename_database(admin, old, new)
            return
        except asyncpg.ObjectInUseError:
            if attempt == RENAME_ATTEMPTS:
                raise


# --- after a crash ----------------------------------------------------------------------------


async def resume_or_revert(
    admin_conn: asyncpg.Connection,
    recorded_state: dict[str, Any],
    *,
    start_api: Callback | None = None,
    timeout: float = 120.0,
) -> str:
    """Bring a restore interrupted mid-way (the process died) to a consistent state; says what it did.

    Nothing is dropped; the result is one of two states, decided from which databases exist (not
    from the record alone: the process may have died between a rename and its record):
      not restored  <live> holds its old data, <live>_restore_<ts> the restored copy;
      restored      <live> holds the restored data, <live>_before_restore_<ts> the old data.

    Killed between the two renames (no <live>, both others present), it renames
    <live>_before_restore_<ts> back rather than finishing the restore: the old database is exactly
    what the system ran on a moment earlier (the API was stopped, so nothing has written to it
    since), while the restored copy was never seen serving the API nor health-checked, and nobody
    is watching now. Going back loses nothing: the restored copy stays under its own name and the
    restore can be proposed again. A restore that got through both renames is kept (that was what
    the approvers asked for) unless it was already being reverted when it died; then the revert is
    finished.
    The API container is started if the restore had stopped it and `start_api` is given.
    """
    names = RestoreNames(recorded_state["live"], recorded_state["restored"], recorded_state["before"])
    dump = str(recorded_state.get("dump", "the dump"))
    live, restored, before = [await database_exists(admin_conn, n) for n in (names.live, names.restored, names.before)]
    live_holds, action = await _settle(admin_conn, names, recorded_state, live, restored, before)
    lines = [action, *await describe_databases(admin_conn, names, dump, live_holds=live_holds)]
    lines.append(await _restart_api(recorded_state, start_api, timeout))
    return "\n".join(lines)


async def _settle(
    admin: asyncpg.Connection,
    names: RestoreNames,
    recorded_state: dict[str, Any],
    live: bool,
    restored: bool,
    before: bool,
) -> tuple[str, str]:
    """Renames what needs renaming; (what the live name holds now: old/restored/unknown, what was done)."""
    reverting = recorded_state.get("status") in ("reverting", "revert_failed", "reverted")
    live_existed = recorded_state.get("live_existed", True)
    if not live and before:
        await _rename_when_free(admin, names.before, names.live)
        return "old", (
            f"renamed {names.before} back to {names.live}: the restore was interrupted between its "
            "two renames, and the database the API last ran on is the safe one to serve"
        )
    if live and before and not restored:
        if not reverting:
            return "restored", (
                "the restore had completed both renames; kept it (check /health: the process died before confirming it)"
            )
        await _rename_when_free(admin, names.live, names.restored)
        await _rename_when_free(admin, names.before, names.live)
        return "old", (
            f"finished the revert that was under way: {names.live} has its old data back, "
            f"the restored copy is {names.restored}"
        )
    if live and restored and not before:
        return "old", f"{names.live} was never renamed (or was already renamed back); nothing to rename"
    if not live_existed and not before and live != restored:
        if live:
            return "restored", f"there was no {names.live} before the restore; the restored copy already has its name"
        return "old", (
            f"there was no {names.live} before the restore and there still is none; the restored copy "
            f"is {names.restored}: propose the restore again or rename it by hand"
        )
    presence = {
        name: "present" if there else "absent"
        for name, there in ((names.live, live), (names.before, before), (names.restored, restored))
    }
    return "unknown", (
        f"unexpected state ({', '.join(f'{n} {p}' for n, p in presence.items())}): renamed nothing, "
        "a person has to decide"
    )


async def _restart_api(recorded_state: dict[str, Any], start_api: Callback | None, timeout: float) -> str:
    stop_under_way = recorded_state.get("step") == "stop_api" and recorded_state.get("phase") == "started"
    if recorded_state.get("api", "running") == "running" and not stop_under_way:
        return "the API container was not stopped by the restore"
    if start_api is None:
        return "the API container was stopped by the restore and may still be stopped: start it"
    try:
        await asyncio.wait_for(start_api(), timeout)
    except Exception as exc:
        return f"the API container was stopped by the restore and could not be started: {exc}"
    return "started the API container again"
