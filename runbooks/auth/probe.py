"""Guide: "Authentication & Authorization › Login Failures" steps 2 and 4 and "JWT Token Issues" step 3 — the
rest of `login-test`: the refresh endpoint must reject an invalid token, and, when ERPGO_PROBE_EMAIL and
ERPGO_PROBE_PASSWORD name a probe account, a real login whose token is then verified as `jwt` verifies one
and refreshed once. The password only travels in the login request: settings register it with the
redactor, and nothing the bot says contains it.

Password reset goes through the application's own flow: `auth.send_password_reset` asks ERPGo's
forgot-password endpoint to mail the account a reset link. The bot never sets, sees or shows a password.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status, worst
from bot.core.redact import register_secret
from bot.core.registry import Failed, Refused
from bot.targets import NotConfigured
from bot.targets.api import HttpResult
from runbooks.auth.common import JWT, LOGIN, runbook
from runbooks.auth.login import answer_text, api_error_of
from runbooks.auth.tokens import token_finding

REFRESH = "/api/v1/auth/refresh"
FORGOT = "/api/v1/auth/forgot-password"
ACCOUNT_SQL = "SELECT is_active FROM users WHERE lower(email) = lower($1)"


def invalid_refresh_token() -> str:
    """A token-shaped string no server ever signed: three random segments."""
    return ".".join(secrets.token_urlsafe(18) for _ in range(3))


def refresh_verdict(result: HttpResult) -> tuple[Status, str, list[str]]:
    error = api_error_of(result.json)
    answer = answer_text(result.status, error)
    message = (error.message if error else "").lower()
    details_text = (error.details if error else "").lower()
    if result.status == 401:
        return Status.OK, f"rejects an invalid refresh token: {answer}", []
    if result.status == 500 and "refresh failed" in message and "token" in details_text:
        return (
            Status.OK,
            f"rejects an invalid refresh token: {answer}",
            [
                "the real ERPGo answers 500 here, not 401: its refresh handler turns only the exact errors "
                '"invalid token" and "token expired" into 401 — a client must take this 500 as "log in again"',
                f"details: {error.details}" if error else "",
            ],
        )
    if 200 <= result.status < 300:
        return Status.CRIT, f"an invalid refresh token was ACCEPTED ({answer}): tokens are not verified", []
    if result.status == 404:
        return Status.WARN, "refresh endpoint not found (HTTP 404)", []
    if result.status >= 500:
        return Status.CRIT, f"refresh path broken: {answer}", ["`/erpgo logs` shows the API's error for it"]
    return Status.WARN, f"unexpected answer {answer} (expected 401, or the real ERPGo's 500)", []


@runbook.check("login-test", component="Refresh path", section=LOGIN)
async def refresh_path(ctx: CheckContext) -> Finding | list[Finding]:
    """POST /api/v1/auth/refresh with a token nobody signed: it must be refused."""
    try:
        api = ctx.targets.api
    except NotConfigured:
        return []  # the login path already says ERPGO_API_URL is not set
    result = await api.request("POST", REFRESH, json_body={"refresh_token": invalid_refresh_token()})
    status, title, details = refresh_verdict(result)
    details = [
        f"POST {REFRESH} with a random token-shaped string → {answer_text(result.status, None)} "
        f"in {result.elapsed_ms:.0f} ms",
        *[line for line in details if line],
    ]
    return Finding(status, "Refresh path", title, details=details, data={"http_status": result.status})


# --- a real login with the probe account -----------------------------------------------------------


def probe_account(ctx: CheckContext) -> tuple[str, str] | None:
    email, password = ctx.settings.erpgo_probe_email, ctx.settings.secret("erpgo_probe_password")
    return (email, password) if email and password else None


def reset_proposal(email: str, why: str) -> Proposal:
    return send_password_reset.propose(
        email=email,
        target=email,
        summary=f"Send {email} a password reset link (ERPGo's own forgot-password flow)",
        why=why,
        preview=f'POST {FORGOT} {{"email": "{email}"}}\n'
        "ERPGo mails the account a reset link; the bot never sets, sees or shows a password\n"
        "re-checked first: the account exists and is active (when the bot reads ERPGo's database)",
    )


async def refreshed(ctx: CheckContext, refresh_token: str) -> tuple[Status, str]:
    result = await ctx.targets.api.request("POST", REFRESH, json_body={"refresh_token": refresh_token})
    if result.status == 200 and isinstance(result.json, dict) and result.json.get("access_token"):
        register_secret(str(result.json["access_token"]))
        register_secret(str(result.json.get("refresh_token") or ""))
        return Status.OK, f"its refresh token was exchanged for a new pair (HTTP 200 in {result.elapsed_ms:.0f} ms)"
    answer = answer_text(result.status, api_error_of(result.json))
    return Status.CRIT, f"its fresh refresh token was refused: {answer} — a signed-in user is logged out early"


async def logged_in(ctx: CheckContext, email: str, result: HttpResult) -> Finding:
    tokens = result.json if isinstance(result.json, dict) else {}
    access, refresh = str(tokens.get("access_token") or ""), str(tokens.get("refresh_token") or "")
    register_secret(access)
    register_secret(refresh)
    if not access:
        return Finding.crit("Probe login", f"{email}: HTTP {result.status} without an access token")
    token = await token_finding(ctx, access)
    refresh_status, refresh_line = await refreshed(ctx, refresh) if refresh else (Status.WARN, "no refresh token")
    title = f"{email} logged in ({result.elapsed_ms:.0f} ms); its access token: {token.title}"
    details = ["the password came from ERPGO_PROBE_PASSWORD and is never shown", refresh_line, *token.details]
    return replace(
        token,
        status=worst([token.status, refresh_status]),
        component="Probe login",
        title=title,
        details=details,
        section=JWT,
    )


@runbook.check("login-test", component="Probe login", section=LOGIN, proposes=("auth.send_password_reset",))
async def probe_login(ctx: CheckContext) -> Finding | list[Finding]:
    account = probe_account(ctx)
    if account is None:
        return Finding.skipped(
            "Probe login", "ERPGO_PROBE_EMAIL and ERPGO_PROBE_PASSWORD not set: no successful login tested"
        )
    email, password = account
    try:
        api = ctx.targets.api
    except NotConfigured:
        return []
    result = await api.request("POST", "/api/v1/auth/login", json_body={"email": email, "password": password})
    if result.status == 200:
        return await logged_in(ctx, email, result)
    answer = answer_text(result.status, api_error_of(result.json))
    if result.status == 401:
        why = f"the probe account {email} cannot log in ({answer}): its password was changed, or it is inactive"
        return Finding.warn(
            "Probe login",
            why,
            details=["`/erpgo user " + email + "` shows the account"],
            proposals=[reset_proposal(email, why)],
        )
    status = Status.CRIT if result.status >= 500 else Status.WARN
    return Finding(status, "Probe login", f"{email} could not log in: {answer}")


# --- the remediation ---------------------------------------------------------------------------


async def account_active(ctx: CheckContext, email: str) -> None:
    """Refused when ERPGo's database says the account is missing or inactive (no mail would go out)."""
    try:
        pg = ctx.targets.pg
    except NotConfigured:
        return  # the API answers the same either way; nothing to re-check against
    async with pg.connect() as conn:
        active = await conn.fetchval(ACCOUNT_SQL, email)
    if active is None:
        raise Refused(f"no ERPGo account {email}: ERPGo would send nothing")
    if not active:
        raise Refused(f"{email} is deactivated: a reset link would not let it log in — `/erpgo user {email}`")


@runbook.remediation("auth.send_password_reset", "Send an account a password reset link through ERPGo", timeout=30)
async def send_password_reset(ctx: CheckContext, email: str) -> str:
    if "@" not in email.strip("@") or len(email) > 254:
        raise Refused(f"not an e-mail address: {email[:60]!r}")
    await account_active(ctx, email)
    result = await ctx.targets.api.request("POST", FORGOT, json_body={"email": email})
    if result.status != 200:
        raise Failed(f"ERPGo refused the reset request: {answer_text(result.status, api_error_of(result.json))}")
    return (
        f"ERPGo accepted the reset request for {email}: it mails the account a reset link "
        "(the bot never sets, sees or shows a password)"
    )
