"""Acting on an alert thread from Slack: acknowledge it ("I'm on it"), silence its group in
Alertmanager for a while, and lift that silence.

What people did is kept per thread in alert_actions and shown by the header (rendered when the
outbox sends it); every step is audited in the same transaction that records it. Two people
clicking at once: the database keeps the first acknowledgement and refuses the second; a silence
is created by one click at a time per thread (an advisory lock), and only once Alertmanager has
answered with its id is anything recorded — Alertmanager down means nothing is silenced and
nothing says it is. A firing notification for a silenced group means the silence no longer
holds (Alertmanager suppresses what a silence matches): the intake ends it in alert_actions in the
same transaction (bot/alerts/intake.py), so the header it queues stops claiming it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.alerts.messages import (
    HEADER,
    ThreadActions,
    header_text,
    load_view,
    mention,
    slack_date,
)
from bot.approvals.rows import write_audit
from bot.core.errors import describe_error, is_unreachable
from bot.core.logs import log
from bot.core.redact import redact
from bot.core.units import human_duration, parse_duration, short_duration
from bot.slack import outbox, render
from bot.store.pool import Store
from bot.targets.alertmanager import Alertmanager, AlertmanagerError

MIN_SILENCE_S = 5 * 60
MAX_SILENCE_S = 14 * 86400
ACTION_LOCK = 7_301_118  # advisory lock namespace: one silence or unsilence of a thread at a time

THREAD_OF_MESSAGE = """
SELECT g.id, g.thread_key, g.channel, g.status, g.group_labels, g.common_labels, t.channel AS thread_channel, t.ts
FROM slack_threads t JOIN alert_groups g ON g.thread_key = t.thread_key
WHERE t.channel = $1 AND t.ts = $2
"""
ACTIONS = """
SELECT acked_by, acked_at, silence_id, silenced_by, silenced_until, silence_comment, silence_ended_at, silence_ended_by
FROM alert_actions WHERE thread_key = $1
"""


@dataclass
class AlertThread:
    """The alert group behind a header someone clicked on, in the thread they clicked in."""

    group_id: int
    thread_key: str
    channel: str  # where the group's messages are queued
    status: str
    matchers: dict[str, str]
    title: str


@dataclass
class Outcome:
    """What a click came to: done, already (someone got there first), refused, unavailable."""

    kind: str
    notice: str  # what the clicker alone is told
    actions: ThreadActions | None = None

    @property
    def done(self) -> bool:
        return self.kind == "done"


def silence_matchers(group_labels: dict[str, str], common_labels: dict[str, str]) -> dict[str, str]:
    """What the silence matches: the labels Alertmanager grouped by, else those all the alerts share."""
    return dict(group_labels or common_labels)


def parse_silence_duration(text: str) -> int:
    """Seconds from "90m", "4h", "2d" or "1h30m"; ValueError saying what is allowed."""
    seconds = parse_duration(text, maximum=MAX_SILENCE_S, what="silence")
    if seconds < MIN_SILENCE_S:
        raise ValueError(f"a silence lasts at least {short_duration(MIN_SILENCE_S)}")
    return seconds


async def thread_of(store: Store, group_id: int, channel: str, ts: str, wait: float = 3.0) -> AlertThread | None:
    """The group whose current thread's header is the message (channel, ts); None when it is not.

    A header Slack shows may be a moment ahead of the outbox's record of it (the commit follows the
    call): while the group's current thread has no recorded head yet, look again for `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        async with store.acquire() as conn:
            row = await conn.fetchrow(THREAD_OF_MESSAGE, channel, ts)
            if row is not None:
                return _thread(row) if row["id"] == group_id else None
            head_recorded = await conn.fetchval(
                "SELECT t.ts IS NOT NULL FROM alert_groups g LEFT JOIN slack_threads t ON t.thread_key = g.thread_key"
                " WHERE g.id = $1",
                group_id,
            )
        if head_recorded is not False or time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)


async def thread_by_key(store: Store, group_id: int, thread_key: str) -> AlertThread | None:
    """The group's thread `thread_key`, if it is still the group's current one."""
    async with store.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, thread_key, channel, status, group_labels, common_labels FROM alert_groups WHERE id = $1",
            group_id,
        )
    return _thread(row) if row is not None and row["thread_key"] == thread_key else None


async def lock_group(conn: Any, thread: AlertThread) -> bool:
    return await _lock_group(conn, thread)


async def refresh_header(conn: Any, thread: AlertThread) -> None:
    await _refresh_header(conn, thread)


def thread_from_row(row: Any) -> AlertThread:
    """The thread of an alert_groups row (id, thread_key, channel, status, group_labels, common_labels)."""
    return _thread(row)


