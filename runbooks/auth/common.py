"""What the auth runbooks share: the guide's sections, argument shapes, small helpers and the one
Runbook they all declare on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bot.core.findings import Finding
from bot.core.registry import Args, Runbook
from bot.core.units import human_duration

runbook = Runbook("auth")

LOGIN = "Authentication & Authorization › Login Failures"
JWT = "Authentication & Authorization › JWT Token Issues"
PERMISSIONS = "Authentication & Authorization › Permission Issues"
MAX_LISTED = 10
MAX_EMAIL = 254
MAX_TOKEN = 8192
EMAIL = re.compile(r"^[^@\s<>|'\"`]+@[^@\s<>|'\"`]+$")
ROLE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
PERMISSION = re.compile(r"^[A-Za-z0-9_.:*-]{1,100}$")
PERMISSION_SHAPE = re.compile(r"[.:*]")  # what a permission has and a role name mostly has not
MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")  # how Slack sends an e-mail address it linked
BCRYPT = r"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$"


def not_erpgo(component: str, missing: str) -> Finding:
    return Finding.skipped(component, f"table {missing} not found — not an ERPGo database?")


async def missing_table(conn: asyncpg.Connection, *tables: str) -> str | None:
    for table in tables:
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", table):
            return table
    return None


def listed(names: list[str], total: int) -> str:
    return ", ".join(names[:MAX_LISTED]) + (f" and {total - MAX_LISTED} more" if total > MAX_LISTED else "")


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return human_duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


@dataclass(frozen=True)
class UserArgs(Args):
    """`user <email> [role|permission]`: a word with a `.` or `:` is taken for a permission."""

    email: str = ""
    role: str | None = None
    permission: str | None = None
