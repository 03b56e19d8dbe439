"""An incident as it happened, from the bot's own records: the alerts received and resolved
(alerts_received), the triage report (the outbox rows of the thread), the commands people ran in the
channel meanwhile (commands_run), and every approval requested in the thread or in those commands'
threads with each of its decisions and its result (approvals, audit_log).

An incident is an alert group (its current episode, from shortly before it fired until shortly after
it resolved) or the thread of one command's report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bot.incidents.commands import PRIVATE

WINDOW = timedelta(minutes=15)  # commands run this long before an alert fired, or after it resolved, belong to it
MAX_TRIAGE_LINES = 8
SLACK_LINK = re.compile(r"/archives/(?P<channel>[A-Z0-9]+)/p(?P<ts>\d{10})(?P<micro>\d{6})")
THREAD_TS = re.compile(r"[?&]thread_ts=(?P<ts>\d{10}\.\d{6})")
TS = re.compile(r"^\d{10}\.\d{6}$")
EMOJI_WORDS = {
    ":red_circle:": "[CRIT]",
    ":large_yellow_circle:": "[WARN]",
    ":large_green_circle:": "[OK]",
    ":white_circle:": "[SKIPPED]",
}
NOISE_EVENTS = ("refused",)  # clicks that changed nothing


@dataclass(frozen=True)
class Target:
    """What `/erpgo timeline` was asked about: an alert group, a thread, or (neither) the newest group."""

    group_id: int | None = None
    channel: str | None = None
    thread_ts: str | None = None


MAX_GROUP_ID = 2**63 - 1  # alert_groups.id is a bigint: a larger number is no group, not a database error


def parse_target(words: list[str]) -> Target:
    """'' (the newest group), '12' or '#12' (group 12), a message link or a ts (its thread). ValueError else."""
    if not words:
        return Target()
    if len(words) > 1:
        raise ValueError("takes one alert group number or one thread link")
    word = words[0].strip("<>").split("|")[0]
    if word.lstrip("#").isascii() and word.lstrip("#").isdigit():
        number = int(word.lstrip("#"))
        if number > MAX_GROUP_ID:
            raise ValueError(f"{word[:40]!r} is larger than any alert group number")
        return Target(group_id=number)
    link = SLACK_LINK.search(word)
    if link:
        reply_of = THREAD_TS.search(word)
        ts = reply_of.group("ts") if reply_of else f"{link.group('ts')}.{link.group('micro')}"
        return Target(channel=link.group("channel"), thread_ts=ts)
    if TS.match(word):
        return Target(thread_ts=word)
    raise ValueError(f"{word[:40]!r} is neither an alert group number nor a link to a thread")


@dataclass
class Event:
    at: datetime
    kind: str  # alert, resolved, triage, command, proposed, approved, rejected, executed, expired, cancelled
    text: str
    details: list[str] = field(default_factory=list)


@dataclass
class Action:
    """An approval of the incident, as it ended."""

    id: int
    action: str
    summary: str
    requester: str
    state: str
    approved_by: list[str]
    result: str
    created_at: datetime
    finished_at: datetime | None


@dataclass
class Incident:
    title: str
    kind: str  # "alert group" | "thread"
    channel: str
    thread_key: str | None  # the outbox thread its file goes to
    thread_ts: str | None
    started_at: datetime
    ended_at: datetime | None  # resolved (None: still firing, or a thread)
    status: str  # firing, resolved, or the thread's worst status
    labels: dict[str, str]
    annotations: dict[str, str]
    events: list[Event]
    actions: list[Action]
    triage: list[str]  # the triage report's finding lines
    group_id: int | None = None
    alerts: int = 0

    @property
    def describe(self) -> str:
        return f"alert group #{self.group_id} ({self.title})" if self.group_id else f"the thread of {self.title}"


# what comes first when two things share a moment (a triage and the proposals written with it)
KIND_ORDER = {"alert": 0, "triage": 1, "proposed": 2}


def in_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.at, KIND_ORDER.get(e.kind, 3)))


def plain(mrkdwn: str) -> str:
    for emoji, word in EMOJI_WORDS.items():
        mrkdwn = mrkdwn.replace(emoji, word)
    return mrkdwn.replace("*", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else (value or {})


# --- finding the incident --------------------------------------------------------------------------


async def locate(conn: asyncpg.Connection, target: Target) -> tuple[str, int | str, str | None] | None:
    """("group", id, None) or ("thread", ts, channel) for the target; None when the bot knows nothing of it."""
    if target.group_id is not None:
        found = await conn.fetchval("SELECT id FROM alert_groups WHERE id = $1", target.group_id)
        return ("group", found, None) if found else None
    if target.thread_ts is None:
        found = await conn.fetchval(
            "SELECT id FROM alert_groups ORDER BY coalesce(resolved_at, fired_at) DESC, id DESC LIMIT 1"
        )
        return ("group", found, None) if found else None
    group = await conn.fetchval(
        "SELECT g.id FROM alert_groups g JOIN slack_threads t ON t.thread_key = g.thread_key WHERE t.ts = $1"
        " AND ($2::text IS NULL OR t.channel = $2)",
        target.thread_ts,
        target.channel,
    )
    if group:
        return ("group", group, None)
    channel = await conn.fetchval(
        "SELECT channel FROM commands_run WHERE report_ts = $1 AND ($2::text IS NULL OR channel = $2)"
        " UNION SELECT channel FROM approvals WHERE thread_ts = $1 AND ($2::text IS NULL OR channel = $2) LIMIT 1",
        target.thread_ts,
        target.channel,
    )
    return ("thread", target.thread_ts, channel) if channel else None


# --- reading it ------------------------------------------------------------------------------------


def alert_name(labels: dict[str, str]) -> str:
    return labels.get("alertname", "alert")


def alert_where(labels: dict[str, str]) -> str:
    shown = [f"{k}={labels[k]}" for k in ("instance", "job", "service", "container") if labels.get(k)]
    return f" ({', '.join(shown)})" if shown else ""


def alert_events(rows: list[asyncpg.Record]) -> tuple[list[Event], int]:
    """One event per change of an alert's status (repeated notifications folded in); the number of alerts."""
    events: list[Event] = []
    last: dict[str, tuple[str, Event]] = {}
    repeats: dict[int, int] = {}
    for row in rows:
        labels = _json(row["labels"])
        fingerprint, status = row["fingerprint"], row["status"]
        if fingerprint in last and last[fingerprint][0] == status:
            event = last[fingerprint][1]
            repeats[id(event)] = repeats.get(id(event), 1) + 1
            event.details = [f"notified {repeats[id(event)]} times"]
            continue
        annotations = _json(row["annotations"])
        at = row["received_at"]
        if status == "firing" and row["starts_at"]:
            at = row["starts_at"]
        elif status == "resolved" and row["ends_at"]:
            at = row["ends_at"]
        summary = annotations.get("summary") or annotations.get("description") or ""
        text = f"{alert_name(labels)} {status}{alert_where(labels)}" + (f": {summary}" if summary else "")
        event = Event(at, "alert" if status == "firing" else "resolved", text)
        last[fingerprint] = (status, event)
        events.append(event)
    return events, len(last)