def _thread(row: Any) -> AlertThread:
    labels, group_labels = json.loads(row["common_labels"]), json.loads(row["group_labels"])
    return AlertThread(
        group_id=row["id"],
        thread_key=row["thread_key"],
        channel=row["channel"],
        status=row["status"],
        matchers=silence_matchers(group_labels, labels),
        title=labels.get("alertname") or group_labels.get("alertname") or "alert group",
    )


async def current_actions(conn: Any, thread_key: str) -> ThreadActions:
    row = await conn.fetchrow(ACTIONS, thread_key)
    return ThreadActions(**dict(row)) if row else ThreadActions()


async def _refresh_header(conn: Any, thread: AlertThread) -> None:
    """Queue the header again: the outbox renders it from alert_actions when it sends it."""
    view = await load_view(conn, thread.group_id, thread.thread_key)
    if view is None:
        return
    firing = len(view.names_with("firing"))
    fallback = {"text": header_text(view, firing, len(view.members) - firing)}
    await outbox.put_header(
        conn, thread.thread_key, thread.channel, fallback, kind=HEADER, data={"group_id": thread.group_id}
    )


async def _lock_group(conn: Any, thread: AlertThread) -> bool:
    """The group's row lock (the intake's and triage's order), and whether the thread is still its own."""
    current = await conn.fetchval("SELECT thread_key FROM alert_groups WHERE id = $1 FOR UPDATE", thread.group_id)
    return current == thread.thread_key


# ---------------------------------------------------------------------- acknowledge


async def acknowledge(store: Store, thread: AlertThread, user: str) -> Outcome:
    """Record that `user` is on it; of concurrent clicks the first one is recorded, the others told so."""
    async with store.acquire() as conn, conn.transaction():
        if not await _lock_group(conn, thread):
            return Outcome("gone", "This alert thread is closed: the group has a newer thread.")
        row = await conn.fetchrow(
            """INSERT INTO alert_actions (thread_key, group_id, acked_by, acked_at) VALUES ($1, $2, $3, now())
               ON CONFLICT (thread_key) DO UPDATE SET acked_by = excluded.acked_by, acked_at = excluded.acked_at,
                   updated_at = now()
               WHERE alert_actions.acked_by IS NULL
               RETURNING acked_by""",
            thread.thread_key,
            thread.group_id,
            user,
        )
        actions = await current_actions(conn, thread.thread_key)
        if row is None:
            at = f" {slack_date(actions.acked_at)}" if actions.acked_at else ""
            return Outcome("already", f":eyes: {mention(actions.acked_by)} is already on it (since{at}).", actions)
        await write_audit(
            conn, user, "acknowledged", "acknowledged", action="alerts.ack", detail=thread.title, channel=thread.channel
        )
        await _refresh_header(conn, thread)
    log.info("alert_acknowledged", group_id=thread.group_id, user=user)
    return Outcome("done", f":eyes: You are on *{render.escape(thread.title)}*; the header says so.", actions)


# ---------------------------------------------------------------------- silence


async def silence(
    store: Store, alertmanager: Alertmanager, thread: AlertThread, user: str, user_name: str, seconds: int, comment: str
) -> Outcome:
    """Create a silence in Alertmanager matching the group, then record and show it.

    Alertmanager unreachable or refusing: nothing is recorded and the clicker is told why."""
    if not thread.matchers:
        return Outcome("refused", "This group has no labels to match: a silence would silence everything.")
    comment = redact(comment.strip())  # Alertmanager, the audit log and the thread all get the masked text
    async with store.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))", thread.thread_key, ACTION_LOCK
        ):
            return Outcome("busy", "Someone is changing this thread's silence right now; look at the header again.")
        now = datetime.now(UTC)
        actions = await current_actions(conn, thread.thread_key)
        if actions.silenced(now):
            until = slack_date(actions.silenced_until) if actions.silenced_until else "?"
            return Outcome(
                "already", f":no_bell: Already silenced by {mention(actions.silenced_by)} until {until}.", actions
            )
        ends = now + timedelta(seconds=seconds)
        why = comment.strip() or f"Silenced from the Slack thread of {thread.title}"
        try:
            silence_id = await alertmanager.create_silence(
                thread.matchers, now, ends, created_by=f"{user_name} (Slack {user})", comment=why
            )
        except Exception as exc:
            return _alertmanager_refusal("Nothing was silenced", exc)
        try:
            await _record_silence(conn, thread, user, silence_id, now, ends, comment.strip(), seconds)
        except BaseException:
            await _expire_quietly(alertmanager, silence_id)  # not recorded, so not left in force
            raise
    log.info("alert_silenced", group_id=thread.group_id, user=user, silence_id=silence_id, seconds=seconds)
    return Outcome(
        "done", f":no_bell: Silenced *{render.escape(thread.title)}* for {human_duration(seconds)} ({silence_id})."
    )


