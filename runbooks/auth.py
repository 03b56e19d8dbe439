"""Guide: "Authentication & Authorization" — login failures, JWT token issues, permission issues.

`user <email> [role]` answers the guide's questions about one account (exists? active? verified?
bcrypt hash? roles?), `users` asks them across the table, `jwt <token>` decodes a token without
verifying it, `login-test` proves the login path answers. Password hashes never leave the
database: SQL classifies them. Tokens are never echoed: only their decoded claims are shown.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import jwt

from bot.core.engine import CheckContext
from bot.core.findings import Finding, Proposal, Status, worst
from bot.core.registry import Refused, Runbook, UsageError
from bot.core.units import human_duration
from runbooks.security.accounts import account_proposals

runbook = Runbook("auth")

LOGIN = "Authentication & Authorization › Login Failures"
JWT = "Authentication & Authorization › JWT Token Issues"
PERMISSIONS = "Authentication & Authorization › Permission Issues"
MAX_LISTED = 10
MAX_EMAIL = 254
MAX_TOKEN = 8192
EMAIL = re.compile(r"^[^@\s<>|'\"`]+@[^@\s<>|'\"`]+$")
ROLE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")  # how Slack sends an e-mail address it linked
BCRYPT = r"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$"
PROBE_EMAIL = "login-test@erpgo-chatops.invalid"  # RFC 2606: can never be a real account
SLOW_LOGIN_MS = 2000
CLOCK_SKEW_S = 60


def not_erpgo(component: str, missing: str) -> Finding:
    return Finding.skipped(component, f"table {missing} not found — not an ERPGo database?")


async def missing_table(conn: asyncpg.Connection, *tables: str) -> str | None:
    for table in tables:
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", table):
            return table
    return None


def listed(names: list[str], total: int) -> str:
    return ", ".join(names[:MAX_LISTED]) + (f" and {total - MAX_LISTED} more" if total > MAX_LISTED else "")


def plural(count: int, word: str) -> str:
    return f"{count} {word if count == 1 else word + 's'}"


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return human_duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


# How a password hash looks, decided by PostgreSQL so that the hash itself never reaches the bot.
HASH_SHAPE = f"""
       password_hash ~ '{BCRYPT}' AS bcrypt,
       length(password_hash) AS hash_length,
       CASE WHEN password_hash LIKE '$%' THEN split_part(password_hash, '$', 2) END AS hash_scheme,
       CASE WHEN password_hash ~ '{BCRYPT}' THEN split_part(password_hash, '$', 3) END AS bcrypt_cost,
       password_hash ~ '^[0-9a-fA-F]+$' AS hash_hex"""


def hash_kind(row) -> str:
    """What a non-bcrypt hash looks like, from its shape only."""
    length, scheme = row["hash_length"] or 0, row["hash_scheme"]
    if length == 0:
        return "empty"
    if scheme and scheme.startswith("2"):
        return f"bcrypt prefix ${scheme}$ but {length} characters instead of 60 (truncated?)"
    if scheme:
        return f"${scheme}$ scheme, {length} characters"
    if row["hash_hex"]:
        known = {32: "an unsalted MD5 digest", 40: "an unsalted SHA-1 digest", 64: "an unsalted SHA-256 digest"}
        return f"{length} hex characters" + (f" — looks like {known[length]}" if length in known else "")
    return f"unrecognised format, {length} characters"


# --- user <email> [role] ------------------------------------------------------------------------


def parse_user(words: list[str]) -> dict[str, str]:
    if not words:
        raise UsageError("Whose account? e.g. `/erpgo user jane@example.com`")
    if len(words) > 2:
        raise UsageError("An e-mail address and, optionally, the role to propose")
    email = words[0].strip()
    if match := MAILTO.match(email):
        email = match.group(1)
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise UsageError("That is not an e-mail address")
    params = {"email": email}
    if len(words) == 2:
        if not ROLE.match(words[1]):
            raise UsageError("A role name is letters, digits, `_`, `-` or `.` (at most 50)")
        params["role"] = words[1]
    return params


runbook.verb(
    "user",
    "one account: exists, active, verified, last login, bcrypt hash, roles (add a role to propose it)",
    usage="<email> [role]",
    parse=parse_user,
    ack="Looking the account up…",
)

USER_ROW = f"""
SELECT id, email, is_active, is_verified, last_login_at, {HASH_SHAPE}
FROM users WHERE email = $1
"""


@runbook.check("user", component="User", section=LOGIN)
async def user_account(ctx: CheckContext) -> list[Finding]:
    """The guide's "Check if user exists" and "Check password hash format", for one e-mail."""
    email = ctx.params["email"]
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users"):
            return [not_erpgo("User", missing)]
        row = await conn.fetchrow(USER_ROW, email)
        if row is None:
            similar = await conn.fetch(
                "SELECT email FROM users WHERE lower(email) = lower($1) OR lower(email) LIKE '%' || lower($2) || '%'"
                " ORDER BY email LIMIT 3",
                email,
                email.split("@")[0][:40],
            )
    if row is None:
        details = ['every login with this address answers 401 UNAUTHORIZED "invalid credentials" (the guide: AUTH_001)']
        if similar:
            details.append(
                "similar addresses: " + ", ".join(r["email"] for r in similar) + " (e-mails compare exactly)"
            )
        return [Finding.warn("User", f"no user {email}", details=details, data={"exists": False})]

    problems = []
    if not row["is_active"]:
        problems.append("inactive (is_active = false): every login is refused")
    if not row["is_verified"]:
        problems.append("not verified (is_verified = false)")
    state = ", ".join(
        [
            "active" if row["is_active"] else "INACTIVE",
            "verified" if row["is_verified"] else "NOT verified",
            f"last login {ago(row['last_login_at'])}",
        ]
    )
    account = Finding(
        Status.WARN if problems else Status.OK,
        "User",
        f"{row['email']}: {state}",
        details=problems,
        data={
            "exists": True,
            "is_active": row["is_active"],
            "is_verified": row["is_verified"],
            "last_login_at": row["last_login_at"].isoformat() if row["last_login_at"] else None,
        },
    )
    if not row["is_active"]:
        account.details.append("if that was a mistake, reactivate the account in ERPGo's user admin")
    account.proposals = await account_proposals(ctx, row["id"], row["email"], row["is_active"])

    if row["bcrypt"]:
        password = Finding.ok(
            "Password hash", f"bcrypt (${row['hash_scheme']}$, cost {int(row['bcrypt_cost'])})", data={"bcrypt": True}
        )
    else:
        password = Finding.warn(
            "Password hash",
            f"not bcrypt ({hash_kind(row)}): every login fails with 401 UNAUTHORIZED (the guide: AUTH_001)",
            details=[
                "ERPGo compares passwords with bcrypt; this hash can never match",
                "to fix it, make a new bcrypt hash with ERPGo's `hash-password` tool, then "
                "`UPDATE users SET password_hash = '$2a$12$…', updated_at = NOW() WHERE email = …` "
                "(guide: Reset User Password)",
            ],
            data={"bcrypt": False, "kind": hash_kind(row)},
        )
    hints = []
    if not problems and row["bcrypt"]:
        hints = [
            "the account looks fine: if logins still fail, `/erpgo login-test` tests the login path and "
            "`/erpgo jwt <token>` decodes the token the client got"
        ]
    account.details += hints
    return [account, password]


