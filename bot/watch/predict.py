"""Predictions from what the bot sampled: when a disk fills (its used bytes, recorded at each disk watch
run), when the API container reaches its memory limit (the Docker stats sampler's history), how many days
a certificate has left, and a backup's age against the usual interval between dumps. A prediction inside
ERPGO_WATCH_HORIZON is a warning even while today's value is fine. Each is a check of the watch's
report, run by the engine (never raises, under a timeout)."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Check
from bot.core.units import human_bytes, human_duration
from bot.store.pool import Store
from bot.targets import NotConfigured
from bot.targets import tls as tls_target
from bot.targets.backup_store import backups_at, location_of
from bot.watch.fit import linear_fit, since_last_drop

SECTION = "Predictions"
DISK_WINDOW = timedelta(hours=6)  # the trend is fitted over the samples of the last hours
DISK_DROP = 0.01  # a fall of more than 1 % of the filesystem is a cleanup: the trend starts again
KEEP_SAMPLES = timedelta(days=2)
LATE_FACTOR = 2.0  # a backup is late when older than twice the usual interval between dumps
MIN_BACKUP_GAPS = 2


def horizon(ctx: CheckContext) -> float:
    return ctx.settings.erpgo_watch_horizon


def within(seconds: float | None, ctx: CheckContext) -> bool:
    return seconds is not None and seconds <= horizon(ctx)


# ---------------------------------------------------------------------- disk


def filesystem_use(path: str) -> tuple[int, int]:
    """(used bytes, capacity) as df counts them: the root reserve is not capacity."""
    vfs = os.statvfs(path)
    used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
    return used, used + vfs.f_bavail * vfs.f_frsize


async def record_disk(store: Store, paths: list[str], now: datetime) -> None:
    """One sample of each path's used bytes (an unreadable path is skipped: the disk check says why)."""
    rows = []
    for path in paths:
        try:
            used, total = await asyncio.to_thread(filesystem_use, path)
        except OSError:
            continue
        rows.append((path, now, used, total))
    async with store.acquire() as conn:
        await conn.executemany(
            "INSERT INTO disk_samples (path, at, used, total) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", rows
        )
        await conn.execute("DELETE FROM disk_samples WHERE at < $1", now - KEEP_SAMPLES)


async def disk_prediction(store: Store, ctx: CheckContext) -> list[Finding]:
    paths = list(dict.fromkeys(ctx.settings.erpgo_disk_paths))
    if not paths:
        raise NotConfigured("ERPGO_DISK_PATHS")
    now = datetime.now(UTC)
    async with store.acquire() as conn:
        rows = await conn.fetch(
            "SELECT path, extract(epoch FROM at)::float8 AS t, used, total FROM disk_samples"
            " WHERE path = ANY($1::text[]) AND at > $2 ORDER BY path, at",
            paths,
            now - DISK_WINDOW,
        )
    return [disk_trend(path, [r for r in rows if r["path"] == path], now, ctx) for path in paths]


def disk_trend(path: str, rows: list[Any], now: datetime, ctx: CheckContext) -> Finding:
    component = f"Disk {path}"
    if not rows:
        return Finding.skipped(component, "no samples yet: the disk watch records one per run")
    total = rows[-1]["total"]
    points = since_last_drop([(r["t"], float(r["used"])) for r in rows], DISK_DROP * total)
    fit = linear_fit(points)
    if fit is None:
        return Finding.ok(component, f"not enough samples for a trend yet ({len(points)})")
    left = fit.seconds_until(total, now.timestamp())
    if left is None:
        return Finding.ok(component, "not filling", details=[fit.quality()])
    said = f"full in ~{human_duration(left)} at the current rate"
    details = [fit.quality(), f"growing {human_bytes(fit.slope * 3600)}/h; {human_bytes(total)} in all"]
    if within(left, ctx):
        return Finding.warn(component, said, details=details + [f"inside the horizon ({human_duration(horizon(ctx))})"])
    return Finding.ok(component, said, details=details)


