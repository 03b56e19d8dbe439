"""Guide: "Common Error Codes" — the guide's three tables and the codes the real ERPGo sends, looked up by code.

`/erpgo error 503`, `/erpgo error 23505`, `/erpgo error unauthorized`, `/erpgo error auth_002`: what the
code means, its HTTP status, its common causes, the resolution and which verb of this bot to run next.

Two vocabularies meet here. The real API answers every error as
`{"error": {"code": "UNAUTHORIZED", "message": …, "details": {…}, "correlation_id": …, "timestamp": …}}`
with the codes of its `pkg/errors` (NOT_FOUND … SERVICE_UNAVAILABLE), and its API documentation adds a
few more (TOKEN_EXPIRED, ACCOUNT_LOCKED…). The guide's application codes (AUTH_001, PROD_002, ORDER_002…)
were written ahead of the application and are not in its source: they are still answered, row for row,
marked as the guide's names and pointing at the real code that replaced them. A code nobody lists is a
warning with the nearest codes that are listed (and, for HTTP statuses and SQLSTATEs, what the
standard calls it).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from http import HTTPStatus

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Args, Runbook, UsageError
from runbooks.error_codes import MIDDLEWARE_ROWS, VERIFICATION_ROWS, RealRow

runbook = Runbook("errors")

SECTION = "Common Error Codes"
MAX_CODE = 40  # the real codes reach 25 characters (TOKEN_INVALIDATION_FAILED)
CODE_SHAPE = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")
PREFIXES = {"HTTP", "STATUS", "SQLSTATE", "CODE", "ERROR"}  # "/erpgo error HTTP 503" reads naturally too


@dataclass(frozen=True)
class ErrorCode:
    code: str
    meaning: str
    causes: str
    resolution: str
    table: str  # one of TABLE_KINDS
    next_steps: tuple[str, ...] = ()
    http_status: int | None = None  # what the real API answers with this code
    notes: tuple[str, ...] = ()  # where the code comes from, its real counterpart

    @property
    def kind(self) -> str:
        return TABLE_KINDS[self.table]

    @property
    def from_guide(self) -> bool:
        return self.table in GUIDE_TABLES


HTTP, DATABASE, APPLICATION = "HTTP Status Codes", "Database Error Codes", "Application Error Codes"
SOURCE, DOCS = "ERPGo error codes (pkg/errors)", "ERPGo API documentation"
MIDDLEWARE, VERIFICATION = "ERPGo middleware codes", "ERPGo e-mail verification codes"
TABLE_KINDS = {
    HTTP: "HTTP status",
    DATABASE: "PostgreSQL SQLSTATE",
    APPLICATION: "the guide's application code — not in ERPGo's source",
    SOURCE: "ERPGo error code",
    DOCS: "ERPGo error code, from its API documentation",
    MIDDLEWARE: "ERPGo middleware code",
    VERIFICATION: "ERPGo e-mail verification code",
}
ORIGINS = {
    SOURCE: "in ERPGo's source (pkg/errors)",
    DOCS: "in ERPGo's API documentation; the running API may send a more general code",
    MIDDLEWARE: "in ERPGo's middleware (pkg/auth, internal/interfaces/http/middleware)",
    VERIFICATION: "in ERPGo's e-mail verification handler",
}
# pkg/errors answers {"error": {"code", "message", "correlation_id", …}}; middleware and handlers a flat body
FLAT_BODY = 'the body is flat, {"error": "<message>", "code": "<code>"}: no correlation_id to look up'
CORRELATED_BODY = "the error body carries a correlation_id: look it up in the API's logs"

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
HEALTH = "`/erpgo health` — the API, its database and cache, the containers"
LOGS = "`/erpgo logs` — the API's recent 5xx, panics and failed logins"
LOGIN_TEST = "`/erpgo login-test` — does the login path itself answer?"
USER = "`/erpgo user <email>` — exists? active? bcrypt password hash? roles?"
JWT = "`/erpgo jwt <token>` — decode the token the client sent (expired? malformed? which roles?)"
SECURITY = "`/erpgo security` — failed logins per address and account (audit_logs), bans"
INTEGRITY = "`/erpgo integrity` — totals, stock and statuses that break the rules"
DB_CONNECT = "`/erpgo db connect` — can PostgreSQL be reached, how many connections are left"
NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "400": ("the `details` of the error body name the field; `/erpgo logs` shows what the API logged",),
    "401": ("`/erpgo jwt <token>` — decode the token the client sent (expired? malformed?)", LOGIN_TEST),
    "403": ("`/erpgo user <email>` — the user's roles (guide: Authentication & Authorization › Permission Issues)",),
    "429": (
        (
            "rate limiting: the API's `RATE_LIMIT*` settings and who is sending the requests "
            "(guide: Security Issues › Unauthorized Access Attempts › Review Security Settings)"
        ),
        SECURITY,
    ),
    "500": (HEALTH, "the API's logs: panics and stack traces (guide: Application Issues › 500 Internal Server Errors)"),
    "503": ("`/erpgo health` — which dependency is down",),
    "23503": ("`/erpgo integrity` — NOT VALID foreign keys and their dangling rows",),
    "23514": (INTEGRITY,),
    "08006": (DB_CONNECT, "`/erpgo health` — PostgreSQL and its container"),
    "08001": (DB_CONNECT, "`/erpgo health` — PostgreSQL and its container"),
    "AUTH_001": (USER, LOGIN_TEST),
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

# The guide's application codes and what the real API sends instead.
GUIDE_COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "AUTH_001": ("UNAUTHORIZED", "INVALID_CREDENTIALS"),
    "AUTH_002": ("TOKEN_EXPIRED", "UNAUTHORIZED"),
    "AUTH_003": ("UNAUTHORIZED",),
    "PROD_001": ("NOT_FOUND",),
    "PROD_002": ("BAD_REQUEST", "CONFLICT"),
    "ORDER_001": ("NOT_FOUND",),
    "ORDER_002": ("BAD_REQUEST", "VALIDATION_ERROR"),
}

# The real codes: code, HTTP status, meaning, common causes, resolution, next steps.
REAL_TABLES: dict[str, list[RealRow]] = {
    SOURCE: [
        (
            "NOT_FOUND",
            404,
            "Resource not found",
            "a wrong or deleted id, SKU or order number",
            "Verify the resource id",
            (INTEGRITY, LOGS),
        ),
        (
            "VALIDATION_ERROR",
            400,
            "Input validation failed",
            "missing or malformed fields; `fields` / `details` of the body name them (the docs also list 422)",
            "Fix the fields the error names",
            (LOGS,),
        ),
        (
            "CONFLICT",
            409,
            "Resource already exists or changed meanwhile",
            "a duplicate e-mail, username or SKU; a unique constraint (SQLSTATE 23505)",
            "Use another identifier or update the existing resource",
            ("`/erpgo users` — the accounts as stored", INTEGRITY),
        ),
        (
            "UNAUTHORIZED",
            401,
            "Not authenticated: invalid credentials, or a missing / invalid token",
            (
                'a wrong password, an unknown or inactive account (all answer "invalid credentials"), '
                "a missing, malformed or badly signed Bearer token"
            ),
            "Check the account, then the token",
            (USER, JWT, LOGIN_TEST),
        ),
        (
            "FORBIDDEN",
            403,
            "Authenticated, but the user's roles do not grant the permission",
            "a user without a role, or a role whose permissions (TEXT[]) lack the one needed",
            "Check the user's roles and their permissions",
            (
                "`/erpgo user <email>` — the user's roles and their permissions",
                "`/erpgo users` — active users without any role",
            ),
        ),
        (
            "INTERNAL_ERROR",
            500,
            "Unexpected server error",
            "a panic, a failing query, a dependency error",
            "Look the correlation_id up in the API's logs",
            (LOGS, HEALTH, "`/erpgo db` — the database overview"),
        ),
        (
            "RATE_LIMIT_EXCEEDED",
            429,
            "Too many requests from one client",
            (
                "the rate limiter (`RATE_LIMIT_ENABLED`, `RATE_LIMIT_RPS`, `RATE_LIMIT_BURST`); on login, "
                "5 attempts per 15 minutes per IP — a script, a retry loop or a password-spraying attack"
            ),
            "Wait (Retry-After) and find who sends the requests",
            (SECURITY, LOGS),
        ),
        (
            "BAD_REQUEST",
            400,
            "The request cannot be processed as sent",
            (
                "an invalid JSON body, a wrong parameter, a business rule (e.g. insufficient stock, a status change "
                "the order state machine refuses)"
            ),
            "Fix the request; `details` says why",
            (LOGS, INTEGRITY),
        ),
        (
            "TIMEOUT",
            408,
            "The request took longer than the server allows",
            "slow queries, locks, an overloaded database or a slow dependency",
            "Find what is slow",
            (
                "`/erpgo perf` — response times and what slows them",
                "`/erpgo db locks` — blocked sessions",
                "`/erpgo db slow` — the slowest statements",
            ),
        ),
        (
            "SERVICE_UNAVAILABLE",
            503,
            "A dependency (database or cache) is unavailable",
            "PostgreSQL or Redis down or out of connections",
            "Check the dependencies",
            (HEALTH, "`/erpgo db connections` — connections by state and application"),
        ),
    ],
    DOCS: [
        (
            "TOKEN_EXPIRED",
            401,
            "The JWT has expired",
            "the access token outlived `JWT_EXPIRY`; the client did not refresh",
            "Refresh it with POST /api/v1/auth/refresh, or log in again",
            (JWT, "`/erpgo user <email>` — the account behind it"),
        ),
        (
            "TOKEN_BLACKLISTED",
            401,
            "The token has been revoked",
            "the user logged out, or the token was revoked",
            "Log in again",
            (JWT,),
        ),
        (
            "INVALID_CREDENTIALS",
            401,
            "Incorrect e-mail or password",
            (
                "a wrong password, an unknown or inactive account, a password hash that is not bcrypt "
                '(the running API sends UNAUTHORIZED "invalid credentials" for all of these)'
            ),
            "Check the account",
            (USER, LOGIN_TEST),
        ),
        (
            "ACCOUNT_LOCKED",
            403,
            "Account temporarily locked after too many failed logins",
            (
                "`MAX_LOGIN_ATTEMPTS` failures within the window lock it for `LOCKOUT_DURATION` (15 minutes by default); "
                'the login handler answers it as HTTP 429 "Account locked"'
            ),
            "Wait for the lockout to end; if nobody you know failed those logins, treat it as an attack",
            (SECURITY, USER, LOGS),
        ),
        (
            "DUPLICATE_EMAIL",
            409,
            "E-mail already registered",
            "a second registration with the same address (users.email is UNIQUE)",
            "Log in with the existing account, or use another address",
            ("`/erpgo user <email>` — the existing account",),
        ),
        (
            "DUPLICATE_SKU",
            409,
            "Product SKU already exists",
            "a product created twice (products.sku is UNIQUE)",
            "Use a unique SKU or update the existing product",
            (INTEGRITY,),
        ),
        (
            "INVALID_REQUEST",
            400,
            "Malformed request",
            "a body that is not JSON, or required fields missing",
            "Verify the request format and required fields",
            (LOGS,),
        ),
    ],
    MIDDLEWARE: MIDDLEWARE_ROWS,
    VERIFICATION: VERIFICATION_ROWS,
}


def guide_entry(table: str, code: str, meaning: str, causes: str, resolution: str) -> ErrorCode:
    notes: tuple[str, ...] = ()
    if table == APPLICATION:
        real = GUIDE_COUNTERPARTS.get(code, ())
        notes = (
            "The guide's name: the real ERPGo never sends it"
            + (f" — it answers {' or '.join(real)} (`/erpgo error {real[0].lower()}`)" if real else ""),
        )
    elif table == HTTP:
        sent = [c for c, status, *_ in (row for rows in REAL_TABLES.values() for row in rows) if str(status) == code]
        if sent:
            notes = (f"ERPGo sends it with: {', '.join(sent)}",)
    return ErrorCode(
        code,
        meaning,
        causes,
        resolution,
        table,
        NEXT_STEPS.get(code, ()),
        http_status=int(code) if table == HTTP else None,
        notes=notes,
    )


def real_entry(table: str, row: RealRow) -> ErrorCode:
    code, status, meaning, causes, resolution, steps = row
    body = FLAT_BODY if table in (MIDDLEWARE, VERIFICATION) else CORRELATED_BODY
    notes = (f"HTTP {status} {HTTPStatus(status).phrase}; {ORIGINS[table]}", body)
    return ErrorCode(code, meaning, causes, resolution, table, steps, http_status=status, notes=notes)


CODES: dict[str, ErrorCode] = {
    code: guide_entry(table, code, meaning, causes, resolution)
    for table, rows in GUIDE_TABLES.items()
    for code, meaning, causes, resolution in rows
} | {row[0]: real_entry(table, row) for table, rows in REAL_TABLES.items() for row in rows}
REAL_CODES = [code for code, entry in CODES.items() if not entry.from_guide]


def normalise(text: str) -> str:
    """'auth-002' → 'AUTH_002', ' 503 ' → '503', 'rate limit-exceeded' stays one word per call."""
    return text.strip().strip("`'\".,;:").upper().replace("-", "_")


@dataclass(frozen=True)
class ErrorArgs(Args):
    code: str = ""


def parse_code(words: list[str]) -> ErrorArgs:
    if len(words) == 2 and normalise(words[0]) in PREFIXES:
        words = words[1:]
    if not words:
        raise UsageError("Which code? e.g. `503`, `23505`, `UNAUTHORIZED` or the guide's `AUTH_002`")
    if len(words) > 1:
        raise UsageError("One code at a time")
    code = normalise(words[0])
    if not code or len(code) > MAX_CODE or not CODE_SHAPE.match(code):
        raise UsageError(f"That is not an error code: codes are letters, digits and _ (at most {MAX_CODE} characters)")
    return ErrorArgs(code)


def standard_name(code: str) -> str | None:
    """What HTTP or PostgreSQL call a code nobody here lists."""
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


def by_likeness(code: str, candidates: list[str]) -> list[str]:
    return sorted(candidates, key=lambda c: -difflib.SequenceMatcher(None, code, c).ratio())


def closest(code: str, limit: int = 3) -> list[str]:
    """Listed codes that look like `code`: its family (5xx, 23xxx, AUTH_…, TOKEN_…) if one is listed, else by
    spelling."""
    family: list[str] = []
    if code.isdigit() and len(code) == 3:
        family = [c for c in CODES if len(c) == 3 and c[0] == code[0]]
    elif code.isdigit() and len(code) == 5:
        family = [c for c in CODES if len(c) == 5 and c[:2] == code[:2]]
    elif "_" in code:
        words = set(code.split("_"))
        family = [c for c in CODES if c.split("_")[0] == code.split("_")[0]] or [
            c for c in CODES if words & set(c.split("_")) and not c[0].isdigit()
        ]
    if family:
        return by_likeness(code, family)[:limit]
    return difflib.get_close_matches(code, list(CODES), n=limit, cutoff=0.5)


def describe(entry: ErrorCode) -> list[str]:
    lines = [f"Meaning: {entry.meaning}"]
    if entry.http_status is not None and not entry.from_guide:
        lines.append(f"HTTP status: {entry.http_status} {HTTPStatus(entry.http_status).phrase}")
    lines += [f"Common causes: {entry.causes}", f"Resolution: {entry.resolution}"]
    lines += list(entry.notes)
    lines += [f"Next: {step}" for step in entry.next_steps]
    return lines


def one_line(code: str) -> str:
    entry = CODES[code]
    status = f"HTTP {entry.http_status}, " if entry.http_status and not entry.from_guide else ""
    return f"• {code} — {entry.meaning} ({status}{entry.kind}): {entry.resolution}"


def lookup(code: str) -> Finding:
    code = normalise(code)
    entry = CODES.get(code)
    if entry is not None:
        section = f"{SECTION} › {entry.table}" if entry.from_guide else f"{SECTION} › ERPGo's own codes"
        kind = entry.kind if entry.from_guide else f"HTTP {entry.http_status}, {entry.kind}"
        return Finding.ok(
            "Error code",
            f"{entry.code} — {entry.meaning} ({kind}): {entry.resolution.lower()}",
            details=describe(entry),
            section=section,
            data={
                "code": entry.code,
                "table": entry.table,
                "meaning": entry.meaning,
                "causes": entry.causes,
                "resolution": entry.resolution,
                "next": list(entry.next_steps),
                "http_status": entry.http_status,
                "guide_name": entry.table == APPLICATION,
                "real": list(GUIDE_COUNTERPARTS.get(entry.code, ())),
            },
        )
    matches = closest(code)
    standard = standard_name(code)
    details = []
    if standard:
        details.append(f"Not in the guide's tables nor ERPGo's codes; the standard calls it {standard}.")
    if code.isdigit() and (sent := [c for c in REAL_CODES if str(CODES[c].http_status) == code]):
        details.append(f"ERPGo sends HTTP {code} with: {', '.join(sent)}")
        matches = (sent + [m for m in matches if m not in sent])[:3]
    if matches:
        details.append("Closest listed codes:")
        details += [one_line(c) for c in matches]
    details.append("ERPGo sends: " + ", ".join(REAL_CODES))
    details.append("The guide lists: " + ", ".join(c for c in CODES if CODES[c].from_guide))
    title = f"unknown code {code}" + (f" ({standard})" if standard else "")
    title += f" — closest: {', '.join(matches)}" if matches else " — not in the guide's tables nor ERPGo's codes"
    return Finding.warn(
        "Error code",
        title,
        details=details,
        section=SECTION,
        data={"code": code, "closest": matches, "standard": standard},
    )


runbook.verb(
    "error",
    "what an error code means and what to do next (HTTP, SQLSTATE, UNAUTHORIZED…, the guide's AUTH_…)",
    usage="<code>",
    parse=parse_code,
    ack="Looking the code up…",
)


@runbook.check("error", component="Error code", section=SECTION)
async def error_code(ctx: CheckContext) -> Finding:
    return lookup(ctx.arg(ErrorArgs).code)
