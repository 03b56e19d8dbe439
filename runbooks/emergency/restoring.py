"""Guide: "Emergency Procedures › Data Corruption › Restore from Backup" — `/erpgo restore`, and the
`db.restore` and `db.restore_resume` remediations.

The guide drops the live database and restores over it. `db.restore` runs runbooks/restore.py's
RestoreJob instead: the dump goes into a new database, is compared with the dump's table of contents
and the live row counts, and only then replaces the live one by renames — the old data is kept as
`<live>_before_restore_<time>`. The API container (found by its role) is stopped around the renames
and started again, `/health` closes it. Every step's state is written into the approval's row in the
bot's database before and after it runs; a bot killed in the middle leaves both databases, and
`/erpgo approvals` shows the approval as stopped mid-way: `/erpgo restore resume <id>` proposes
`db.restore_resume`, which brings the databases to a consistent state (runbooks/restore.py:
resume_or_revert) and starts the API again.

The admin connection is ERPGO_DATABASE_URL with the database switched to `postgres`; its role needs
CREATEDB, and must own the live database (or be a superuser) to rename it and end its sessions.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.registry import Args, Failed, Outcome, Refused, Runbook, Settle, UsageError, Verdict
from bot.core.units import human_bytes, human_duration
from bot.targets import NotConfigured, RoleNotFound
from bot.targets.backup_store import backups_at, location_of
from bot.targets.backups import BackupFile, DumpUnreadable, with_database
from bot.targets.docker import ContainerNotFound
from runbooks import quick
from runbooks.emergency.backups import database_name
from runbooks.emergency.deployment import Member
from runbooks.restore import CRITICAL_TABLES, RestoreJob, resume_or_revert

runbook = Runbook("restore")

SECTION = "Emergency Procedures › Data Corruption › Restore from Backup"
DUMP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,200}$")
MAX_CANDIDATES = 15
VERIFY_SECONDS = 60.0
RESTORE_TIMEOUT = 3600.0
CALLBACK_TIMEOUT = 150.0
API_GRACE_SECONDS = 10
HEALTH_WAIT = 120.0
POLL = 0.5


@dataclass(frozen=True)
class RestoreArgs(Args):
    backup: str | None = None  # the dump to restore from
    resume: int | None = None  # `restore resume N`: the approval of a restore that stopped mid-way


def parse_restore_args(words: list[str]) -> RestoreArgs:
    if not words:
        return RestoreArgs()
    if words[0].lower() == "resume":
        if len(words) != 2 or not words[1].lstrip("#").isdigit():
            raise UsageError("`restore resume` takes the number of the approval that stopped mid-way")
        return RestoreArgs(resume=int(words[1].lstrip("#")))
    if len(words) > 1 or not DUMP_NAME.match(words[0]):
        raise UsageError("`restore` takes the file name of one dump (see `/erpgo restore` for the list)")
    return RestoreArgs(backup=words[0])


runbook.verb(
    "restore",
    "restore the database from a dump without dropping anything (no argument: the dumps to choose from); "
    "`resume <approval>` settles a restore that stopped mid-way",
    usage="[dump | resume <approval>]",
    parse=parse_restore_args,
    ack="Looking at the dumps…",
)


def candidate_line(backup: BackupFile, now: datetime) -> str:
    return f"`/erpgo restore {backup.name}` — {human_bytes(backup.size)}, {human_duration(backup.age_seconds(now))} old"


async def find_api(ctx: CheckContext) -> Member | None:
    """The watched container that runs the API (Targets.container_of: by compose service, else by name), inspected."""
    try:
        name = await ctx.targets.container_of("api")
        return Member(name, await ctx.targets.docker.inspect_raw(name))
    except (RoleNotFound, ContainerNotFound):
        return None


def restore_preview(live: str, backup: BackupFile, api: Member, tables: int) -> str:
    restored, before = f"{live}_restore_<UTC time>", f"{live}_before_restore_<UTC time>"
    return "\n".join(
        [
            f"1. pg_restore --list and a full read of {backup.name}",
            f"2. CREATE DATABASE {restored} TEMPLATE template0; pg_restore --no-owner --exit-on-error into it",
            f"3. compare: the dump's {tables} tables all there; rows of {', '.join(CRITICAL_TABLES)} restored vs live",
            f"4. docker stop {api.name}",
            f"5. end the sessions on {live}",
            f"6. ALTER DATABASE {live} RENAME TO {before}    -- kept: nothing is dropped",
            f"7. ALTER DATABASE {restored} RENAME TO {live}",
            f"8. docker start {api.name}; GET /health",
            "any failure: the renames are put back and the API started again; every step is recorded",
        ]
    )


@runbook.check(
    "restore",
    component="Restore",
    section=SECTION,
    timeout=VERIFY_SECONDS + 20,
    proposes=("db.restore", "db.restore_resume"),
)
async def restore_plan(ctx: CheckContext) -> Finding:
    asked = ctx.arg(RestoreArgs)
    if asked.resume is not None:
        return resume_finding(asked.resume)
    location = location_of(ctx.settings)
    store = backups_at(location, ctx.targets.docker)
    backups = await store.list()
    now = datetime.now(UTC)
    wanted = asked.backup
    if not wanted:
        if not backups:
            return Finding.crit("Restore", f"no dumps to restore from in {location.describe()}")
        return Finding.ok(
            "Restore",
            f"{len(backups)} dumps in {location.describe()}; the newest is {backups[0].name}",
            details=["name one to have it checked and proposed:"]
            + [candidate_line(b, now) for b in backups[:MAX_CANDIDATES]],
            data={"candidates": [b.name for b in backups]},
        )
    chosen = next((b for b in backups if b.name == wanted), None)
    if chosen is None:
        return Finding.warn(
            "Restore",
            f"no dump called {wanted} in {location.describe()}",
            details=[candidate_line(b, now) for b in backups[:MAX_CANDIDATES]],
        )
    live = database_name(ctx.targets.pg.dsn)
    api = await find_api(ctx)
    if api is None or api.raw is None:
        return Finding.crit(
            "Restore",
            "no API container to stop during the renames (ERPGO_CONTAINERS or ERPGO_COMPOSE_PROJECT)",
        )
    try:
        toc = await store.verify(chosen, timeout=VERIFY_SECONDS)
    except DumpUnreadable as exc:
        return Finding.crit("Restore", f"{chosen.name} cannot be restored: {exc.reason}", data={"readable": False})
    proposal = restore_database.propose(
        backup=chosen.name,
        location=location.key,
        size=chosen.size,
        mtime=chosen.mtime.isoformat(),
        database=live,
        api_container={"name": api.name, "id": api.raw["Id"]},
        summary=f"Restore database {live} from {chosen.name}",
        why=f"{chosen.name}: {len(toc.tables)} tables, {human_bytes(chosen.size)}, {human_duration(chosen.age_seconds(now))} old",
        preview=restore_preview(live, chosen, api, len(toc.tables)),
    )
    return Finding(
        Status.WARN,
        "Restore",
        f"{chosen.name} is readable ({len(toc.tables)} tables): restoring it replaces {live}, keeping the old data",
        details=[
            f"dumped from database {toc.dbname} (PostgreSQL {toc.server_version}) at {toc.created}",
            f"{human_bytes(chosen.size)}, {human_duration(chosen.age_seconds(now))} old — what was written since is "
            "not in it (it stays in the kept database)",
        ],
        data={"readable": True, "tables": len(toc.tables)},
        proposals=[proposal],
    )


def resume_finding(approval_id: int) -> Finding:
    return Finding.warn(
        "Restore",
        f"approval #{approval_id}: a restore that stopped mid-way, to be settled",
        details=[
            "looks at which of the live, the restored and the kept databases exist, renames what is needed "
            "so that the live name serves either its old data or the restored data, never nothing, and starts the API"
        ],
        proposals=[
            resume_restore.propose(
                approval_id=approval_id,
                summary=f"Settle the restore of approval #{approval_id}, which stopped mid-way",
                why="the bot that ran it stopped before it finished",
                preview=f"read the state approval #{approval_id} recorded at its last step\n"
                "between the two renames: rename <live>_before_restore_<time> back to <live> (the data the API "
                "last ran on)\nboth renames done: keep the restored database\nnothing is dropped; then start the API",
            )
        ],
    )


# --- db.restore -----------------------------------------------------------------------------------


def admin_dsn(ctx: CheckContext) -> str:
    return with_database(ctx.targets.pg.dsn, "postgres")


async def same_api(ctx: CheckContext, api_container: dict[str, str]) -> str:
    """The API container's id, if it is still the one proposed; Refused otherwise."""
    now = await find_api(ctx)
    if now is None or now.raw is None or now.raw["Id"] != api_container["id"]:
        raise Refused(f"the API container is not {api_container['name']} ({api_container['id'][:12]}) any more")
    return api_container["id"]


