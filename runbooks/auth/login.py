"""Guide: "Authentication & Authorization › Login Failures" — `login-test`, the guide's "Test
Authentication Flow" with a credential that must fail, so nobody's account is touched."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.targets.api import HttpResult
from runbooks.auth.common import LOGIN, runbook

PROBE_EMAIL = "login-test@erpgo-chatops.invalid"  # RFC 2606: can never be a real account
SLOW_LOGIN_MS = 2000

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


def judged(result: HttpResult, error: ApiError | None, answer: str, took: str) -> tuple[Status, str, list[str]]:
    """How the answer to a wrong password reads: (status, title, what to add to the details)."""
    code = error.code if error else None
    if is_wrong_password_answer(result.status, error):
        if code == "AUTH_001":
            return (
                Status.OK,
                f"answers {answer} for a wrong password in {took}: the auth path and its database work",
                [],
            )
        return (
            Status.OK,
            f"answers {answer} for a wrong password in {took}: the login path works",
            [
                'the real ERPGo answers "invalid credentials" also when the user lookup itself fails '
                "(its database down): `/erpgo health` checks the database"
            ],
        )
    if result.status >= 500:
        return (
            Status.CRIT,
            f"login path broken: {answer} in {took}",
            ["the user lookup needs the database: `/erpgo health`, and the API's logs (`/erpgo logs`)"],
        )
    if 200 <= result.status < 300:
        return Status.CRIT, f"a wrong password was ACCEPTED ({answer}): authentication is not checking credentials", []
    if result.status == 404:
        return Status.WARN, "login endpoint not found (HTTP 404)", []
    if code == "ACCOUNT_LOCKED":
        return Status.WARN, *account_locked(answer, took)
    if result.status == 429 or code in ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT_PENALTY"):
        return Status.WARN, *rate_limited(answer, error, took)
    title = (
        f"unexpected answer {answer} in {took} "
        '(expected 401 UNAUTHORIZED "invalid credentials", or the guide\'s AUTH_001)'
    )
    if result.json is None:
        return Status.WARN, title, ["the body is not JSON: " + result.text[:200]]
    return Status.WARN, title, [f"`/erpgo error {code.lower()}` explains {code}"] if code else []


@runbook.check("login-test", component="Login path", section=LOGIN)
async def login_path(ctx: CheckContext) -> Finding:
    """The guide's "Test Authentication Flow" with a credential that must fail, so nobody's account is touched."""
    api = ctx.targets.api
    result = await api.request(
        "POST", "/api/v1/auth/login", json_body={"email": PROBE_EMAIL, "password": secrets.token_urlsafe(12)}
    )
    error = api_error_of(result.json)
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
    status, title, more = judged(result, error, answer, took)
    details += more
    if status is Status.OK and result.elapsed_ms > SLOW_LOGIN_MS:
        status, title = Status.WARN, f"slow: {answer} after {took} (over {SLOW_LOGIN_MS / 1000:g} s)"
    data = {
        "http_status": result.status,
        "code": error.code if error else None,
        "message": error.message if error else None,
        "correlation_id": error.correlation_id if error else None,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }
    return Finding(status, "Login path", title, details=details, data=data)
