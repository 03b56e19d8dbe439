"""Guide: "Authentication & Authorization › Login Failures" — one account (`user <email>`: exists?
active? verified? bcrypt hash?) and the whole table (`users`). Password hashes never leave the
database: SQL classifies them."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.registry import UsageError
from bot.core.units import plural
from runbooks.auth.common import (
    BCRYPT,
    EMAIL,
    LOGIN,
    MAILTO,
    MAX_EMAIL,
    MAX_LISTED,
    PERMISSION,
    PERMISSION_SHAPE,
    PERMISSIONS,
    ROLE,
    UserArgs,
    ago,
    listed,
    missing_table,
    not_erpgo,
    runbook,
)
from runbooks.containers.common import inspect_or_none
from runbooks.security.accounts import account_proposals

DEFAULT_BCRYPT_COST = 12  # ERPGo's BCRYPT_COST default (pkg/config)

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


# --- user <email> [role|permission] ------------------------------------------------------------------------


def parse_user(words: list[str]) -> UserArgs:
    if not words:
        raise UsageError("Whose account? e.g. `/erpgo user jane@example.com`")
    if len(words) > 2:
        raise UsageError("An e-mail address and, optionally, the role to propose")
    email = words[0].strip()
    if match := MAILTO.match(email):
        email = match.group(1)
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise UsageError("That is not an e-mail address")
    if len(words) == 2:
        return UserArgs(email, **role_or_permission(words[1]))
    return UserArgs(email)


def role_or_permission(word: str) -> dict[str, str]:
    """`users.read`, `orders:update`, `products:*` look like permissions (resource.action); the check
    still asks the role table, where a role of that name wins."""
    if PERMISSION_SHAPE.search(word):
        if not PERMISSION.match(word):
            raise UsageError("A permission is letters, digits, `_`, `-`, `.`, `:` or `*` (at most 100)")
        return {"permission": word}
    if not ROLE.match(word):
        raise UsageError("A role name is letters, digits, `_`, `-` or `.` (at most 50)")
    return {"role": word}


runbook.verb(
    "user",
    "one account: exists, active, verified, last login, bcrypt hash, roles; with a role, propose giving it; "
    "with a permission (`orders.read`), whether the roles grant it (only you see the answer)",
    usage="<email> [role|permission]",
    parse=parse_user,
    ack="Looking the account up…",
    private=True,
)

USER_ROW = f"""
SELECT id, email, is_active, is_verified, last_login_at, {HASH_SHAPE}
FROM users WHERE email = $1
"""


@dataclass(frozen=True)
class ApiPasswordSettings:
    """How the API container hashes passwords: whether PASSWORD_PEPPER is set (never its value) and BCRYPT_COST."""

    container: str | None
    pepper: str | None = None  # "set", "empty", "not set"; None when unknown
    cost: int = DEFAULT_BCRYPT_COST
    unavailable: str | None = None


async def api_password_settings(ctx: CheckContext) -> ApiPasswordSettings:
    try:
        name = await ctx.targets.container_of("api")
        info = await inspect_or_none(ctx.targets.docker, name)
        cost = await ctx.targets.docker.read_env_value(name, "BCRYPT_COST") if info else None
    except Exception as exc:  # not configured, the engine down: the account is still checked
        return ApiPasswordSettings(None, unavailable=describe_error(exc))
    if info is None:
        return ApiPasswordSettings(name, unavailable=f"no container {name}")
    pepper = info.env.get("PASSWORD_PEPPER", "not set")
    return ApiPasswordSettings(name, pepper, int(cost) if cost and cost.isdigit() else DEFAULT_BCRYPT_COST)


def pepper_lines(api: ApiPasswordSettings) -> list[str]:
    """What the API's own hashing means for a hash: bcrypt(password + PASSWORD_PEPPER) at BCRYPT_COST."""
    if api.pepper is None:
        return [f"ERPGo hashes bcrypt(password + PASSWORD_PEPPER); its settings not read: {api.unavailable}"]
    if api.pepper == "set":
        return [
            f"{api.container} hashes bcrypt(password + PASSWORD_PEPPER) at cost {api.cost}: a hash made without "
            "its pepper (htpasswd, a bcrypt library) never matches"
        ]
    return [f"{api.container} has PASSWORD_PEPPER {api.pepper}: the real API refuses to start without one"]


RESET_ADVICE = (
    "ERPGo has no tool to hash a password by hand, and a hash needs the API's PASSWORD_PEPPER: let the user set a "
    "new one through ERPGo's own flow (POST /api/v1/auth/forgot-password e-mails the reset link) — never an "
    "UPDATE with a hand-made hash (guide: Reset User Password)"
)


def password_finding(row: asyncpg.Record, api: ApiPasswordSettings) -> Finding:
    if not row["bcrypt"]:
        return Finding.warn(
            "Password hash",
            f"not bcrypt ({hash_kind(row)}): every login fails with 401 UNAUTHORIZED (the guide: AUTH_001)",
            details=["ERPGo compares passwords with bcrypt; this hash can never match", RESET_ADVICE],
            data={"bcrypt": False, "kind": hash_kind(row)},
        )
    cost = int(row["bcrypt_cost"])
    details = pepper_lines(api)
    if api.pepper is not None and cost != api.cost:
        details.append(f"hashed at cost {cost}, the API hashes new passwords at {api.cost} (BCRYPT_COST): both verify")
    status = Status.WARN if api.pepper in ("empty", "not set") else Status.OK
    title = f"bcrypt (${row['hash_scheme']}$, cost {cost})"
    return Finding(status, "Password hash", title, details=details, data={"bcrypt": True, "pepper": api.pepper})


async def unknown_user(conn: asyncpg.Connection, email: str) -> Finding:
    similar = await conn.fetch(
        "SELECT email FROM users WHERE lower(email) = lower($1) OR lower(email) LIKE '%' || lower($2) || '%'"
        " ORDER BY email LIMIT 3",
        email,
        email.split("@")[0][:40],
    )
    details = ['every login with this address answers 401 UNAUTHORIZED "invalid credentials" (the guide: AUTH_001)']
    if similar:
        details.append("similar addresses: " + ", ".join(r["email"] for r in similar) + " (e-mails compare exactly)")
    return Finding.warn("User", f"no user {email}", details=details, data={"exists": False})


def account_finding(row: asyncpg.Record) -> Finding:
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
    if not row["is_active"]:
        problems.append("if that was a mistake, reactivate the account in ERPGo's user admin")
    elif not problems and row["bcrypt"]:
        problems.append(
            "the account looks fine: if logins still fail, `/erpgo login-test` tests the login path and "
            "`/erpgo jwt <token>` decodes the token the client got"
        )
    return Finding(
        Status.OK if row["is_active"] and row["is_verified"] else Status.WARN,
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


@runbook.check("user", component="User", section=LOGIN, proposes=("auth.activate_user", "auth.deactivate_user"))
async def user_account(ctx: CheckContext) -> list[Finding]:
    """The guide's "Check if user exists" and "Check password hash format", for one e-mail."""
    email = ctx.arg(UserArgs).email
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users"):
            return [not_erpgo("User", missing)]
        row = await conn.fetchrow(USER_ROW, email)
        if row is None:
            return [await unknown_user(conn, email)]
    account = account_finding(row)
    account.proposals = await account_proposals(ctx, row["id"], row["email"], row["is_active"])
    return [account, password_finding(row, await api_password_settings(ctx))]


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
            "their logins always fail with 401 UNAUTHORIZED (the guide: AUTH_001)",
            RESET_ADVICE,
        ],
        data={"emails": emails[:MAX_LISTED], "count": len(rows)},
    )