async def until_healthy(ctx: CheckContext, container_id: str) -> bool:
    """/health healthy (or, without ERPGO_API_URL, the container running) within HEALTH_WAIT."""
    deadline = time.monotonic() + HEALTH_WAIT
    while True:
        try:
            if quick.health_finding(await ctx.targets.api.get("/health")).status is Status.OK:
                return True
        except NotConfigured:
            member = Member(container_id, await ctx.targets.docker.inspect_raw(container_id))
            if member.info and member.info.state.running and member.info.state.health in (None, "healthy"):
                return True
        except Exception:
            pass  # not up yet
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)  # the API takes a moment to come up


Record = Callable[[str, dict[str, Any]], Awaitable[None]]


def recorder(ctx: CheckContext) -> Record:
    """Each step's state into the approval's row (with how to settle it by hand), through the engine."""
    hooks = ctx.approval
    hint = f"`/erpgo restore resume {ctx.actor.approval_id}` proposes settling it"

    async def write(step: str, state: dict[str, Any]) -> None:
        if hooks is not None:
            await hooks.record(step, state | {"hint": hint})

    return write


async def api_healthy(ctx: CheckContext, api_container: dict[str, str], **_proposed: Any) -> Verdict:
    """A restore worked when the API is healthy on the restored database: /health (or, without
    ERPGO_API_URL, its container running and healthy). Running the restore check again would only
    propose the same restore."""
    try:
        finding = quick.health_finding(await ctx.targets.api.get("/health"))
        if finding.status is Status.OK:
            return Verdict(True, f"/health: {finding.title}")
        return Verdict(False, f"/health: {finding.title}", "`/erpgo outage` shows what failed first")
    except NotConfigured:
        info = await ctx.targets.docker.inspect(api_container["id"])
        if info.state.running and info.state.health in (None, "healthy"):
            return Verdict(True, f"{info.name} running" + (", healthy" if info.state.health else ""))
        return Verdict(False, f"{info.name} {info.state.status}", f"`/erpgo app {info.name}` shows why")


