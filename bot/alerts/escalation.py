"""Escalating an alert thread to whoever is on call (bot/oncall.py): the header's Escalate button
mentions the on-call person in the thread (level 1), a second press the secondary (level 2); a critical
group nobody acknowledged within ERPGO_ESCALATE_AFTER of its thread's header escalates by itself, level 1
then, one more ERPGO_ESCALATE_AFTER later, level 2. Each level is reached once: the row's level moves up
by one in a single statement, so concurrent clicks and replicas escalate a level exactly once. Every
escalation is audited and announced in the thread; the header shows it."""

from __future__ import annotations

from typing import Any

from bot.alerts.actions import AlertThread, Outcome, lock_group, refresh_header
from bot.approvals.rows import write_audit
from bot.core.logs import log
from bot.core.units import human_duration
from bot.oncall import OnCall, mention
from bot.slack import outbox, render

ESCALATE = "alerts.escalate"  # the policy's name for the button, and the audit's
BOT = "bot"
TOP_LEVEL = 2

RAISE_LEVEL = """
INSERT INTO alert_escalations (thread_key, group_id, level, escalated_by, mentioned) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (thread_key) DO UPDATE SET level = excluded.level, escalated_by = excluded.escalated_by,
    escalated_at = now(), mentioned = excluded.mentioned
WHERE alert_escalations.level = excluded.level - 1
RETURNING level
"""

# critical groups whose thread's header has been up `after` seconds per level reached, nobody on it,
# not silenced from the thread
OVERDUE = """
SELECT g.id, g.thread_key, g.channel, g.status, g.group_labels, g.common_labels, coalesce(e.level, 0) AS level
FROM alert_groups g
JOIN slack_threads t ON t.thread_key = g.thread_key
LEFT JOIN alert_actions a ON a.thread_key = g.thread_key
LEFT JOIN alert_escalations e ON e.thread_key = g.thread_key
WHERE g.status = 'firing' AND g.common_labels->>'severity' = 'critical' AND a.acked_at IS NULL
  AND NOT coalesce(a.silence_id IS NOT NULL AND a.silence_ended_at IS NULL AND a.silenced_until > now(), false)
  AND coalesce(e.level, 0) < $2
  AND t.created_at < now() - make_interval(secs => $1 * (coalesce(e.level, 0) + 1))
ORDER BY g.id LIMIT 50
"""


async def current_level(conn: Any, thread_key: str) -> int:
    return int(
        await conn.fetchval("SELECT coalesce(max(level), 0) FROM alert_escalations WHERE thread_key = $1", thread_key)
    )


def who_at(level: int, oncall: OnCall) -> tuple[str, ...]:
    if level >= TOP_LEVEL:
        return (oncall.secondary,) if oncall.secondary else ()
    return oncall.now


async def escalate(conn: Any, thread: AlertThread, by: str, oncall: OnCall, level: int, why: str = "") -> Outcome:
    """Raise the thread to `level` (one above where it is) in the caller's transaction, mention who that
    level names, audit it and refresh the header."""
    people = who_at(level, oncall)
    if not people:
        return Outcome("refused", ":grey_question: There is no secondary on call to escalate to (oncall › secondary).")
    if not await lock_group(conn, thread):
        return Outcome("gone", "This alert thread is closed: the group has a newer thread.")
    mentions = " ".join(mention(p) for p in people)
    if await conn.fetchval(RAISE_LEVEL, thread.thread_key, thread.group_id, level, by, " ".join(people)) is None:
        return Outcome("already", ":rotating_light: This thread was escalated to that level already.")
    who = "on call" if level == 1 else "secondary on call"
    cause = why or f"escalated by {render.mention(by)}"
    text = f":rotating_light: {mentions} — you are {who}: *{render.escape(thread.title)}* needs you ({cause})."
    await outbox.enqueue(
        conn,
        thread.thread_key,
        thread.channel,
        "reply",
        render.message(text.replace("*", ""), [render.section(text)]),
        kind="alert.escalation",
    )
    await write_audit(
        conn,
        by,
        "escalated",
        f"level {level}: {' '.join(people)}",
        action=ESCALATE,
        detail=thread.title,
        channel=thread.channel,
    )
    await refresh_header(conn, thread)
    log.info("alert_escalated", group_id=thread.group_id, level=level, by=by, mentioned=list(people))
    return Outcome("done", f":rotating_light: Escalated to {mentions} ({who}).")


async def escalate_next(store: Any, thread: AlertThread, by: str, oncall: OnCall) -> Outcome:
    """The Escalate button: one level up from where the thread is."""
    async with store.acquire() as conn, conn.transaction():
        level = await current_level(conn, thread.thread_key) + 1
        if level > TOP_LEVEL:
            return Outcome("already", ":rotating_light: This thread is escalated to the secondary already.")
        return await escalate(conn, thread, by, oncall, level)


async def overdue(store: Any, after: float) -> list[tuple[Any, int]]:
    """(group row, its level) of the critical threads left unacknowledged too long."""
    async with store.acquire() as conn:
        rows = await conn.fetch(OVERDUE, after, TOP_LEVEL)
    return [(row, int(row["level"])) for row in rows]


async def escalate_overdue(store: Any, thread: AlertThread, level: int, oncall: OnCall, after: float) -> Outcome:
    why = f"not acknowledged for {human_duration(after * level)}"
    async with store.acquire() as conn, conn.transaction():
        return await escalate(conn, thread, BOT, oncall, level, why)
