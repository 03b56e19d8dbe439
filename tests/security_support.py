"""Helpers for the security tests: ERPGo's users and audit_logs tables as its migrations make them, rows
written as the real application writes them, and the Slack side of proposing and approving a ban."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bot.local.text import render_text

AUDIT_SQL = Path(__file__).parent / "fixtures" / "erpgo_audit.sql"
CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB, U0CAROL]
verbs:
  "*": [everyone]
actions:
  "security.*":
    approvers: [oncall]
  "auth.*":
    approvers: [oncall]
"""

# pkg/audit/logger.go, PostgresAuditLogger.LogEvent
INSERT_EVENT = """
INSERT INTO audit_logs (
    id, timestamp, event_type, user_id, resource_id,
    action, ip_address, user_agent, success, details, created_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


def statements(sql: str) -> list[str]:
    """The file's statements, split where a line ends one (a $$ body keeps its semicolons)."""
    found, current = [], []
    for line in sql.splitlines():
        current.append(line)
        text = "\n".join(current)
        if line.rstrip().endswith(";") and text.count("$$") % 2 == 0:
            found.append(text)
            current = []
    return [s for s in found if any(ln.strip() and not ln.strip().startswith("--") for ln in s.splitlines())]


async def create_erpgo_audit_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements(AUDIT_SQL.read_text()):
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class ErpgoAudit:
    """Writes users and audit events into an ERPGo database the way the application does."""

    conn: asyncpg.Connection

    async def add_user(self, email: str, *, active: bool = True) -> str:
        username = email.split("@")[0].replace(".", "")
        return str(
            await self.conn.fetchval(
                "INSERT INTO users (email, username, password_hash, first_name, last_name, is_active, is_verified)"
                " VALUES ($1, $2, $3, 'Test', 'User', $4, true) RETURNING id",
                email,
                username,
                "$2a$12$" + "x" * 53,
                active,
            )
        )

    async def event(
        self,
        event_type: str,
        action: str,
        *,
        ago: timedelta,
        ip: str = "",
        user_agent: str = "",
        success: bool = False,
        user_id: str | None = None,
        details: dict | None = None,
    ) -> None:
        moment = datetime.now(UTC) - ago
        await self.conn.execute(
            INSERT_EVENT,
            uuid.uuid4(),
            moment,
            event_type,
            uuid.UUID(user_id) if user_id else None,
            "",
            action,
            ip or None,
            user_agent,
            success,
            json.dumps(details) if details is not None else None,
            moment,
        )

    async def login_failed(self, email: str, ip: str, user_agent: str, ago: timedelta) -> None:
        """audit.NewLoginFailedEvent(req.Email, c.ClientIP(), c.Request.UserAgent(), err.Error())"""
        await self.event(
            "LOGIN_FAILED",
            "user_login_failed",
            ago=ago,
            ip=ip,
            user_agent=user_agent,
            details={"username": email, "reason": "UNAUTHORIZED: invalid credentials"},
        )

    async def login(self, user_id: str, ip: str, user_agent: str, ago: timedelta) -> None:
        await self.event("LOGIN", "user_login", ago=ago, ip=ip, user_agent=user_agent, success=True, user_id=user_id)

    async def lockout(self, user_id: str, ip: str, ago: timedelta) -> None:
        await self.event(
            "ACCOUNT_LOCKOUT",
            "account_locked",
            ago=ago,
            ip=ip,
            success=True,
            user_id=user_id,
            details={"reason": "too many failed login attempts"},
        )


def content(message: dict) -> str:
    return render_text(message)


def report(bot, head: dict) -> tuple[str, list[dict]]:
    """(the whole report as text, its approval messages) for the report whose headline is `head`."""
    thread = bot.slack.thread(CHANNEL, head["ts"])
    text = "\n".join([content(head), *(content(m) for m in thread)])
    return text, [copy.deepcopy(m) for m in thread if bot.slack.buttons(m)]


async def run(bot, text: str, user: str = "U0ALICE") -> tuple[str, list[dict]]:
    """`/erpgo <text>` as `user`: the ack's text when it answered at once, else the report and its approvals."""
    before = len(bot.slack.channel_messages(CHANNEL))
    result = await bot.command(text, user_id=user)
    posted = bot.slack.channel_messages(CHANNEL)
    if len(posted) == before:
        return render_text(result.json), []
    return report(bot, posted[-1])


def approval_for(approvals: list[dict], bot, needle: str) -> dict:
    matching = [m for m in approvals if needle in content(m)]
    assert len(matching) == 1, [content(m).splitlines()[0] for m in approvals]
    return matching[0]


async def approve(bot, message: dict, user: str = "U0BOB") -> str:
    """Click Approve as `user`; the approval message as it reads afterwards."""
    result = await bot.slack.click(message, "approval.approve", user_id=user)
    assert result.status == 200 and result.within_ack_deadline
    await bot.settle()
    return content(bot.slack.messages[CHANNEL, message["ts"]])


async def can_connect(edge, source_ip: str) -> bool:
    """Whether the attacker namespace reaches the edge's server from `source_ip` (off the event loop)."""
    return await asyncio.to_thread(edge.attacker_can_connect, source_ip)