USER_ROLES = """
SELECT u.id AS user_id, r.name, to_jsonb(r.permissions)::text AS permissions, ur.assigned_at, ab.email AS assigned_by
FROM users u
LEFT JOIN user_roles ur ON ur.user_id = u.id
LEFT JOIN roles r ON r.id = ur.role_id
LEFT JOIN users ab ON ab.id = ur.assigned_by
WHERE u.email = $1
ORDER BY r.name
"""


def permissions_text(raw: str | None) -> str:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return (raw or "")[:200]
    return ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)[:200]


@runbook.check("user", component="Roles", section=PERMISSIONS)
async def user_roles(ctx: CheckContext) -> Finding:
    """The guide's "Check User Roles" as a LEFT JOIN: a user without roles is a finding, not an empty result."""
    email, wanted = ctx.params["email"], ctx.params.get("role")
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users", "roles", "user_roles"):
            return not_erpgo("Roles", missing)
        rows = await conn.fetch(USER_ROLES, email)
        all_roles = [r["name"] for r in await conn.fetch("SELECT name FROM roles ORDER BY name")]
    if not rows:
        return Finding.skipped("Roles", f"no user {email}")
    held = [r for r in rows if r["name"] is not None]
    names = [r["name"] for r in held]
    details = [
        f"{r['name']}: {permissions_text(r['permissions'])} (assigned {ago(r['assigned_at'])}"
        + (f" by {r['assigned_by']})" if r["assigned_by"] else ")")
        for r in held
    ]
    proposals = []
    status = Status.OK if held else Status.WARN
    title = ", ".join(names) if held else "no roles: every request needing a permission answers 403 Forbidden"
    if wanted is None:
        if not held:
            details.append(
                f"to propose one: `/erpgo user {email} <role>` — roles: {', '.join(all_roles) or 'none defined'}"
            )
    elif wanted in names:
        details.append(f"already has role {wanted}")
    elif wanted not in all_roles:
        status = Status.WARN
        title += f" — no role named {wanted}"
        details.append(f"roles: {', '.join(all_roles) or 'none defined'}")
    else:
        proposals.append(
            Proposal(
                action="auth.assign_role",
                args={"email": email, "role": wanted},
                summary=f"Give {email} the role {wanted}",
                reason="the guide's Assign Missing Roles (INSERT INTO user_roles), for this user and role only",
                preview=ASSIGN_ROLE + f"\n-- $1 = '{email}', $2 = '{wanted}'",
            )
        )
    return Finding(status, "Roles", title, details=details, proposals=proposals, data={"roles": names})