# ---------------------------------------------------------------------- the API container's memory


async def memory_prediction(ctx: CheckContext) -> Finding:
    name = await ctx.targets.container_of("api")
    sample = await ctx.targets.container_stats(name)
    component = f"Memory {name}"
    if sample.memory_used is None or not sample.memory_limit:
        return Finding.skipped(component, "no memory reading with a limit")
    fit = linear_fit([(t, float(v)) for t, v in sample.memory_history])
    if fit is None:
        return Finding.ok(component, "not enough samples for a trend yet")
    left = fit.seconds_until(sample.memory_limit, sample.memory_history[-1][0])
    if left is None:
        return Finding.ok(component, "not growing", details=[fit.quality()])
    said = f"reaches its limit ({human_bytes(sample.memory_limit)}) in ~{human_duration(left)} at the current rate"
    return (Finding.warn if within(left, ctx) else Finding.ok)(component, said, details=[fit.quality()])


# ---------------------------------------------------------------------- certificates and backups


async def certificate_prediction(ctx: CheckContext) -> list[Finding]:
    endpoints = [tls_target.parse_endpoint(entry) for entry in ctx.settings.erpgo_tls_endpoints]
    if not endpoints:
        raise NotConfigured("ERPGO_TLS_ENDPOINTS")
    reports = await asyncio.gather(
        *(
            tls_target.inspect(h, p, ca_file=ctx.settings.erpgo_tls_ca_file, timeout=ctx.check_timeout)
            for h, p in endpoints
        )
    )
    return [days_left(report, ctx) for report in reports if report.leaf is not None]


def days_left(report: tls_target.TlsReport, ctx: CheckContext) -> Finding:
    assert report.leaf is not None
    left = (report.leaf.not_after - datetime.now(UTC)).total_seconds()
    said = f"certificate expires in {left / 86400:.1f} days ({report.leaf.not_after:%Y-%m-%d %H:%M} UTC)"
    return (Finding.warn if within(left, ctx) else Finding.ok)(f"Certificate {report.label}", said)


async def backup_prediction(ctx: CheckContext) -> Finding:
    backups = await backups_at(location_of(ctx.settings), ctx.targets.docker).list()
    if len(backups) < MIN_BACKUP_GAPS + 1:
        return Finding.skipped("Backup interval", f"{len(backups)} dumps: too few to know their usual interval")
    gaps = [(a.mtime - b.mtime).total_seconds() for a, b in itertools.pairwise(backups)]
    usual = statistics.median(gaps)
    age = backups[0].age_seconds()
    said = f"newest dump {human_duration(age)} old; usually one every {human_duration(usual)}"
    late_in = usual * LATE_FACTOR - age
    if late_in <= 0:
        return Finding.warn(
            "Backup interval", said + " — the dumps have stopped?", details=[f"newest: {backups[0].name}"]
        )
    if within(late_in, ctx) and late_in < usual:
        return Finding.ok("Backup interval", said, details=[f"late in {human_duration(late_in)} without a new dump"])
    return Finding.ok("Backup interval", said)


# ---------------------------------------------------------------------- as checks of a watch's report

CheckFunc = Callable[[CheckContext], Awaitable[Any]]


def prediction_checks(verb: str, store: Store) -> list[Check]:
    """The predictions a watch of `verb` adds to its report."""
    funcs: dict[str, tuple[str, CheckFunc]] = {
        "disk": ("Disk trend", partial(disk_prediction, store)),
        "memory": ("Memory trend", memory_prediction),
        "tls": ("Certificate expiry", certificate_prediction),
        "backups": ("Backup interval", backup_prediction),
    }
    if verb not in funcs:
        return []
    component, func = funcs[verb]
    return [Check(f"predict_{verb}", func, component, SECTION, None)]
