"""The digest: one message per ERPGO_DIGEST_CRON slot (read in ERPGO_DIGEST_TZ) across replicas, in
ERPGO_DIGEST_CHANNEL (default the alert channel), covering the period since the last one — alert groups
fired and resolved with the time to acknowledge and to resolve (median and worst), the noisiest alerts,
approvals requested / executed / rejected / expired, open watch threads, active bans and those ending
soon, the newest backup's age, the soonest certificate expiry, and the top statements by total time with
what changed since the last digest. Each part is read under its own timeout; one that cannot be read
says so and the others are still posted."""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.units import human_duration
from bot.runtime import Runtime
from bot.slack import outbox, render
from bot.targets import NotConfigured
from bot.targets import tls as tls_target
from bot.targets.backup_store import backups_at, location_of
from bot.watch import schedule

PART_TIMEOUT_S = 8.0
LATE_GRACE = timedelta(minutes=10)  # a slot missed for longer (the bot was down) is not posted late
FIRST_PERIOD = timedelta(days=1)  # what the first digest covers
TOP = 5
ENDING_SOON = timedelta(days=1)
DIGEST = "digest"

Part = Callable[[Runtime, datetime, datetime], Awaitable[list[str]]]


def channel_of(runtime: Runtime) -> str | None:
    return runtime.settings.erpgo_digest_channel or runtime.settings.erpgo_alert_channel


def moment(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if when.second else ""))


def spread(seconds: list[float]) -> str:
    if not seconds:
        return "—"
    return f"median {human_duration(statistics.median(seconds))}, worst {human_duration(max(seconds))}"


# ---------------------------------------------------------------------- the parts, from the bot's database

GROUPS_SQL = """
SELECT count(*) FILTER (WHERE g.fired_at >= $1 AND g.fired_at < $2) AS fired,
       count(*) FILTER (WHERE g.resolved_at >= $1 AND g.resolved_at < $2) AS resolved,
       array_remove(array_agg(extract(epoch FROM a.acked_at - g.fired_at)::float8)
           FILTER (WHERE a.acked_at >= $1 AND a.acked_at < $2), NULL) AS to_ack,
       array_remove(array_agg(extract(epoch FROM g.resolved_at - g.fired_at)::float8)
           FILTER (WHERE g.resolved_at >= $1 AND g.resolved_at < $2), NULL) AS to_resolve
FROM alert_groups g LEFT JOIN alert_actions a ON a.thread_key = g.thread_key
"""
NOISIEST_SQL = """
SELECT coalesce(labels->>'alertname', '?') AS name, count(*) AS n FROM alerts_received
WHERE received_at >= $1 AND received_at < $2 GROUP BY 1 ORDER BY n DESC, name LIMIT $3
"""
APPROVALS_SQL = """
SELECT count(*) FILTER (WHERE created_at >= $1 AND created_at < $2) AS requested,
       count(*) FILTER (WHERE state IN ('succeeded', 'failed') AND finished_at >= $1 AND finished_at < $2) AS executed,
       count(*) FILTER (WHERE state = 'rejected' AND decided_at >= $1 AND decided_at < $2) AS rejected,
       count(*) FILTER (WHERE state = 'expired' AND decided_at >= $1 AND decided_at < $2) AS expired
FROM approvals
"""


async def alert_part(runtime: Runtime, since: datetime, until: datetime) -> list[str]:
    async with runtime.store.acquire() as conn:
        groups = await conn.fetchrow(GROUPS_SQL, since, until)
        noisy = await conn.fetch(NOISIEST_SQL, since, until, TOP)
    lines = [
        f"*Alerts*: {groups['fired']} group(s) fired, {groups['resolved']} resolved · to acknowledge: "
        f"{spread(groups['to_ack'] or [])} · to resolve: {spread(groups['to_resolve'] or [])}"
    ]
    if noisy:
        lines.append("Noisiest: " + ", ".join(f"`{render.escape(r['name'])}` ×{r['n']}" for r in noisy))
    return lines


async def approvals_part(runtime: Runtime, since: datetime, until: datetime) -> list[str]:
    async with runtime.store.acquire() as conn:
        row = await conn.fetchrow(APPROVALS_SQL, since, until)
    return [
        f"*Approvals*: {row['requested']} requested, {row['executed']} executed, "
        f"{row['rejected']} rejected, {row['expired']} expired"
    ]