# --- users: the whole table ---------------------------------------------------------------------

runbook.verb(
    "users",
    "account problems across the table: inactive, without roles, non-bcrypt password hashes",
    ack="Checking the accounts…",
)


@runbook.check("users", component="Accounts", section=LOGIN)
async def account_states(ctx: CheckContext) -> Finding:
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users"):
            return not_erpgo("Accounts", missing)
        total = await conn.fetchval("SELECT count(*) FROM users")
        inactive = [r["email"] for r in await conn.fetch("SELECT email FROM users WHERE NOT is_active ORDER BY email")]
        unverified = [
            r["email"]
            for r in await conn.fetch("SELECT email FROM users WHERE is_active AND NOT is_verified ORDER BY email")
        ]
    parts = [
        f"{len(inactive)} inactive" + (f" ({listed(inactive, len(inactive))})" if inactive else ""),
        f"{len(unverified)} unverified" + (f" ({listed(unverified, len(unverified))})" if unverified else ""),
    ]
    details = (
        ["inactive accounts cannot log in, by design: nothing to fix unless one was deactivated by mistake"]
        if inactive
        else []
    )
    return Finding.ok(
        "Accounts",
        f"{plural(total, 'user')}: " + ", ".join(parts),
        details=details,
        data={"total": total, "inactive": inactive, "unverified": unverified},
    )


@runbook.check("users", component="Users without roles", section=PERMISSIONS)
async def users_without_roles(ctx: CheckContext) -> Finding:
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users", "user_roles"):
            return not_erpgo("Users without roles", missing)
        emails = [
            r["email"]
            for r in await conn.fetch(
                "SELECT u.email FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id"
                " WHERE u.is_active AND ur.user_id IS NULL ORDER BY u.email"
            )
        ]
    if not emails:
        return Finding.ok("Users without roles", "every active user has a role", data={"emails": []})
    return Finding.warn(
        "Users without roles",
        f"{plural(len(emails), 'active user')} without any role: {listed(emails, len(emails))}",
        details=[
            "they can log in but every request needing a permission answers 403",
            "`/erpgo user <email> <role>` proposes assigning one",
        ],
        data={"emails": emails[:MAX_LISTED], "count": len(emails)},
    )


