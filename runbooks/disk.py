"""Guide: "Infrastructure Issues › Disk Space Issues" — `disk`.

Step 1, Check Disk Usage: the filesystems of ERPGO_DISK_PATHS (statvfs, computed as `df` does) against
the guide's thresholds (database disk > 85 %, infrastructure disk > 90 %), and the ERPGo database with
its WAL. Step 2, Clean Up Docker Resources: `docker system df` and a `docker.prune` proposal — stopped
containers nobody watches, dangling images, unused build cache — with the bytes it frees shown before
anyone approves; watched containers (the one-shot `erpgo-migrator` exits 0 and must stay), tagged
images and volumes are never part of it. Step 3, Log Management: the largest container logs and
whether Docker rotates them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status, worst
from bot.core.registry import Refused, Runbook
from bot.core.units import human_bytes, plural
from bot.targets import NotConfigured
from bot.targets import docker_prune as pruning
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import disk_categories
from runbooks.database.common import db_check, db_connection
from runbooks.triage import name_matches
from runbooks.watched import protected_containers, watched_projects

runbook = Runbook("disk")

SECTION = "Infrastructure Issues › Disk Space Issues"
USAGE = SECTION + " › Check Disk Usage"
CLEANUP = SECTION + " › Clean Up Docker Resources"
LOGS = SECTION + " › Log Management"

DISK_WARN_PCT, DISK_CRIT_PCT = 85.0, 90.0  # "Disk usage > 85%" (database), "Disk usage > 90%" (infrastructure)
STATVFS_SECONDS = 3.0  # a hung network filesystem must not hold the report
DF_SECONDS = 30.0  # `docker system df` walks every layer: slow on a busy host
LOG_WARN_BYTES = 1024**3
UNROTATED_WARN_BYTES = 100 * 1024**2
TOP_LOGS = 5
MAX_LOGS_INSPECTED = 200
INSPECT_CONCURRENCY = 8
MAX_LISTED = 8  # names listed in a detail line before "… and N more"
_DF = "_docker_system_df"  # the report's one `docker system df`, shared by its checks

runbook.verb(
    "disk",
    "disk space: filesystems vs 85/90 %, Docker's images, containers, volumes and build cache (what a prune "
    "frees), the largest container logs, the database and its WAL",
    ack="Looking at disk space…",
)


# --- step 1: filesystems ----------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    path: str
    device: int
    total: int
    used: int
    available: int  # to unprivileged users: the root reserve is not counted, as df does
    inodes_total: int
    inodes_used: int

    @property
    def percent(self) -> float:
        room = self.used + self.available
        return self.used * 100 / room if room else 0.0

    @property
    def inodes_percent(self) -> float:
        return self.inodes_used * 100 / self.inodes_total if self.inodes_total else 0.0


def read_usage(path: str) -> Usage:
    """statvfs of the filesystem holding `path`; OSError when it cannot be read."""
    vfs = os.statvfs(path)
    return Usage(
        path=path,
        device=os.stat(path).st_dev,
        total=vfs.f_blocks * vfs.f_frsize,
        used=(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize,
        available=vfs.f_bavail * vfs.f_frsize,
        inodes_total=vfs.f_files,
        inodes_used=vfs.f_files - vfs.f_ffree,
    )


def usage_status(percent: float) -> Status:
    return Status.CRIT if percent >= DISK_CRIT_PCT else Status.WARN if percent >= DISK_WARN_PCT else Status.OK


def usage_finding(usage: Usage, same_filesystem: list[str]) -> Finding:
    status = worst([usage_status(usage.percent), usage_status(usage.inodes_percent)])
    title = (
        f"{usage.percent:.1f} % used — {human_bytes(usage.used)} of {human_bytes(usage.total)}, "
        f"{human_bytes(usage.available)} free"
    )
    details = [f"inodes: {usage.inodes_percent:.1f} % used ({usage.inodes_used:,} of {usage.inodes_total:,})"]
    if same_filesystem:
        details.append("same filesystem: " + ", ".join(same_filesystem))
    details.append(f"warning from {DISK_WARN_PCT:.0f} %, critical from {DISK_CRIT_PCT:.0f} %")
    if status is not Status.OK:
        what = "inodes" if usage_status(usage.inodes_percent).rank > usage_status(usage.percent).rank else "space"
        if what == "inodes":
            title = f"{usage.inodes_percent:.1f} % of inodes used — many small files; " + title
        details.append(
            "Docker's reclaimable space and the largest logs are below; large files: "
            f"`find {usage.path} -xdev -type f -size +1G`, `du -sh /var/lib/docker/* /var/log/*`"
        )
    data = {
        "path": usage.path,
        "percent": round(usage.percent, 2),
        "inodes_percent": round(usage.inodes_percent, 2),
        "total": usage.total,
        "used": usage.used,
        "available": usage.available,
    }
    return Finding(status, f"Filesystem {usage.path}", title, details=details, data=data)


def _statvfs_failure(path: str, exc: BaseException) -> Finding:
    component = f"Filesystem {path}"
    if isinstance(exc, TimeoutError):
        return Finding.crit(
            component, f"statvfs gave no answer within {STATVFS_SECONDS:g} s — a hung network filesystem?"
        )
    if isinstance(exc, FileNotFoundError):
        return Finding.error(component, "no such path on the bot's host: check ERPGO_DISK_PATHS")
    return Finding.error(component, f"cannot read its filesystem: {exc}")


async def _read_usage(path: str) -> Usage:
    return await asyncio.wait_for(asyncio.to_thread(read_usage, path), STATVFS_SECONDS)


@runbook.check("disk", component="Filesystem", section=USAGE)
async def filesystem_usage(ctx: CheckContext) -> list[Finding]:
    paths = list(dict.fromkeys(ctx.settings.erpgo_disk_paths))
    if not paths:
        raise NotConfigured("ERPGO_DISK_PATHS")
    results = await asyncio.gather(*(_read_usage(path) for path in paths), return_exceptions=True)
    by_device: dict[int, list[Usage]] = {}
    findings: list[Finding] = []
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, BaseException):
            findings.append(_statvfs_failure(path, result))
        else:
            by_device.setdefault(result.device, []).append(result)
    for first, *others in by_device.values():
        findings.append(usage_finding(first, [u.path for u in others]))
    return findings


# --- step 2: Docker ---------------------------------------------------------------------------


async def docker_df(ctx: CheckContext) -> dict[str, Any]:
    """The report's `docker system df`, read once for every check that needs it."""
    return await ctx.shared(_DF, lambda: ctx.targets.docker.disk_usage_raw(DF_SECONDS))


def listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" … and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def prune_preview(plan: pruning.PrunePlan) -> str:
    containers, images = plan.of(pruning.CONTAINER), plan.of(pruning.IMAGE)
    caches = plan.of(pruning.BUILD_CACHE)
    lines = []
    if containers:
        lines.append("docker rm " + " ".join(c.name for c in containers) + "   # no -f: one running again is refused")
    if images:
        lines.append(
            "docker rmi " + " ".join(i.name for i in images) + "   # dangling only; no -f: one in use is refused"
        )
    if caches:
        lines.append(f"docker builder prune -f   # unused build cache ({len(caches)} records)")
    lines.append(f"# reclaimable now: {human_bytes(plan.reclaimable)} (measured again when it runs)")
    if plan.kept:
        lines.append("# kept, stopped but watched: " + listed([f"{k.name} ({k.why})" for k in plan.kept]))
    lines.append("# never: volumes (no `docker volume prune`), tagged images (no `docker image prune -a`)")
    return "\n".join(lines)


def prune_proposal(plan: pruning.PrunePlan) -> Proposal:
    containers, images = plan.of(pruning.CONTAINER), plan.of(pruning.IMAGE)
    caches = plan.of(pruning.BUILD_CACHE)
    parts = [
        plural(len(containers), "stopped container") if containers else "",
        plural(len(images), "dangling image") if images else "",
        plural(len(caches), "build cache record") if caches else "",
    ]
    return prune_docker.propose(
        containers={c.id: c.name for c in containers},
        images={i.id: i.name for i in images},
        build_cache=len(caches),
        reclaimable=plan.reclaimable,
        summary=f"Prune Docker: {', '.join(p for p in parts if p)} — {human_bytes(plan.reclaimable)} reclaimable",
        why="stopped containers nobody watches, dangling images and unused build cache; "
        "watched containers, tagged images and volumes are kept",
        preview=prune_preview(plan),
    )