async def watches_part(runtime: Runtime, _since: datetime, _until: datetime) -> list[str]:
    async with runtime.store.acquire() as conn:
        rows = await conn.fetch("SELECT watch, headline FROM watch_threads WHERE thread_key IS NOT NULL ORDER BY 1")
    if not rows:
        return ["*Watches*: no open watch thread"]
    return [
        f"*Watches*: {len(rows)} open — " + "; ".join(f"`{r['watch']}` {render.escape(r['headline'])}" for r in rows)
    ]


async def bans_part(runtime: Runtime, _since: datetime, until: datetime) -> list[str]:
    async with runtime.store.acquire() as conn:
        rows = await conn.fetch(
            "SELECT address::text AS address, until FROM bans WHERE removed_at IS NULL"
            " AND (until IS NULL OR until > $1) ORDER BY until NULLS LAST",
            until,
        )
    soon = [r for r in rows if r["until"] is not None and r["until"] < until + ENDING_SOON]
    line = f"*Bans*: {len(rows)} active"
    if soon:
        line += " · ending within a day: " + ", ".join(f"`{r['address']}`" for r in soon[:TOP])
    return [line]


# ---------------------------------------------------------------------- the parts, from the deployment


async def backup_part(runtime: Runtime, _since: datetime, until: datetime) -> list[str]:
    backups = await backups_at(location_of(runtime.settings), runtime.targets.docker).list()
    if not backups:
        return ["*Backups*: no dump found"]
    return [f"*Backups*: newest `{backups[0].name}`, {human_duration(backups[0].age_seconds(until))} old"]


async def certificate_part(runtime: Runtime, _since: datetime, until: datetime) -> list[str]:
    settings = runtime.settings
    endpoints = [tls_target.parse_endpoint(entry) for entry in settings.erpgo_tls_endpoints]
    if not endpoints:
        return []
    reports = await asyncio.gather(
        *(tls_target.inspect(h, p, ca_file=settings.erpgo_tls_ca_file, timeout=PART_TIMEOUT_S) for h, p in endpoints)
    )
    dated = [(r.leaf.not_after, r.label) for r in reports if r.leaf is not None]
    if not dated:
        return ["*Certificates*: none presented"]
    expiry, label = min(dated)
    return [f"*Certificates*: soonest expiry `{label}` in {(expiry - until).total_seconds() / 86400:.1f} days"]


STATEMENTS_SQL = """
SELECT queryid::text AS id, left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS query, {total}::float8 AS total_ms
FROM pg_stat_statements
WHERE query IS NOT NULL AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {total} DESC LIMIT $1
"""


async def top_statements(runtime: Runtime) -> list[dict[str, Any]]:
    """The statements with the most total execution time; [] when pg_stat_statements is not there."""
    async with runtime.targets.pg.connect() as conn:
        if not await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            return []
        version = int(await conn.fetchval("SHOW server_version_num"))
        total = "total_exec_time" if version >= 130000 else "total_time"
        rows = await conn.fetch(STATEMENTS_SQL.format(total=total), TOP)
    return [dict(r) for r in rows]


