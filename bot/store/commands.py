"""The commands people ran (command_log): kept so that each person's App Home can list their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.redact import redact
from bot.store.pool import Store

MAX_TEXT = 200
KEEP_PER_USER = 50  # older entries of a person are dropped as new ones come


@dataclass
class CommandEntry:
    at: datetime
    verb: str
    text: str
    channel: str


async def record_command(store: Store, user: str, channel: str, verb: str, text: str) -> None:
    """Remember that `user` ran `verb` (with `text` as typed) in `channel`."""
    async with store.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO command_log (user_id, channel, verb, text) VALUES ($1, $2, $3, $4)",
            user,
            channel,
            verb,
            redact(text)[:MAX_TEXT],
        )
        await conn.execute(
            "DELETE FROM command_log WHERE user_id = $1 AND id < ALL (SELECT id FROM command_log WHERE user_id = $1"
            " ORDER BY id DESC LIMIT $2)",
            user,
            KEEP_PER_USER,
        )


async def recent_commands(store: Store, user: str, limit: int = 10) -> list[CommandEntry]:
    """The newest commands of `user`, newest first."""
    async with store.acquire() as conn:
        rows = await conn.fetch(
            "SELECT at, verb, text, channel FROM command_log WHERE user_id = $1 ORDER BY id DESC LIMIT $2", user, limit
        )
    return [CommandEntry(r["at"], r["verb"], r["text"], r["channel"]) for r in rows]
