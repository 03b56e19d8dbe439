"""Guide: "Emergency Procedures › Data Corruption › Restore from Backup" — `/erpgo backups`, and the
`backup.now` remediation.

The guide's step is `ls -la /backups/database/`. Here: where the dumps are (ERPGO_BACKUP_DIR, in
ERPGO_BACKUP_CONTAINER when set), how old the newest is (warning after 24 h, critical after 48 h —
the real ERPGo's BackupOverdue), how its size compares with the ones before (a sudden drop is a dump
that lost tables), how many are kept (LowBackupRetention), and whether each recent one can be read
back whole by pg_restore (BackupFailed may leave a file that looks fine). `backup.now` takes a
`pg_dump -Fc` under a timestamped name, verified before it appears in the directory; the password
goes to pg_dump through its environment, never its arguments or a message.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Args, Refused, Runbook, UsageError, Verdict
from bot.core.units import human_bytes, human_duration
from bot.targets.backup_store import Backups, Location, backups_at, location_of
from bot.targets.backups import BackupError, BackupFile, DumpUnreadable, split_password

runbook = Runbook("backups")

SECTION = "Emergency Procedures › Data Corruption › Restore from Backup"
WARN_AGE_S, CRIT_AGE_S = 24 * 3600, 48 * 3600
RETENTION_WANTED = 7  # dumps kept: a week of daily backups
VERIFY_RECENT = 3  # the newest dumps read back whole on every report
VERIFY_SECONDS = 45.0
SIZE_DROP = 0.5  # the newest below half the median of the ones before it: suspicious
SIZE_HISTORY = 5
DUMP_TIMEOUT = 3000.0
_LISTING = "_backup_listing"


@dataclass(frozen=True)
class BackupsArgs(Args):
    now: bool = False  # `backups now`: propose a dump right away


def parse_backups_args(words: list[str]) -> BackupsArgs:
    if not words:
        return BackupsArgs()
    if [w.lower() for w in words] == ["now"]:
        return BackupsArgs(now=True)
    raise UsageError("`backups` takes nothing, or `now` to propose a dump right away")


runbook.verb(
    "backups",
    "where the database dumps are, the newest's age, sizes against the previous ones, retention, the recent "
    "ones read back by pg_restore; `now` proposes a dump",
    usage="[now]",
    parse=parse_backups_args,
    ack="Looking at the backups…",
)


def backups_of(ctx: CheckContext) -> Backups:
    return backups_at(location_of(ctx.settings), ctx.targets.docker)


async def listing(ctx: CheckContext) -> list[BackupFile]:
    """The dumps, newest first — listed once for all the checks of one report."""
    return await ctx.shared(_LISTING, lambda: backups_of(ctx).list())


def age_status(age_s: float) -> Status:
    return Status.CRIT if age_s > CRIT_AGE_S else Status.WARN if age_s > WARN_AGE_S else Status.OK


def file_line(backup: BackupFile, now: datetime) -> str:
    return f"{backup.name}: {human_bytes(backup.size)}, {human_duration(backup.age_seconds(now))} old"


# --- the newest dump ----------------------------------------------------------------------------


def database_name(dsn: str) -> str:
    parts = urlsplit(dsn)
    name = unquote(parts.path.lstrip("/")) or dict(parse_qsl(parts.query)).get("dbname", "")
    return name or unquote(parts.username or "") or "postgres"


def backup_now_proposal(ctx: CheckContext, location: Location, reason: str) -> Proposal:
    pg = ctx.targets.pg  # NotConfigured without ERPGO_DATABASE_URL
    database = database_name(pg.dsn)
    url, _ = split_password(pg.dsn)
    hidden = f".{database}_<UTC time>.dump.partial"
    where = location.directory.rstrip("/")
    steps = [
        f"pg_dump -Fc --no-password --dbname={url} -f {hidden}    # password via PGPASSWORD",
        f"pg_restore --list {hidden} && pg_restore --file=/dev/null {hidden}    # read back whole",
    ]
    if location.container:
        steps.append(f"docker cp {hidden} {location.container}:{where}/ && mv it to {database}_<UTC time>.dump")
    else:
        steps.append(f"link it as {where}/{database}_<UTC time>.dump (never over an existing file)")
    return backup_now.propose(
        location=location.key,
        database=database,
        summary=f"Dump database {database} into {location.describe()}",
        why=reason,
        preview="\n".join(steps),
    )


@runbook.check("backups", component="Backups", section=SECTION, timeout=40, proposes=("backup.now",))
async def backup_freshness(ctx: CheckContext) -> Finding:
    location = location_of(ctx.settings)
    now = datetime.now(UTC)
    try:
        backups = await listing(ctx)
    except OSError as exc:  # BackupDirectoryError, an engine that does not answer
        return Finding.crit(
            "Backups",
            f"cannot list {location.describe()}: {exc}",
            data={"location": location.key},
            proposals=[],
        )
    data: dict[str, Any] = {"location": location.key, "count": len(backups)}
    if not backups:
        status, title = Status.CRIT, f"no dumps ({location.pattern}) in {location.describe()}"
    else:
        newest = backups[0]
        age = newest.age_seconds(now)
        status = age_status(age)
        data |= {"newest": newest.name, "newest_age_s": round(age), "newest_size": newest.size}
        title = f"newest {newest.name}, {human_duration(age)} old ({human_bytes(newest.size)}), {len(backups)} kept"
        if status is not Status.OK:
            title += f" — older than {WARN_AGE_S // 3600 if status is Status.WARN else CRIT_AGE_S // 3600} h"
    details = [f"location: {location.describe()}, files matching {location.pattern}"]
    details += [file_line(b, now) for b in backups[: SIZE_HISTORY + 1]]
    proposals = []
    asked_now = ctx.arg(BackupsArgs).now
    if status is not Status.OK or asked_now:
        reason = (
            "asked for with `/erpgo backups now`"
            if asked_now
            else ("there is no dump at all" if not backups else f"the newest dump is {human_duration(age)} old")
        )
        proposals.append(backup_now_proposal(ctx, location, reason))
    return Finding(status, "Backups", title, details=details, data=data, proposals=proposals)


# --- sizes and retention -----------------------------------------------------------------------


@runbook.check("backups", component="Backup sizes", section=SECTION, timeout=40)
async def backup_sizes(ctx: CheckContext) -> Finding:
    backups = await listing(ctx)
    if not backups:
        return Finding.skipped("Backup sizes", "no dumps to compare")
    newest, previous = backups[0], [b.size for b in backups[1 : SIZE_HISTORY + 1]]
    data = {"newest_size": newest.size, "previous_sizes": previous}
    if newest.size == 0:
        return Finding.crit("Backup sizes", f"{newest.name} is empty (0 bytes)", data=data)
    if not previous:
        return Finding.ok(
            "Backup sizes", f"{newest.name}: {human_bytes(newest.size)} (nothing older to compare)", data=data
        )
    median = statistics.median(previous)
    ratio = newest.size / median if median else 1.0
    data["ratio"] = round(ratio, 3)
    compared = f"{human_bytes(newest.size)} against a median of {human_bytes(median)} for the {len(previous)} before it"
    if ratio < SIZE_DROP:
        return Finding.warn(
            "Backup sizes",
            f"{newest.name} is {ratio * 100:.0f} % of the size of the ones before it — a sudden drop",
            details=[compared, "a dump that shrank suddenly may have lost tables: check its table of contents"],
            data=data,
        )
    return Finding.ok("Backup sizes", f"{newest.name}: {compared} ({(ratio - 1) * 100:+.0f} %)", data=data)


@runbook.check("backups", component="Backup retention", section=SECTION, timeout=40)
async def backup_retention(ctx: CheckContext) -> Finding:
    backups = await listing(ctx)
    now = datetime.now(UTC)
    if not backups:
        return Finding.crit("Backup retention", "no dumps kept at all", data={"count": 0})
    oldest = backups[-1]
    span = human_duration(oldest.age_seconds(now))
    data = {"count": len(backups), "oldest": oldest.name, "oldest_age_s": round(oldest.age_seconds(now))}
    total = human_bytes(sum(b.size for b in backups))
    title = f"{len(backups)} dumps kept, the oldest {span} old ({total} in all)"
    if len(backups) < RETENTION_WANTED:
        return Finding.warn(
            "Backup retention",
            title + f" — fewer than {RETENTION_WANTED}",
            details=["with fewer dumps there is less to go back to when corruption is noticed late"],
            data=data,
        )
    return Finding.ok("Backup retention", title, data=data)


# --- reading the recent dumps back -------------------------------------------------------------


async def verify_one(backups: Backups, backup: BackupFile) -> Finding:
    component = f"Dump {backup.name}"
    try:
        toc = await backups.verify(backup, timeout=VERIFY_SECONDS)
    except DumpUnreadable as exc:
        return Finding.crit(component, f"not readable by pg_restore: {exc.reason}", data={"readable": False})
    except TimeoutError:
        try:
            toc = await backups.verify(backup, timeout=10, read_data=False)
        except (BackupError, TimeoutError) as exc:
            return Finding.error(component, f"could not be read in time: {exc}")
        return Finding.warn(
            component,
            f"table of contents readable ({len(toc.tables)} tables); the full read did not finish within "
            f"{VERIFY_SECONDS:g} s",
            data={"readable": None, "tables": len(toc.tables)},
        )
    details = [
        f"{len(toc.tables)} tables, {len(toc.tables_with_data)} with data, {toc.entries} entries",
        f"database {toc.dbname}, dumped from PostgreSQL {toc.server_version}, created {toc.created}",
    ]
    return Finding.ok(
        component,
        f"readable: {len(toc.tables)} tables, {human_bytes(backup.size)}",
        details=details,
        data={"readable": True, "tables": len(toc.tables), "dbname": toc.dbname},
    )


@runbook.check("backups", component="Backup verification", section=SECTION, timeout=VERIFY_SECONDS + 20)
async def backup_verification(ctx: CheckContext) -> list[Finding]:
    backups = await listing(ctx)
    if not backups:
        return [Finding.skipped("Backup verification", "no dumps to read back")]
    store = backups_of(ctx)
    return list(await asyncio.gather(*(verify_one(store, b) for b in backups[:VERIFY_RECENT])))


BACKUP_CHECKS = ("backup_freshness", "backup_verification", "backup_sizes", "backup_retention")
runbook.triage_for("BackupFailed", "BackupOverdue", "LowBackupRetention", checks=BACKUP_CHECKS)


# --- backup.now -----------------------------------------------------------------------------------


async def fresh_backup(ctx: CheckContext, **_proposed: Any) -> Verdict:
    """A dump worked when the backups check, asked plainly (not `now`), finds the newest dump fresh."""
    found = await backup_freshness(CheckContext(ctx.targets, ctx.settings, BackupsArgs(), ctx.actor))
    finding = found if isinstance(found, Finding) else found[0]
    if finding.status is Status.OK:
        return Verdict(True, finding.title)
    return Verdict(False, finding.title, "`/erpgo backups` shows the dumps and why")


@runbook.remediation(
    "backup.now",
    "Dump the ERPGo database into the backup location",
    timeout=DUMP_TIMEOUT + 60,
    verify=fresh_backup,
)
async def backup_now(ctx: CheckContext, location: str, database: str) -> str:
    current = location_of(ctx.settings)
    if current.key != location:
        raise Refused(f"the backup location is {current.describe()} now, not what was proposed")
    pg = ctx.targets.pg
    if database_name(pg.dsn) != database:
        raise Refused(f"ERPGO_DATABASE_URL names database {database_name(pg.dsn)} now, not {database}")
    try:
        backup, seconds = await backups_at(current, ctx.targets.docker).dump(pg.dsn, database, timeout=DUMP_TIMEOUT)
    except BackupError as exc:
        raise Refused(str(exc)) from None
    return (
        f"wrote {backup.name} ({human_bytes(backup.size)}) in {seconds:.1f} s to {current.describe()}; "
        "pg_restore read it back whole"
    )