def category_line(category: Any) -> str:
    return (
        f"{category.kind}: {category.count} ({category.active} in use), {human_bytes(category.size)}, "
        f"{human_bytes(category.reclaimable)} reclaimable"
    )


@runbook.check("disk", component="Docker disk", section=CLEANUP, timeout=DF_SECONDS + 5, proposes=("docker.prune",))
async def docker_disk_usage(ctx: CheckContext) -> Finding:
    df = await docker_df(ctx)
    categories = {c.kind: c for c in disk_categories(df)}
    plan = pruning.plan(df, await protected_containers(ctx), watched_projects(ctx))
    total = sum(c.size for c in categories.values())
    details = [category_line(c) for c in categories.values()]
    if plan.kept:
        details.append(
            "kept by any prune from here, stopped but watched: " + listed([f"{k.name} ({k.why})" for k in plan.kept])
        )
    if plan.unused_tagged:
        size = sum(i.size for i in plan.unused_tagged)
        details.append(
            f"{plural(len(plan.unused_tagged), 'tagged image')} no container uses ({human_bytes(size)}): not pruned — "
            f"`docker rmi` the ones no deployment needs: {listed([i.name for i in plan.unused_tagged])}"
        )
    volumes = categories["volumes"]
    if volumes.reclaimable:
        details.append(
            f"volumes no container uses hold {human_bytes(volumes.reclaimable)}: never pruned by the bot — "
            "`docker volume ls -f dangling=true`, remove one by name once you know it holds nothing you need"
        )
    title = f"{human_bytes(total)} used by Docker"
    proposals = []
    if plan.candidates:
        title += f"; a prune frees {human_bytes(plan.reclaimable)}"
        proposals.append(prune_proposal(plan))
    else:
        title += "; nothing a prune could free"
    data = {
        "total": total,
        "reclaimable": plan.reclaimable,
        "categories": {c.kind: {"size": c.size, "reclaimable": c.reclaimable} for c in categories.values()},
        "candidates": [c.name for c in plan.candidates],
        "kept": [k.name for k in plan.kept],
    }
    return Finding.ok("Docker disk", title, details=details, proposals=proposals, data=data)


def _names(approved: dict[str, str], ids: list[str]) -> list[str]:
    return [approved.get(i, i[:12]) for i in ids]


def prune_report(outcome: pruning.PruneOutcome, approved: dict[str, str], proposed: int) -> str:
    removed = outcome.removed
    containers = [c.name for c in removed if c.kind == pruning.CONTAINER]
    images = [c.name for c in removed if c.kind == pruning.IMAGE]
    caches = [c for c in removed if c.kind == pruning.BUILD_CACHE]
    parts = []
    if containers:
        parts.append(f"removed {plural(len(containers), 'container')} ({listed(containers)})")
    if images:
        parts.append(f"{plural(len(images), 'dangling image')} ({listed(images)})")
    if caches:
        parts.append(f"build cache ({human_bytes(outcome.cache_reclaimed)} by the engine's count)")
    line = f"reclaimed {human_bytes(outcome.reclaimed)} ({human_bytes(proposed)} when proposed): " + ", ".join(parts)
    left = [f"{c.name} ({why})" for c, why in outcome.refused] + [
        f"{n} (no longer prunable)" for n in _names(approved, outcome.gone)
    ]
    if left:
        line += f"; left alone: {listed(left)}"
    if outcome.unapproved:
        line += f"; {len(outcome.unapproved)} more became prunable since, not in this approval (run `disk` again)"
    return line + "; volumes untouched"


@runbook.remediation(
    "docker.prune", "Remove stopped containers nobody watches, dangling images and unused build cache", timeout=300
)
async def prune_docker(
    ctx: CheckContext, containers: dict[str, str], images: dict[str, str], build_cache: int, reclaimable: int
) -> str:
    approved = {**containers, **images}
    outcome = await pruning.prune(
        ctx.targets.docker,
        list(approved),
        build_cache > 0,
        await protected_containers(ctx),  # read now: a container watched since the proposal is kept too
        watched_projects(ctx),
        DF_SECONDS,
    )
    if not outcome.removed:
        why = [f"{c.name}: {reason}" for c, reason in outcome.refused] + [
            f"{n}: no longer prunable (gone, running again, in use or watched now)"
            for n in _names(approved, outcome.gone)
        ]
        raise Refused("nothing approved could be pruned any more — " + listed(why))
    return prune_report(outcome, approved, reclaimable)


