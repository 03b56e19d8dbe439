"""Guide: "Common Error Codes" — the three tables (HTTP, database, application), looked up by code.

`/erpgo error 503`, `/erpgo error 23505`, `/erpgo error auth_002`: what the code means, its common
causes, the guide's resolution and which verb of this bot to run next. A code the guide does not
list is a warning with the closest codes it does list (and, for HTTP statuses and SQLSTATEs, what
the standard calls it).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from http import HTTPStatus

from bot.core.engine import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Runbook, UsageError

runbook = Runbook("errors")

SECTION = "Common Error Codes"
MAX_CODE = 20
CODE_SHAPE = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")
PREFIXES = {"HTTP", "STATUS", "SQLSTATE", "CODE", "ERROR"}  # "/erpgo error HTTP 503" reads naturally too


@dataclass(frozen=True)
class ErrorCode:
    code: str
    meaning: str
    causes: str
    resolution: str
    table: str  # "HTTP Status Codes" | "Database Error Codes" | "Application Error Codes"
    next_steps: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return {
            "HTTP Status Codes": "HTTP status",
            "Database Error Codes": "PostgreSQL SQLSTATE",
            "Application Error Codes": "ERPGo error code",
        }[self.table]


HTTP, DATABASE, APPLICATION = "HTTP Status Codes", "Database Error Codes", "Application Error Codes"

# The guide's tables, row for row: code, meaning, common causes, resolution.
GUIDE_TABLES: dict[str, list[tuple[str, str, str, str]]] = {
    HTTP: [
        ("400", "Bad Request", "Invalid JSON, missing fields", "Validate request format"),
        ("401", "Unauthorized", "Invalid/missing token", "Refresh authentication"),
        ("403", "Forbidden", "Insufficient permissions", "Check user roles"),
        ("404", "Not Found", "Resource doesn't exist", "Verify resource ID"),
        ("409", "Conflict", "Duplicate resource", "Check for existing data"),
        ("422", "Unprocessable Entity", "Validation failed", "Fix validation errors"),
        ("429", "Too Many Requests", "Rate limit exceeded", "Reduce request rate"),
        ("500", "Internal Error", "Server error", "Check application logs"),
        ("503", "Service Unavailable", "Service down", "Check service health"),
    ],
    DATABASE: [
        ("23505", "Unique Violation", "Duplicate key", "Check existing data"),
        ("23503", "Foreign Key Violation", "Invalid reference", "Verify related data"),
        ("23514", "Check Violation", "Constraint failure", "Fix data constraints"),
        ("08006", "Connection Failed", "Database down", "Restart database"),
        ("08001", "Connection Error", "Network issues", "Check connectivity"),
    ],
    APPLICATION: [
        ("AUTH_001", "Invalid credentials", "Wrong password", "Reset password"),
        ("AUTH_002", "Token expired", "Session timeout", "Refresh token"),
        ("AUTH_003", "Invalid token", "Corrupted token", "Re-authenticate"),
        ("PROD_001", "Product not found", "Invalid SKU", "Verify product ID"),
        ("PROD_002", "Insufficient stock", "Low inventory", "Update stock levels"),
        ("ORDER_001", "Order not found", "Invalid order ID", "Check order number"),
        ("ORDER_002", "Invalid status", "Wrong status flow", "Verify status transition"),
    ],
}

# What to run next, per code: this bot's verbs where one fits, else the guide's section.
NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "401": (
        "`/erpgo jwt <token>` — decode the token the client sent (expired? malformed?)",
        "`/erpgo login-test` — does the login path itself answer?",
    ),
    "403": ("`/erpgo user <email>` — the user's roles (guide: Authentication & Authorization › Permission Issues)",),
    "429": (
        "rate limiting: the API's `RATE_LIMIT*` settings and who is sending the requests "
        "(guide: Security Issues › Unauthorized Access Attempts › Review Security Settings)",
    ),
    "500": (
        "`/erpgo health` — the API, its database and cache, the containers",
        "the API's logs: panics and stack traces (guide: Application Issues › 500 Internal Server Errors)",
    ),
    "503": ("`/erpgo health` — which dependency is down",),
    "23503": ("`/erpgo integrity` — NOT VALID foreign keys and their dangling rows",),
    "23514": ("`/erpgo integrity` — totals, stock and statuses that break the rules",),
    "08006": (
        "`/erpgo db connect` — can PostgreSQL be reached, how many connections are left",
        "`/erpgo health` — PostgreSQL and its container",
    ),
    "08001": (
        "`/erpgo db connect` — can PostgreSQL be reached, how many connections are left",
        "`/erpgo health` — PostgreSQL and its container",
    ),
    "AUTH_001": (
        "`/erpgo user <email>` — exists? active? bcrypt password hash?",
        "`/erpgo login-test` — does the login path itself answer?",
    ),
    "AUTH_002": (
        "`/erpgo jwt <token>` — when it expired and its lifetime (exp − iat)",
        "`/erpgo user <email>` — the account behind it",
    ),
    "AUTH_003": (
        "`/erpgo jwt <token>` — structure, algorithm and claims of the token",
        "`/erpgo user <email>` — the account behind it",
    ),
    "PROD_002": ("`/erpgo integrity` — stock_quantity that disagrees with the warehouses",),
    "ORDER_002": ("`/erpgo integrity` — orders stored in a status the state machine does not know",),
}

CODES: dict[str, ErrorCode] = {
    code: ErrorCode(code, meaning, causes, resolution, table, NEXT_STEPS.get(code, ()))
    for table, rows in GUIDE_TABLES.items()
    for code, meaning, causes, resolution in rows
}


def normalise(text: str) -> str:
    """'auth-002' → 'AUTH_002', ' 503 ' → '503'."""
    return text.strip().strip("`'\".,;:").upper().replace("-", "_")


def parse_code(words: list[str]) -> dict[str, str]:
    if len(words) == 2 and normalise(words[0]) in PREFIXES:
        words = words[1:]
    if not words:
        raise UsageError("Which code? e.g. `503`, `23505` or `AUTH_002`")
    if len(words) > 1:
        raise UsageError("One code at a time")
    code = normalise(words[0])
    if not code or len(code) > MAX_CODE or not CODE_SHAPE.match(code):
        raise UsageError(f"That is not an error code: codes are letters, digits and _ (at most {MAX_CODE} characters)")
    return {"code": code}


def standard_name(code: str) -> str | None:
    """What HTTP or PostgreSQL call a code the guide does not list."""
    if code.isdigit() and len(code) == 3:
        try:
            status = HTTPStatus(int(code))
        except ValueError:
            return None
        return f"HTTP {status.value} {status.phrase}"
    if len(code) == 5:
        name = sqlstate_names().get(code)
        if name:
            return f"PostgreSQL SQLSTATE {code}: {name}"
    return None


_SQLSTATES: dict[str, str] | None = None


def sqlstate_names() -> dict[str, str]:
    """SQLSTATE → a readable name, from asyncpg's exception classes (UniqueViolationError → unique violation)."""
    global _SQLSTATES
    if _SQLSTATES is None:
        import asyncpg.exceptions as pgexc

        names: dict[str, str] = {}
        for obj in vars(pgexc).values():
            state = getattr(obj, "sqlstate", None)
            if isinstance(obj, type) and isinstance(state, str) and state not in names:
                words = re.sub(r"(?<!^)(?=[A-Z])", " ", obj.__name__.removesuffix("Error")).lower()
                names[state] = words
        _SQLSTATES = names
    return _SQLSTATES


