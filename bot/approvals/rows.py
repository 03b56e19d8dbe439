"""Writes to the approvals' rows and the audit log that happen in someone else's transaction: the
audit line of whatever it records, where an approval's message landed, and an approval withdrawn
because nobody can see it."""

from __future__ import annotations

from typing import Any

import asyncpg

from bot.core.logs import log
from bot.core.redact import redact


async def write_audit(
    conn: Any,
    actor: str,
    event: str,
    outcome: str,
    *,
    approval_id: int | None = None,
    action: str | None = None,
    detail: str = "",
    channel: str | None = None,
) -> None:
    """One audit log entry, in the caller's transaction (so it exists exactly when what it records does)."""
    await conn.execute(
        "INSERT INTO audit_log (actor, event, approval_id, action, outcome, detail, channel)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        actor,
        event,
        approval_id,
        action,
        redact(outcome)[:500],
        redact(detail)[:2000],
        channel,
    )
    log.info("audit", actor=actor, what=event, approval_id=approval_id, action=action, outcome=outcome)


# ---- what the outbox records when an approval's message is sent or given up (its delivery hook) ----


async def record_message(
    conn: asyncpg.Connection, approval_id: int, channel: str, message_ts: str, thread_ts: str | None
) -> None:
    """Where the approval's message is (and the thread it is in), so a click anywhere can update it."""
    await conn.execute(
        "UPDATE approvals SET channel = $2, message_ts = $3, thread_ts = coalesce($4, thread_ts) WHERE id = $1",
        approval_id,
        channel,
        message_ts,
        thread_ts,
    )


async def withdraw_in(conn: asyncpg.Connection, approval_id: int, why: str) -> None:
    """Cancel a pending approval in the caller's transaction, audited as the bot's doing."""
    row = await conn.fetchrow(
        "UPDATE approvals SET state = 'cancelled', decided_by = 'bot', decided_at = now(), result = $2"
        " WHERE id = $1 AND state = 'pending' RETURNING action, channel",
        approval_id,
        redact(why),
    )
    if row:
        await write_audit(
            conn,
            "bot",
            "cancelled",
            "cancelled",
            approval_id=approval_id,
            action=row["action"],
            detail=why,
            channel=row["channel"],
        )