# --- step 3: container logs -------------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    container: str
    driver: str
    size: int | None  # None: not readable from here
    max_size: str | None
    max_file: str | None
    container_id: str = ""
    path: str = ""  # the json-file log on the engine's host ("" for other drivers)

    @property
    def rotated(self) -> bool:
        return self.max_size is not None

    def describe(self) -> str:
        size = human_bytes(self.size) if self.size is not None else "size not readable from here"
        if self.driver not in ("json-file", "local"):
            return f"{self.container}: logs go to {self.driver or 'no driver'}"
        rotation = f"rotated at {self.max_size} × {self.max_file or '1'} files" if self.rotated else "not rotated"
        if self.driver == "local" and not self.rotated:
            rotation = "local driver (rotated by default: 20m × 5)"
        return f"{self.container}: {size} ({self.driver}, {rotation})"


def log_file(raw: dict[str, Any]) -> LogFile:
    config = (raw.get("HostConfig") or {}).get("LogConfig") or {}
    options = config.get("Config") or {}
    path = raw.get("LogPath") or ""
    size = None
    if path:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = None
    return LogFile(
        container=str(raw.get("Name", "")).lstrip("/"),
        driver=config.get("Type") or "",
        size=size,
        max_size=options.get("max-size"),
        max_file=options.get("max-file"),
        container_id=str(raw.get("Id", "")),
        path=path,
    )


async def log_files(ctx: CheckContext, ids: list[str]) -> list[LogFile]:
    docker = ctx.targets.docker
    gate = asyncio.Semaphore(INSPECT_CONCURRENCY)

    async def one(container_id: str) -> LogFile | None:
        async with gate:
            try:
                return log_file(await docker.inspect_raw(container_id))
            except ContainerNotFound:
                return None  # removed since `docker system df` listed it

    return [f for f in await asyncio.gather(*(one(i) for i in ids)) if f is not None]


def log_status(log: LogFile) -> Status:
    size = log.size or 0
    if size >= LOG_WARN_BYTES or (not log.rotated and log.driver == "json-file" and size >= UNROTATED_WARN_BYTES):
        return Status.WARN
    return Status.OK


@runbook.check("disk", component="Container logs", section=LOGS, timeout=DF_SECONDS + 10)
async def container_logs(ctx: CheckContext) -> Finding:
    df = await docker_df(ctx)
    ids = [str(c["Id"]) for c in (df.get("Containers") or [])][:MAX_LOGS_INSPECTED]
    logs = await log_files(ctx, ids)
    readable = sorted((log for log in logs if log.size is not None), key=lambda log: -(log.size or 0))
    if logs and not readable:
        return Finding.skipped(
            "Container logs",
            "the log files are on the Docker host, which this bot cannot read "
            "(mount /var/lib/docker/containers read-only to see their sizes)",
            details=[log.describe() for log in logs[:TOP_LOGS]],
        )
    if not readable:
        return Finding.ok("Container logs", "no container logs on this engine")
    watched = set(await protected_containers(ctx))
    # the largest logs on the engine, and every watched container's log however small
    top = readable[:TOP_LOGS] + [log for log in readable[TOP_LOGS:] if log.container in watched]
    unrotated = [log.container for log in readable if log.driver == "json-file" and not log.rotated]
    # a log that is not rotated grows until the disk is full: never green, however small it is today
    status = worst([*(log_status(log) for log in readable), Status.WARN if unrotated else Status.OK])
    total = sum(log.size or 0 for log in readable)
    title = f"largest log: {top[0].describe()}; {human_bytes(total)} in {plural(len(readable), 'log')}"
    details = [log.describe() for log in top]
    if unrotated:
        details.append(
            f"{plural(len(unrotated), 'json-file log')} not rotated: "
            f"{'it grows' if len(unrotated) == 1 else 'they grow'} until the disk is full: "
            f"{listed(unrotated)} — set `logging: {{driver: json-file, options: {{max-size: 10m, max-file: '3'}}}}` "
            "in docker-compose.yml (applies when the container is re-created)"
        )
    data = {
        "logs": [{"container": log.container, "size": log.size, "rotated": log.rotated} for log in readable],
        "total": total,
    }
    return Finding(status, "Container logs", title, details=details, data=data)


