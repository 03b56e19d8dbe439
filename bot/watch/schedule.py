"""When things run: ERPGO_WATCH's intervals and ERPGO_DIGEST_CRON's slots, and the claim that gives
each slot to exactly one replica (a row keyed by name and slot: of the replicas inserting it, one wins)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from bot.core.units import parse_duration

DEFAULT_WATCHES = "tls:6h,backups:1h,disk:15m"
WATCHABLE = ("tls", "backups", "disk", "memory")  # verbs a watch may run (their checks only read)
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 30 * 86400
OFF = "off"


def parse_watches(text: str) -> list[tuple[str, int]]:
    """(verb, seconds) for "tls:6h,backups:1h,disk:15m"; [] for "off"; ValueError naming the bad entry."""
    if text.strip().lower() in (OFF, ""):
        return []
    watches: dict[str, int] = {}
    for number, entry in enumerate((part.strip() for part in text.split(",")), start=1):
        if not entry:
            continue
        verb, sep, interval = entry.partition(":")
        verb = verb.strip().lower()
        if not sep or verb not in WATCHABLE:
            raise ValueError(f"entry {number} is not verb:interval with a verb among {', '.join(WATCHABLE)}")
        watches[verb] = parse_duration(interval, maximum=MAX_INTERVAL_S, what="watch interval")
    return list(watches.items())


def check_cron(text: str) -> str:
    """The cron expression (5 fields, or 6 with seconds last) or "off"; ValueError when croniter refuses it."""
    text = " ".join(text.split())
    if text.lower() == OFF:
        return OFF
    if not croniter.is_valid(text):
        raise ValueError("is not a cron expression (minute hour day month weekday)")
    return text


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name[:40]!r} is not a time zone such as UTC or Europe/Berlin") from None


def interval_slot(now: datetime, interval: int) -> datetime:
    """The start of the interval slot `now` falls in (slots are aligned on the epoch)."""
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % interval, UTC)


def cron_slot(cron: str, tz: str, now: datetime) -> datetime:
    """The newest time at or before `now` that the cron expression names, read in time zone `tz`."""
    just_after = now.astimezone(zone(tz)).replace(microsecond=0) + timedelta(seconds=1)
    previous: datetime = croniter(cron, just_after).get_prev(datetime)  # strictly before: `now` itself counts
    return previous.astimezone(UTC)


def next_cron(cron: str, tz: str, now: datetime) -> datetime:
    following: datetime = croniter(cron, now.astimezone(zone(tz))).get_next(datetime)
    return following.astimezone(UTC)


async def claim(conn: Any, name: str, slot: datetime, summary: Any = None) -> bool:
    """True for the one replica that claims (name, slot); every other one gets False."""
    won = await conn.fetchval(
        "INSERT INTO schedule_slots (name, slot, summary) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING true",
        name,
        slot,
        json.dumps(summary) if summary is not None else None,
    )
    return bool(won)


async def previous_slot(conn: Any, name: str, before: datetime) -> tuple[datetime, Any] | None:
    """The newest slot of `name` claimed before `before`, with what its run recorded."""
    row = await conn.fetchrow(
        "SELECT slot, summary FROM schedule_slots WHERE name = $1 AND slot < $2 ORDER BY slot DESC LIMIT 1",
        name,
        before,
    )
    if row is None:
        return None
    return row["slot"], json.loads(row["summary"]) if row["summary"] else None


async def forget_old_slots(conn: Any, name: str, slot: datetime, keep: timedelta = timedelta(days=30)) -> None:
    """Drop the claims of `name` older than `keep` before `slot` (the one just run)."""
    await conn.execute("DELETE FROM schedule_slots WHERE name = $1 AND slot < $2", name, slot - keep)