def statements_lines(top: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> list[str]:
    if not top:
        return ["*Statements*: pg_stat_statements is not installed in the ERPGo database"]
    before = {s["id"]: s["total_ms"] for s in previous or []}
    lines = ["*Top statements by total time*:"]
    for s in top:
        change = (
            "new in the top"
            if previous is not None and s["id"] not in before
            else f"+{(s['total_ms'] - before[s['id']]) / 1000:.1f} s since the last digest"
            if s["id"] in before
            else ""
        )
        lines.append(
            f"• {s['total_ms'] / 1000:.1f} s `{render.escape(s['query'].replace('`', ''))}`"
            + (f" — {change}" if change else "")
        )
    return lines


async def statements_part(runtime: Runtime, previous: Any) -> tuple[list[str], list[dict[str, Any]] | None]:
    """The top statements' lines, and the top itself to remember (None when it could not be read)."""
    try:
        top = await asyncio.wait_for(top_statements(runtime), PART_TIMEOUT_S)
    except NotConfigured:
        return [], None
    except Exception as exc:
        return [f"*Statements*: could not be read ({render.escape(describe_error(exc))})"], None
    return statements_lines(top, (previous or {}).get("statements")), top


# ---------------------------------------------------------------------- the message


PARTS: tuple[tuple[str, Part], ...] = (
    ("alerts", alert_part),
    ("approvals", approvals_part),
    ("watches", watches_part),
    ("bans", bans_part),
    ("backups", backup_part),
    ("certificates", certificate_part),
)


async def read_part(name: str, part: Awaitable[list[str]]) -> list[str]:
    try:
        return await asyncio.wait_for(part, PART_TIMEOUT_S)
    except NotConfigured:
        return []  # a part of the deployment the bot is not told about is left out
    except Exception as exc:
        return [f"*{name.capitalize()}*: could not be read ({render.escape(describe_error(exc))})"]


async def compose(runtime: Runtime, since: datetime, until: datetime, previous: Any) -> tuple[render.Message, Any]:
    """The digest of [since, until) and what to remember of it (its top statements) for the next one."""
    store_parts = runtime.store.configured
    reads = [
        read_part(name, part(runtime, since, until))
        for name, part in PARTS
        if store_parts or name in ("backups", "certificates")
    ]
    parts = await asyncio.gather(*reads)
    statement_lines, top = await statements_part(runtime, previous)
    lines = [line for part in parts for line in part] + statement_lines
    period = f"{moment(since)} → {moment(until)} UTC"
    heading = f":newspaper: *ERPGo digest* — {period} ({human_duration((until - since).total_seconds())})"
    text = heading + "\n" + "\n".join(lines)
    blocks: list[Any] = [render.section(chunk) for chunk in render.chunks(text, render.MAX_SECTION)][
        : render.MAX_BLOCKS
    ]
    summary = {"statements": top if top is not None else (previous or {}).get("statements")}
    return render.message(render.clip(text.replace("*", ""), 3000), blocks), summary


async def post(runtime: Runtime, channel: str, message: render.Message, *, priority: int) -> None:
    async with runtime.outbox.thread(f"digest:{uuid.uuid4().hex}", channel, priority=priority) as rows:
        rows.post(message, kind="digest")


# ---------------------------------------------------------------------- one per slot, across replicas


async def digest_due(runtime: Runtime, now: datetime, done: dict[str, datetime]) -> bool:
    """Post the digest of the current cron slot when this replica claims it; True when it did."""
    channel = channel_of(runtime)
    settings = runtime.settings
    if channel is None or settings.erpgo_digest_cron == schedule.OFF:
        return False
    slot = schedule.cron_slot(settings.erpgo_digest_cron, settings.erpgo_digest_tz, now)
    if done.get(DIGEST) == slot or now - slot > LATE_GRACE:
        return False
    async with runtime.store.acquire() as conn:
        won = await schedule.claim(conn, DIGEST, slot)
        before = await schedule.previous_slot(conn, DIGEST, slot)
    done[DIGEST] = slot
    if not won:
        return False
    since, previous = before if before else (slot - FIRST_PERIOD, None)
    message, summary = await compose(runtime, since, slot, previous)
    await post(runtime, channel, message, priority=outbox.BACKGROUND)
    async with runtime.store.acquire() as conn:
        await conn.execute(
            "UPDATE schedule_slots SET summary = $3::jsonb WHERE name = $1 AND slot = $2",
            DIGEST,
            slot,
            json.dumps(summary),
        )
        await schedule.forget_old_slots(conn, DIGEST, slot)
    log.info("digest_posted", slot=slot.isoformat(), channel=channel)
    return True


def tick_of(cron: str) -> float:
    return 0.5 if len(cron.split()) == 6 else 5.0  # a cron with seconds is looked at twice a second


async def digest_forever(runtime: Runtime) -> None:
    done: dict[str, datetime] = {}
    while True:
        if not runtime.stopping:
            try:
                await digest_due(runtime, datetime.now(UTC), done)
            except Exception as exc:  # the database is down: the next tick tries again
                log.warning("digest_failed", error=describe_error(exc))
        await asyncio.sleep(tick_of(runtime.settings.erpgo_digest_cron))  # a period, not a synchronisation


async def digest_now(runtime: Runtime, channel: str) -> None:
    """`/erpgo digest`: the period since the last scheduled digest, posted in `channel` now."""
    now = datetime.now(UTC)
    previous, since = None, now - FIRST_PERIOD
    if runtime.store.configured:
        try:
            async with runtime.store.acquire() as conn:
                before = await schedule.previous_slot(conn, DIGEST, now)
            if before:
                since, previous = before
        except Exception as exc:
            log.warning("digest_history_unavailable", error=describe_error(exc))
    message, _ = await compose(runtime, since, now, previous)
    await post(runtime, channel, message, priority=outbox.INTERACTIVE)