# --- the database ----------------------------------------------------------------------------

DATABASE_SQL = """
SELECT current_database() AS database, pg_database_size(current_database()) AS size,
       pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size, pg_is_in_recovery() AS in_recovery
"""
WAL_SQL = "SELECT count(*) AS files, COALESCE(sum(size), 0)::bigint AS bytes FROM pg_ls_waldir()"
SLOTS_SQL = """
SELECT slot_name, active, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                       restart_lsn)::bigint AS retained
FROM pg_replication_slots
ORDER BY retained DESC NULLS LAST
"""
ARCHIVER_SQL = """
SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time,
       current_setting('archive_mode') AS archive_mode
FROM pg_stat_archiver
"""


async def wal_size(conn: asyncpg.Connection, user: str) -> tuple[int | None, int | None, str]:
    """(segments, bytes, a line saying so) — or why the WAL directory cannot be listed."""
    try:
        row = await conn.fetchrow(WAL_SQL)
    except asyncpg.InsufficientPrivilegeError:
        return (
            None,
            None,
            (
                f"WAL size: not visible to {user} — pg_ls_waldir() needs superuser or pg_monitor "
                f"(GRANT pg_monitor TO {user})"
            ),
        )
    return int(row["files"]), int(row["bytes"]), f"WAL: {human_bytes(row['bytes'])} in {row['files']} segments"


def wal_holders(slots: list[Any], archiver: Any, max_wal: int) -> list[str]:
    """What keeps WAL from being recycled: inactive slots retaining it, a failing archive_command."""
    reasons = []
    for slot in slots:
        retained = slot["retained"] or 0
        if not slot["active"] and retained >= max_wal:
            reasons.append(
                f"replication slot {slot['slot_name']} is inactive and retains {human_bytes(retained)} of WAL "
                f"({slot['wal_status']}): drop it if its consumer is gone — "
                f"`SELECT pg_drop_replication_slot('{slot['slot_name']}')`"
            )
    if archiver and archiver["archive_mode"] != "off" and archiver["last_failed_time"] is not None:
        archived = archiver["last_archived_time"]
        if archived is None or archiver["last_failed_time"] > archived:
            reasons.append(
                f"archive_command is failing ({archiver['failed_count']} failures, last on {archiver['last_failed_wal']}): "
                "WAL piles up until it succeeds — see the server log"
            )
    return reasons


@db_check(runbook, "disk", component="PostgreSQL disk", section=SECTION)
async def database_disk(ctx: CheckContext) -> Finding:
    async with db_connection(ctx) as conn:
        row = await conn.fetchrow(DATABASE_SQL)
        user = await conn.fetchval("SELECT current_user")
        files, wal_bytes, wal_line = await wal_size(conn, user)
        slots = await conn.fetch(SLOTS_SQL)
        archiver = await conn.fetchrow(ARCHIVER_SQL)
    max_wal = int(row["max_wal_size"])
    holders = wal_holders(list(slots), archiver, max_wal)
    status = Status.WARN if holders else Status.OK
    details = [
        f"database {row['database']}: {human_bytes(row['size'])}",
        wal_line + f" (max_wal_size {human_bytes(max_wal)})",
    ]
    if wal_bytes is not None and wal_bytes > 2 * max_wal:
        status = Status.WARN
        details.append("WAL is over twice max_wal_size: something keeps it from being recycled")
    details += holders
    details.append("largest tables and indexes: `db sizes`")
    title = f"database {row['database']} {human_bytes(row['size'])}, " + (
        f"WAL {human_bytes(wal_bytes)}" if wal_bytes is not None else "WAL size not visible"
    )
    data = {
        "database": row["database"],
        "size": row["size"],
        "wal_bytes": wal_bytes,
        "wal_files": files,
        "max_wal_size": max_wal,
    }
    return Finding(status, "PostgreSQL disk", title, details=details, data=data)


# --- alerts ----------------------------------------------------------------------------------

DISK_CHECKS = ("filesystem_usage", "docker_disk_usage", "container_logs", "database_disk")
runbook.triage_for(
    "HighDiskUsage",
    "PostgreSQLDiskSpace",
    "DiskSpaceLow",
    "DiskUsageHigh",
    "DatabaseDiskUsage",
    checks=DISK_CHECKS,
    match=name_matches(r"disk|filesystem|volume.?(full|usage)"),
)