def triage_events(rows: list[asyncpg.Record]) -> tuple[list[Event], list[str]]:
    events, lines = [], []
    for row in rows:
        message = _json(row["message"])
        blocks = message.get("blocks") or []
        header = next(
            (plain(b["text"]["text"]) for b in blocks if b.get("type") == "header"), plain(message.get("text", ""))
        )
        found = list(  # the headline's lines; the details repeat them under each finding
            dict.fromkeys(
                plain(line)
                for block in blocks
                if block.get("type") == "section"
                for line in (block.get("text") or {}).get("text", "").splitlines()
                if line.startswith(":") and " — " in line
            )
        )
        if not found and not header:
            continue
        lines += [line for line in found if line not in lines]
        events.append(Event(row["created_at"], "triage", header, found[:MAX_TRIAGE_LINES]))  # when it was known
    return events, lines[: MAX_TRIAGE_LINES * 2]


def command_events(rows: list[asyncpg.Record]) -> list[Event]:
    return [command_event(row) for row in rows]


def command_event(row: asyncpg.Record) -> Event:
    if row["status"] == PRIVATE:  # its answer was the asker's alone: so is what it was about
        return Event(row["at"], "command", f"a private lookup by <@{row['user_id']}>")
    return Event(
        row["at"],
        "command",
        f"<@{row['user_id']}> ran `/erpgo {row['args'] or row['verb']}` → {row['status'].upper()}",
        [line for line in (row["headline"] or "").splitlines() if line],
    )


AUDIT_TEXT = {
    "proposed": "requested #{id} {summary}",
    "approved": "approved #{id} ({outcome})",
    "rejected": "rejected #{id}",
    "executed": "#{id} {summary} → {outcome}",
    "expired": "#{id} expired: nobody approved it in time",
    "cancelled": "#{id} withdrawn",
}