@runbook.remediation(
    "db.restore",
    "Restore the database from a dump, keeping the old one",
    timeout=RESTORE_TIMEOUT,
    verify=api_healthy,
    settle=Settle(at_least=0.0, at_most=60.0),
)
async def restore_database(
    ctx: CheckContext,
    backup: str,
    location: str,
    size: int,
    mtime: str,
    database: str,
    api_container: dict[str, str],
    force: bool = False,
) -> str:
    current = location_of(ctx.settings)
    if current.key != location:
        raise Refused(f"the backup location is {current.describe()} now, not what was proposed")
    if database_name(ctx.targets.pg.dsn) != database:
        raise Refused(f"ERPGO_DATABASE_URL names database {database_name(ctx.targets.pg.dsn)} now, not {database}")
    store = backups_at(current, ctx.targets.docker)
    chosen = next((b for b in await store.list() if b.name == backup), None)
    if chosen is None:
        raise Refused(f"{backup} is no longer in {current.describe()}")
    if chosen.size != size or chosen.mtime.isoformat() != mtime:
        raise Refused(f"{backup} changed since it was proposed (size or time): check it again")
    api_id = await same_api(ctx, api_container)
    docker = ctx.targets.docker

    async def stop_api() -> None:
        await docker.stop(api_id, API_GRACE_SECONDS)

    async def start_api() -> None:
        await docker.start(api_id)

    async with store.local_copy(chosen, timeout=RESTORE_TIMEOUT) as dump_path:
        job = RestoreJob(
            admin_dsn=admin_dsn(ctx),
            live_db=database,
            dump_path=dump_path,
            stop_api=stop_api,
            start_api=start_api,
            check_health=lambda: until_healthy(ctx, api_id),
            record=recorder(ctx),
            force=force,
            timeout=RESTORE_TIMEOUT - 120,
            callback_timeout=CALLBACK_TIMEOUT,
        )
        result = await job.run()
    comparison = result.comparison.lines() if result.comparison else []
    text = "\n".join([result.summary().replace(dump_path, backup), *comparison])
    if not result.ok:
        raise Failed(text)
    return Outcome(text)


# --- db.restore_resume ------------------------------------------------------------------------------


@runbook.remediation("db.restore_resume", "Settle a restore that stopped mid-way", timeout=600)
async def resume_restore(ctx: CheckContext, approval_id: int) -> str:
    if ctx.approval is None:
        raise Refused("settling a restore needs the bot's database (BOT_DATABASE_URL)")
    settle = ctx.approval.settle_interrupted
    approval = await ctx.approval.interrupted(approval_id)
    if approval is None or approval.action != "db.restore" or not approval.progress:
        raise Refused(
            f"approval #{approval_id} is not a restore that stopped mid-way (or a bot is still running it): "
            "see `/erpgo approvals`"
        )
    state = approval.progress
    if state.get("live") != database_name(ctx.targets.pg.dsn):
        raise Refused(f"the restore was of {state.get('live')}, ERPGO_DATABASE_URL names another database now")
    api_id = (approval.args.get("api_container") or {}).get("id")

    async def start_api() -> None:
        if api_id:
            await ctx.targets.docker.start(api_id)

    conn = await asyncpg.connect(admin_dsn(ctx), timeout=30, command_timeout=120)
    try:
        text = await resume_or_revert(conn, state, start_api=start_api if api_id else None)
    finally:
        await conn.close(timeout=10)
    await settle(approval_id, f"stopped mid-way at {state.get('step')} ({state.get('phase')}); settled: {text}")
    return text