async def _record_silence(
    conn: Any,
    thread: AlertThread,
    user: str,
    silence_id: str,
    now: datetime,
    ends: datetime,
    comment: str,
    seconds: int,
) -> None:
    await _lock_group(conn, thread)
    await conn.execute(
        """INSERT INTO alert_actions (thread_key, group_id, silence_id, silenced_by, silenced_at, silenced_until,
                                      silence_comment)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (thread_key) DO UPDATE SET silence_id = excluded.silence_id, silenced_by = excluded.silenced_by,
               silenced_at = excluded.silenced_at, silenced_until = excluded.silenced_until,
               silence_comment = excluded.silence_comment, silence_ended_at = NULL, silence_ended_by = NULL,
               updated_at = now()""",
        thread.thread_key,
        thread.group_id,
        silence_id,
        user,
        now,
        ends,
        comment,
    )
    matchers = ", ".join(f"{k}={v}" for k, v in sorted(thread.matchers.items()))
    await write_audit(
        conn,
        user,
        "silenced",
        f"silenced for {human_duration(seconds)}",
        action="alerts.silence",
        detail=f"{thread.title}: silence {silence_id} matching {matchers}" + (f" — {comment}" if comment else ""),
        channel=thread.channel,
    )
    said = f" — “{render.escape(comment[:500])}”" if comment else ""
    text = f":no_bell: {mention(user)} silenced this group until {slack_date(ends)} ({human_duration(seconds)}){said}"
    await outbox.enqueue(
        conn, thread.thread_key, thread.channel, "reply", render.text_message(text), kind="alert.silence"
    )
    await _refresh_header(conn, thread)


async def unsilence(store: Store, alertmanager: Alertmanager, thread: AlertThread, user: str) -> Outcome:
    """Expire the thread's silence in Alertmanager, then record and show that it was lifted."""
    async with store.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))", thread.thread_key, ACTION_LOCK
        ):
            return Outcome("busy", "Someone is changing this thread's silence right now; look at the header again.")
        actions = await current_actions(conn, thread.thread_key)
        if not actions.silenced(datetime.now(UTC)) or actions.silence_id is None:
            return Outcome("already", ":bell: This group is not silenced (any more).", actions)
        try:
            await alertmanager.expire_silence(actions.silence_id)
        except AlertmanagerError as exc:
            if exc.status != 404:  # 404: it is gone already (expired by hand in Alertmanager)
                return _alertmanager_refusal("The silence is still in force", exc)
        except Exception as exc:
            return _alertmanager_refusal("The silence is still in force", exc)
        await _lock_group(conn, thread)
        await conn.execute(
            "UPDATE alert_actions SET silence_ended_at = now(), silence_ended_by = $2, updated_at = now()"
            " WHERE thread_key = $1",
            thread.thread_key,
            user,
        )
        await write_audit(
            conn,
            user,
            "unsilenced",
            "silence expired",
            action="alerts.silence",
            detail=f"{thread.title}: silence {actions.silence_id}",
            channel=thread.channel,
        )
        text = f":bell: {mention(user)} lifted the silence of this group."
        await outbox.enqueue(
            conn, thread.thread_key, thread.channel, "reply", render.text_message(text), kind="alert.silence"
        )
        await _refresh_header(conn, thread)
    log.info("alert_unsilenced", group_id=thread.group_id, user=user, silence_id=actions.silence_id)
    return Outcome("done", f":bell: The silence of *{render.escape(thread.title)}* is lifted.")


def _alertmanager_refusal(what: str, exc: BaseException) -> Outcome:
    from bot.targets import NotConfigured

    if isinstance(exc, NotConfigured):
        return Outcome("refused", f":no_bell: {what}: silences from Slack need Alertmanager's API ({exc}).")
    if isinstance(exc, AlertmanagerError):
        detail = render.escape(exc.text or f"HTTP {exc.status}")
        return Outcome("refused", f":warning: {what}: Alertmanager refused ({detail}).")
    if is_unreachable(exc):
        return Outcome(
            "unavailable", f":warning: {what}: Alertmanager is unreachable ({render.escape(describe_error(exc))})."
        )
    log.error("alertmanager_call_failed", error=describe_error(exc))
    return Outcome(
        "unavailable", f":warning: {what}: the call to Alertmanager failed ({render.escape(describe_error(exc))})."
    )


async def _expire_quietly(alertmanager: Alertmanager, silence_id: str) -> None:
    try:
        await alertmanager.expire_silence(silence_id)
    except Exception as exc:
        log.error("silence_left_unrecorded", silence_id=silence_id, error=describe_error(exc))