@runbook.check("users", component="Password hashes", section=LOGIN)
async def non_bcrypt_hashes(ctx: CheckContext) -> Finding:
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users"):
            return not_erpgo("Password hashes", missing)
        rows = await conn.fetch(
            f"SELECT email, {HASH_SHAPE} FROM users WHERE NOT (password_hash ~ '{BCRYPT}') ORDER BY email"
        )
    if not rows:
        return Finding.ok("Password hashes", "every password hash is bcrypt", data={"emails": []})
    emails = [r["email"] for r in rows]
    return Finding.warn(
        "Password hashes",
        f"{plural(len(rows), 'user')} whose password hash is not bcrypt: {listed(emails, len(emails))}",
        details=[f"{r['email']}: {hash_kind(r)}" for r in rows[:MAX_LISTED]]
        + [
            "their logins always fail with 401 UNAUTHORIZED (the guide: AUTH_001); reset their passwords (guide: Reset User Password)"
        ],
        data={"emails": emails[:MAX_LISTED], "count": len(rows)},
    )


# --- auth.assign_role ---------------------------------------------------------------------------

# The guide's "Add role to user", re-checking that it is not already assigned.
ASSIGN_ROLE = """INSERT INTO user_roles (user_id, role_id, assigned_by)
SELECT u.id, r.id, u.id
FROM users u, roles r
WHERE u.email = $1 AND r.name = $2
  AND NOT EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = u.id AND ur.role_id = r.id)"""


@runbook.remediation("auth.assign_role", "Give a user a role")
async def assign_role(ctx: CheckContext, email: str, role: str) -> str:
    async with ctx.targets.pg.connect() as conn:
        async with conn.transaction():
            user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1 FOR UPDATE", email)
            if user_id is None:
                raise Refused(f"no user {email}")
            role_id = await conn.fetchval("SELECT id FROM roles WHERE name = $1", role)
            if role_id is None:
                raise Refused(f"no role named {role}")
            if await conn.fetchval("SELECT 1 FROM user_roles WHERE user_id = $1 AND role_id = $2", user_id, role_id):
                raise Refused(f"{email} already has the role {role}")
            status = await conn.execute(ASSIGN_ROLE, email, role)
    if status != "INSERT 0 1":
        raise Refused(f"nothing inserted ({status})")
    return f"Gave {email} the role {role}"


# --- jwt <token> --------------------------------------------------------------------------------


def parse_token(words: list[str]) -> dict[str, str]:
    if len(words) == 2 and words[0].lower() == "bearer":
        words = words[1:]
    if not words:
        raise UsageError("Paste the token after `jwt` (it is decoded here, never posted back)")
    if len(words) > 1:
        raise UsageError("One token, without spaces")
    if len(words[0]) > MAX_TOKEN:
        raise UsageError(f"That is longer than any JWT this bot reads ({MAX_TOKEN} characters)")
    return {"token": words[0]}


runbook.verb(
    "jwt",
    "decode a JWT without verifying it: algorithm, claims, expiry (the token is never posted back)",
    usage="<token>",
    parse=parse_token,
    ack="Decoding the token…",
)

SHOWN_CLAIMS = ("sub", "email", "type", "roles", "iss", "aud", "jti")
TIME_CLAIMS = ("iat", "nbf", "exp")


def claim_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 100 else text[:99] + "…"