def closest(code: str, limit: int = 3) -> list[str]:
    """Codes of the guide that look like `code`: its family (5xx, 23xxx, AUTH_…) if the guide has one, else by spelling."""
    family: list[str] = []
    if code.isdigit() and len(code) == 3:
        family = [c for c in CODES if len(c) == 3 and c[0] == code[0]]
    elif code.isdigit() and len(code) == 5:
        family = [c for c in CODES if len(c) == 5 and c[:2] == code[:2]]
    elif "_" in code:
        family = [c for c in CODES if c.split("_")[0] == code.split("_")[0]]
    if family:
        return sorted(family, key=lambda c: -difflib.SequenceMatcher(None, code, c).ratio())[:limit]
    return difflib.get_close_matches(code, list(CODES), n=limit, cutoff=0.5)


def describe(entry: ErrorCode) -> list[str]:
    lines = [f"Meaning: {entry.meaning}", f"Common causes: {entry.causes}", f"Resolution: {entry.resolution}"]
    lines += [f"Next: {step}" for step in entry.next_steps]
    return lines


def lookup(code: str) -> Finding:
    entry = CODES.get(code)
    if entry is not None:
        return Finding.ok(
            "Error code",
            f"{entry.code} — {entry.meaning} ({entry.kind}): {entry.resolution.lower()}",
            details=describe(entry),
            section=f"{SECTION} › {entry.table}",
            data={
                "code": entry.code,
                "table": entry.table,
                "meaning": entry.meaning,
                "causes": entry.causes,
                "resolution": entry.resolution,
                "next": list(entry.next_steps),
            },
        )
    matches = closest(code)
    standard = standard_name(code)
    details = []
    if standard:
        details.append(f"Not in the guide's tables; the standard calls it {standard}.")
    if matches:
        details.append("Closest codes in the guide:")
        details += [f"• {c} — {CODES[c].meaning} ({CODES[c].kind}): {CODES[c].resolution}" for c in matches]
    details.append("The guide lists: " + ", ".join(CODES))
    title = f"unknown code {code}" + (f" ({standard})" if standard else "")
    title += f" — closest: {', '.join(matches)}" if matches else " — not in the guide's tables"
    return Finding.warn(
        "Error code",
        title,
        details=details,
        section=SECTION,
        data={"code": code, "closest": matches, "standard": standard},
    )


runbook.verb(
    "error",
    "what an error code means and what to do next (HTTP, SQLSTATE, AUTH_…)",
    usage="<code>",
    parse=parse_code,
    ack="Looking the code up…",
)


@runbook.check("error", component="Error code", section=SECTION)
async def error_code(ctx: CheckContext) -> Finding:
    return lookup(ctx.params["code"])