def approval_events(audit: list[asyncpg.Record], approvals: dict[int, asyncpg.Record]) -> list[Event]:
    events = []
    for entry in audit:
        if entry["event"] in NOISE_EVENTS or entry["approval_id"] not in approvals:
            continue
        approval = approvals[entry["approval_id"]]
        template = AUDIT_TEXT.get(entry["event"], "#{id} {outcome}")
        text = template.format(id=approval["id"], summary=approval["summary"], outcome=entry["outcome"])
        actor = entry["actor"]
        who = f"<@{actor}>" if actor[:1] in "UW" else actor
        details = (
            [line for line in (entry["detail"] or "").splitlines() if line][:6] if entry["event"] == "executed" else []
        )
        events.append(Event(entry["at"], entry["event"], f"{who} {text}", details))
    return events


def actions_of(approvals: dict[int, asyncpg.Record]) -> list[Action]:
    return [
        Action(
            a["id"],
            a["action"],
            a["summary"],
            a["requester"],
            a["state"],
            list(
                a["approved_by"]
                or ([a["decided_by"]] if a["decided_by"] and a["state"] in ("succeeded", "failed") else [])
            ),
            a["result"] or "",
            a["created_at"],
            a["finished_at"],
        )
        for a in approvals.values()
    ]


async def _approvals(
    conn: asyncpg.Connection, channel: str, threads: list[str]
) -> tuple[dict[int, asyncpg.Record], list]:
    rows = await conn.fetch(
        "SELECT * FROM approvals WHERE channel = $1 AND thread_ts = ANY($2::text[]) ORDER BY id", channel, threads
    )
    approvals = {row["id"]: row for row in rows}
    audit = await conn.fetch(
        "SELECT * FROM audit_log WHERE approval_id = ANY($1::bigint[]) ORDER BY id", list(approvals)
    )
    return approvals, audit


async def load_group(conn: asyncpg.Connection, group_id: int, now: datetime | None = None) -> Incident:
    now = now or datetime.now(UTC)
    group = await conn.fetchrow(
        "SELECT g.*, t.ts AS thread_ts FROM alert_groups g LEFT JOIN slack_threads t ON t.thread_key = g.thread_key"
        " WHERE g.id = $1",
        group_id,
    )
    received = await conn.fetch("SELECT * FROM alerts_received WHERE group_id = $1 ORDER BY id", group_id)
    alerts, count = alert_events(received)
    triage_rows = await conn.fetch(
        "SELECT created_at, done_at, message FROM slack_outbox WHERE thread_key = $1 AND kind = 'triage' ORDER BY id",
        group["thread_key"],
    )
    triage, triage_lines = triage_events(triage_rows)
    start = min([group["fired_at"], *(e.at for e in alerts)]) - WINDOW
    end = (group["resolved_at"] or now) + WINDOW
    commands = await conn.fetch(
        "SELECT * FROM commands_run WHERE channel = $1 AND at BETWEEN $2 AND $3 ORDER BY id",
        group["channel"],
        start,
        end,
    )
    threads = [ts for ts in [group["thread_ts"], *(c["report_ts"] for c in commands)] if ts]
    approvals, audit = await _approvals(conn, group["channel"], threads)
    events = alerts + triage + command_events(commands) + approval_events(audit, approvals)
    if group["status"] == "resolved" and group["resolved_at"]:
        events.append(Event(group["resolved_at"], "resolved", "the alert group resolved: every alert of it ended"))
    labels = _json(group["common_labels"])
    names = sorted({alert_name(_json(r["labels"])) for r in received}) or [alert_name(labels)]
    return Incident(
        title=", ".join(names),
        kind="alert group",
        channel=group["channel"],
        thread_key=group["thread_key"],
        thread_ts=group["thread_ts"],
        started_at=group["fired_at"],
        ended_at=group["resolved_at"] if group["status"] == "resolved" else None,
        status=group["status"],
        labels=labels,
        annotations=_json(group["annotations"]),
        events=in_order(events),
        actions=actions_of(approvals),
        triage=triage_lines,
        group_id=group_id,
        alerts=count,
    )


async def load_thread(conn: asyncpg.Connection, channel: str, thread_ts: str) -> Incident:
    commands = await conn.fetch(
        "SELECT * FROM commands_run WHERE channel = $1 AND report_ts = $2 ORDER BY id", channel, thread_ts
    )
    approvals, audit = await _approvals(conn, channel, [thread_ts])
    events = in_order(command_events(commands) + approval_events(audit, approvals))
    first = commands[0] if commands else None
    title = f"`/erpgo {first['args'] or first['verb']}`" if first else f"thread {thread_ts}"
    started = events[0].at if events else datetime.fromtimestamp(float(thread_ts), UTC)
    return Incident(
        title=title,
        kind="thread",
        channel=channel,
        thread_key=None,
        thread_ts=thread_ts,
        started_at=started,
        ended_at=None,
        status=first["status"] if first else "unknown",
        labels={},
        annotations={},
        events=events,
        actions=actions_of(approvals),
        triage=[line for c in commands for line in (c["headline"] or "").splitlines() if line],
    )