def when(value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{claim_text(value)} (not a number)"
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{value} (out of range)"
    delta = value - time.time()
    relative = f"in {human_duration(delta)}" if delta > 0 else f"{human_duration(-delta)} ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relative})"


@runbook.check("jwt", component="JWT", section=JWT)
async def jwt_token(ctx: CheckContext) -> Finding:
    """The guide's "Verify Token Format" and "Check Token Expiration", without the secret."""
    token = ctx.params["token"]
    parts = token.split(".")
    if len(parts) != 3:
        return Finding.warn(
            "JWT",
            f"not a JWT: {plural(len(parts), 'part')}, a JWT has 3 (header.payload.signature)",
            details=["ERPGo answers 401 AUTH_003 (invalid token); the client may have cut or wrapped it"],
            data={"parts": len(parts)},
        )
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        return Finding.warn(
            "JWT",
            "3 parts, but they do not decode: " + str(exc)[:120],
            details=["ERPGo answers 401 AUTH_003 (invalid token): the token is corrupted"],
            data={"parts": 3, "decodes": False},
        )
    now = time.time()
    issues: list[tuple[Status, str]] = []
    alg = str(header.get("alg"))
    if alg.lower() == "none" or not parts[2]:
        issues.append(
            (
                Status.WARN,
                f"unsigned (alg {alg}, {'empty' if not parts[2] else 'present'} signature): ERPGo must reject it",
            )
        )
    exp = claims.get("exp")
    expiry = "no exp claim"
    if exp is None:
        issues.append((Status.WARN, "no exp claim: ERPGo answers AUTH_003 (invalid token)"))
    elif not isinstance(exp, (int, float)) or isinstance(exp, bool):
        issues.append((Status.WARN, "exp is not a number: ERPGo answers AUTH_003 (invalid token)"))
        expiry = "exp is not a number"
    elif exp <= now:
        expiry = f"expired {human_duration(now - exp)} ago (AUTH_002)"
        issues.append((Status.WARN, expiry + ": refresh it (POST /api/v1/auth/refresh) or log in again"))
    else:
        expiry = f"valid for another {human_duration(exp - now)}"
    iat, nbf = claims.get("iat"), claims.get("nbf")
    if isinstance(iat, (int, float)) and not isinstance(iat, bool) and iat > now + CLOCK_SKEW_S:
        issues.append((Status.WARN, f"issued {human_duration(iat - now)} in the future: the API's clock is ahead"))
    if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and nbf > now + CLOCK_SKEW_S:
        issues.append((Status.WARN, f"not valid before {when(nbf)}"))

    details = [
        f"header: alg {alg}, typ {header.get('typ', '—')}"
        + (f", kid {claim_text(header['kid'])}" if "kid" in header else ""),
        f"signature: {len(parts[2])} characters — not shown, not verified (checking it needs JWT_SECRET)",
    ]
    details += [f"{name}: {claim_text(claims[name])}" for name in SHOWN_CLAIMS if name in claims]
    details += [f"{name}: {when(claims[name])}" for name in TIME_CLAIMS if name in claims]
    if all(isinstance(claims.get(k), (int, float)) for k in ("exp", "iat")):
        details.append(
            f"lifetime (exp − iat): {human_duration(claims['exp'] - claims['iat'])} — compare with JWT_EXPIRY"
        )
    others = sorted(set(claims) - set(SHOWN_CLAIMS) - set(TIME_CLAIMS))
    if others:
        details.append("other claims (values not shown): " + ", ".join(claim_text(k) for k in others[:20]))
    details += [f"⚠ {text}" for _, text in issues]

    who = claims.get("email") or claims.get("sub")
    kind = f"{claims['type']} token" if isinstance(claims.get("type"), str) else "token"
    title = (
        f"{'unsigned' if alg.lower() == 'none' else alg} {kind}"
        + (f" for {claim_text(who)}" if who else "")
        + f": {expiry}"
    )
    if issues and not expiry.startswith("expired"):
        title += " — " + issues[0][1].split(":")[0]
    status = worst(s for s, _ in issues)
    return Finding(
        status,
        "JWT",
        title,
        details=details,
        data={
            "alg": alg,
            "typ": header.get("typ"),
            "expired": isinstance(exp, (int, float)) and exp <= now,
            "claims": sorted(claims),
            "issues": [text for _, text in issues],
        },
    )


# --- login-test ---------------------------------------------------------------------------------

runbook.verb(
    "login-test",
    "post a wrong password to /api/v1/auth/login: expects 401 UNAUTHORIZED "
    '"invalid credentials" (the guide\'s AUTH_001 too); explains 429 rate limits and locked accounts',
    ack="Testing the login path…",
)

WRONG_PASSWORD_CODES = {"UNAUTHORIZED", "INVALID_CREDENTIALS", "AUTH_001"}  # the real API, its docs, the guide
# The real login handler answers 429 with a bare {"error": "<message>"} and no code: its message says which.
CODE_BY_MESSAGE = (
    ("account locked", "ACCOUNT_LOCKED"),
    ("too many login attempts", "RATE_LIMIT_EXCEEDED"),
    ("rate limit", "RATE_LIMIT_EXCEEDED"),
)


@dataclass(frozen=True)
class ApiError:
    """The error an ERPGo answer carries, in any of its shapes."""

    code: str | None  # as sent, or inferred from the message (see `inferred`)
    message: str
    details: str
    correlation_id: str | None
    retry_after: str | None
    inferred: bool = False


def short(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def api_error_of(body: object) -> ApiError | None:
    """{"error": {"code", "message", "details", "correlation_id", …}} (pkg/errors), {"error": "…", "code": …,
    "details": "…"} (the login handler, the rate limiter) or {"code": …} (anything else)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    inner = error if isinstance(error, dict) else body
    code = inner.get("code")
    message = inner.get("message") if isinstance(error, dict) else error
    retry = body.get("retry_after_seconds", inner.get("retry_after"))
    found = ApiError(
        code if isinstance(code, str) and code else None,
        message if isinstance(message, str) else "",
        short(inner["details"]) if inner.get("details") not in (None, "", {}) else "",
        short(inner["correlation_id"], 80) if inner.get("correlation_id") else None,
        short(retry, 40) if retry not in (None, "") else None,
    )
    if found.code is None and found.message:
        lowered = found.message.lower()
        inferred = next((c for words, c in CODE_BY_MESSAGE if words in lowered), None)
        if inferred:
            return ApiError(inferred, found.message, found.details, found.correlation_id, found.retry_after, True)
    return found if found.code or found.message else None


def answer_text(status: int, error: ApiError | None) -> str:
    """`HTTP 401 UNAUTHORIZED "invalid credentials"`, `HTTP 429 "Account locked"`."""
    text = f"HTTP {status}"
    if error and error.code and not error.inferred:
        text += f" {error.code}"
    if error and error.message and error.code != "AUTH_001":
        text += f' "{short(error.message, 60)}"'
    return text


def is_wrong_password_answer(status: int, error: ApiError | None) -> bool:
    if status != 401 or error is None or error.code not in WRONG_PASSWORD_CODES:
        return False
    # UNAUTHORIZED also means "no token": only "invalid credentials" is the answer to a wrong password
    return error.code != "UNAUTHORIZED" or "credential" in error.message.lower()


def rate_limited(answer: str, error: ApiError | None, took: str) -> tuple[str, list[str]]:
    title = (
        f"rate limited ({answer} in {took}): the login limiter refused the bot's address before any password "
        "was checked"
    )
    details = [
        (
            "RATE_LIMIT_EXCEEDED: ERPGo allows a few login attempts per address (its docs: 5 per 15 minutes "
            "per IP); the bot's own probes count too"
        ),
        "the login handler also answers 429 when its limiter cannot reach Redis: `/erpgo health` shows Redis",
        (
            "next: `/erpgo security` — who else is being limited and from where; `/erpgo logs` — its "
            '"Rate limit exceeded for login attempt" lines per ip'
        ),
    ]
    if error and error.retry_after:
        details.insert(1, f"retry after: {error.retry_after} s")
    return title, details


def account_locked(answer: str, took: str) -> tuple[str, list[str]]:
    title = (
        f"the probe account is locked ({answer} in {took}): too many failed logins for {PROBE_EMAIL}, "
        "the password was not checked"
    )
    details = [
        (
            f"ACCOUNT_LOCKED: ERPGo locks an account after MAX_LOGIN_ATTEMPTS failed logins for LOCKOUT_DURATION "
            f"(15 minutes by default); every login-test is one failed login for {PROBE_EMAIL}"
        ),
        "the login path answered, so the API runs; run login-test again once the lockout ends",
        (
            "next: `/erpgo security` — whether real accounts are being locked too (audit_logs ACCOUNT_LOCKOUT, "
            'LOGIN_FAILED); `/erpgo logs` — "Login attempt for locked account" lines'
        ),
    ]
    return title, details


@runbook.check("login-test", component="Login path", section=LOGIN)
async def login_path(ctx: CheckContext) -> Finding:
    """The guide's "Test Authentication Flow" with a credential that must fail, so nobody's account is touched."""
    api = ctx.targets.api
    result = await api.request(
        "POST", "/api/v1/auth/login", json_body={"email": PROBE_EMAIL, "password": secrets.token_urlsafe(12)}
    )
    error = api_error_of(result.json)
    code = error.code if error else None
    answer = answer_text(result.status, error)
    took = f"{result.elapsed_ms:.0f} ms"
    details = [
        f"POST /api/v1/auth/login as {PROBE_EMAIL} with a random password → {answer} in {took}",
        f"ERPGo may log this as one failed login for {PROBE_EMAIL}: it is this probe",
    ]
    if error and error.correlation_id:
        details.append(f"correlation_id: {error.correlation_id} (find it in the API's logs)")
    if error and error.details:
        details.append(f"details: {error.details}")
    data = {
        "http_status": result.status,
        "code": code,
        "message": error.message if error else None,
        "correlation_id": error.correlation_id if error else None,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }
    if is_wrong_password_answer(result.status, error):
        status, title = Status.OK, f"answers {answer} for a wrong password in {took}: the login path works"
        if code == "AUTH_001":
            title = f"answers {answer} for a wrong password in {took}: the auth path and its database work"
        else:
            details.append(
                'the real ERPGo answers "invalid credentials" also when the user lookup itself fails '
                "(its database down): `/erpgo health` checks the database"
            )
    elif result.status >= 500:
        status, title = Status.CRIT, f"login path broken: {answer} in {took}"
        details.append("the user lookup needs the database: `/erpgo health`, and the API's logs (`/erpgo logs`)")
    elif 200 <= result.status < 300:
        status, title = (
            Status.CRIT,
            f"a wrong password was ACCEPTED ({answer}): authentication is not checking credentials",
        )
    elif result.status == 404:
        status, title = Status.WARN, "login endpoint not found (HTTP 404)"
    elif code == "ACCOUNT_LOCKED":
        status, (title, more) = Status.WARN, account_locked(answer, took)
        details += more
    elif result.status == 429 or code in ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT_PENALTY"):
        status, (title, more) = Status.WARN, rate_limited(answer, error, took)
        details += more
    else:
        status, title = (
            Status.WARN,
            (
                f"unexpected answer {answer} in {took} "
                '(expected 401 UNAUTHORIZED "invalid credentials", or the guide\'s AUTH_001)'
            ),
        )
        if result.json is None:
            details.append("the body is not JSON: " + result.text[:200])
        elif code:
            details.append(f"`/erpgo error {code.lower()}` explains {code}")
    if status is Status.OK and result.elapsed_ms > SLOW_LOGIN_MS:
        status, title = Status.WARN, f"slow: {answer} after {took} (over {SLOW_LOGIN_MS / 1000:g} s)"
    return Finding(status, "Login path", title, details=details, data=data)
