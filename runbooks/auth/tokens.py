"""Guide: "Authentication & Authorization › JWT Token Issues" — `jwt <token>`: the guide's "Verify
Token Format" and "Check Token Expiration", and what its `check-token` debug command would say.

The signature is verified when the API container's environment can be read through the Docker engine:
its JWT_SECRET is used here, in memory, and nowhere else — never shown, logged or put in a message.
ERPGo (pkg/auth) signs with HS256; access tokens have `aud` ["erpgo-api"], refresh tokens
["erpgo-refresh"], both `iss` erpgo-api; an access token lives JWT_EXPIRY. The token is never echoed:
only its decoded claims are shown, to the asker alone (the verb is private)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status, worst
from bot.core.redact import register_secret, shorten
from bot.core.registry import Args, UsageError
from bot.core.units import human_duration, parse_duration, plural
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound
from runbooks.auth.common import JWT, MAX_TOKEN, runbook

if TYPE_CHECKING:
    from jwt.types import Options

CLOCK_SKEW_S = 60

# --- jwt <token> --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenArgs(Args):
    token: str = field(default="", repr=False)  # never in a log line


def parse_token(words: list[str]) -> TokenArgs:
    if len(words) == 2 and words[0].lower() == "bearer":
        words = words[1:]
    if not words:
        raise UsageError("Paste the token after `jwt` (it is decoded here, never posted back)")
    if len(words) > 1:
        raise UsageError("One token, without spaces")
    if len(words[0]) > MAX_TOKEN:
        raise UsageError(f"That is longer than any JWT this bot reads ({MAX_TOKEN} characters)")
    return TokenArgs(words[0])


runbook.verb(
    "jwt",
    "decode a JWT and verify its signature with the API's JWT_SECRET: access or refresh, issuer, expiry "
    "against JWT_EXPIRY (only you see the answer; the token is never posted back)",
    usage="<token>",
    parse=parse_token,
    ack="Decoding the token…",
    private=True,
)

SHOWN_CLAIMS = ("sub", "user_id", "email", "username", "type", "roles", "iss", "aud", "jti")
ISSUER = "erpgo-api"
ACCESS_AUDIENCE, REFRESH_AUDIENCE = "erpgo-api", "erpgo-refresh"
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")  # ERPGo's key function takes any HMAC method
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2 for HS256
LIFETIME_TOLERANCE_S = 60
REDACTED_FROM_LENGTH = 12  # a secret this long is also masked wherever it might appear; a shorter one
# would mask ordinary words
TIME_CLAIMS = ("iat", "nbf", "exp")


def claim_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return shorten(text, 100)


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


Issues = list[tuple[Status, str]]


def is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- what the API container says: JWT_SECRET and JWT_EXPIRY -------------------------------------


@dataclass(frozen=True)
class ApiJwtSettings:
    """JWT_SECRET and JWT_EXPIRY of the API container; the secret stays in memory (not in repr)."""

    container: str | None
    secret: str | None = field(default=None, repr=False)
    expiry: str | None = None
    unavailable: str | None = None  # why they could not be read


async def api_jwt_settings(ctx: CheckContext) -> ApiJwtSettings:
    try:
        name = await ctx.targets.container_of("api")
    except NotConfigured as exc:
        return ApiJwtSettings(None, unavailable=str(exc))
    except Exception as exc:  # the engine is down or slow: the token is still decoded
        return ApiJwtSettings(None, unavailable=describe_error(exc))
    docker = ctx.targets.docker
    try:
        secret, expiry = await asyncio.gather(
            docker.read_env_value(name, "JWT_SECRET"), docker.read_env_value(name, "JWT_EXPIRY")
        )
    except ContainerNotFound:
        return ApiJwtSettings(name, unavailable=f"no container {name}")
    except NotConfigured as exc:
        return ApiJwtSettings(name, unavailable=str(exc))
    except Exception as exc:
        return ApiJwtSettings(name, unavailable=describe_error(exc))
    if secret and len(secret) >= REDACTED_FROM_LENGTH:
        register_secret(secret)
    if not secret:
        return ApiJwtSettings(name, None, expiry, f"{name} has no JWT_SECRET in its environment")
    return ApiJwtSettings(name, secret, expiry)


# the claims are judged below, each with its own explanation; here only the signature
SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def verify_signature(token: str, alg: str, api: ApiJwtSettings) -> tuple[str, Issues, list[str]]:
    """("verified" | "mismatch" | "not HMAC" | "not verified" | "unsigned", issues, detail lines)."""
    import jwt

    if alg.lower() == "none":
        return "unsigned", [], []
    if api.secret is None:
        return "not verified", [], [f"signature: not verified — {api.unavailable}"]
    source = f"{api.container}'s JWT_SECRET"
    if alg not in HMAC_ALGORITHMS:
        issue = f"signed with {alg}: ERPGo accepts HMAC-signed tokens (HS256) only and answers 401 UNAUTHORIZED"
        return "not HMAC", [(Status.WARN, issue)], [f"signature: not checked against {source} ({alg} is not HMAC)"]
    try:
        with warnings.catch_warnings():
            # PyJWT >= 2.11 warns of a short HMAC key; the report says so below. Filtering by category would
            # need its InsecureKeyLengthWarning, which older PyJWT lacks.
            warnings.simplefilter("ignore")
            jwt.decode(token, api.secret, algorithms=[alg], options=SIGNATURE_ONLY)
    except jwt.InvalidSignatureError:
        issue = (
            f"signature does NOT match {source}: ERPGo answers 401 UNAUTHORIZED (invalid token) — a token of "
            "another environment, one issued before JWT_SECRET changed (everyone must log in again), or altered"
        )
        return "mismatch", [(Status.WARN, issue)], [f"signature: does not match {source}"]
    except jwt.PyJWTError as exc:
        return "not verified", [], [f"signature: could not be checked ({type(exc).__name__})"]
    details = [f"signature: verified with {source} ({alg})"]
    if len(api.secret.encode()) < MIN_SECRET_BYTES:
        details.append(
            f"⚠ JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes: tokens signed with it can be forged by "
            "guessing it; set a long random one (every user then logs in again)"
        )
    return "verified", [], details


# --- what the claims say ------------------------------------------------------------------------


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def token_kind(claims: dict[str, Any]) -> tuple[str | None, str]:
    """("access" | "refresh" | None, how it was told)."""
    aud = audiences(claims)
    if REFRESH_AUDIENCE in aud:
        return "refresh", f"aud {REFRESH_AUDIENCE}"
    if ACCESS_AUDIENCE in aud:
        return "access", f"aud {ACCESS_AUDIENCE}"
    if claims.get("type") in ("access", "refresh"):
        return claims["type"], "its type claim (the guide's tokens; ERPGo's say it with aud)"
    return None, "neither aud erpgo-api nor erpgo-refresh"


def kind_details(kind: str | None, how: str) -> list[str]:
    if kind == "refresh":
        return [
            f'a refresh token ({how}): it goes to POST /api/v1/auth/refresh as {{"refresh_token": …}} for a new '
            "access token, never in `Authorization: Bearer`"
        ]
    if kind == "access":
        return [f"an access token ({how}): sent as `Authorization: Bearer …`"]
    return [f"not an ERPGo access or refresh token: {how}"]


def issuer_issues(claims: dict[str, Any]) -> Issues:
    iss = claims.get("iss")
    if iss is None:
        return [(Status.WARN, f"no iss claim: ERPGo's tokens say iss {ISSUER}")]
    if iss != ISSUER:
        return [(Status.WARN, f"issuer {claim_text(iss)}, not {ISSUER}: not a token this ERPGo issued")]
    return []


def expiry_of(claims: dict[str, Any], now: float) -> tuple[str, Issues]:
    exp = claims.get("exp")
    if exp is None:
        return "no exp claim", [(Status.WARN, "no exp claim: ERPGo answers 401 UNAUTHORIZED (invalid token)")]
    if not is_number(exp):
        return "exp is not a number", [(Status.WARN, "exp is not a number: ERPGo answers 401 UNAUTHORIZED")]
    if exp <= now:
        expiry = f"expired {human_duration(now - exp)} ago (TOKEN_EXPIRED; the guide's AUTH_002)"
        return expiry, [(Status.WARN, expiry + ": refresh it (POST /api/v1/auth/refresh) or log in again")]
    return f"valid for another {human_duration(exp - now)}", []


def time_issues(claims: dict[str, Any], now: float) -> Issues:
    """nbf and iat: in the future (a clock ahead), or after exp (never valid)."""
    iat, nbf, exp = claims.get("iat"), claims.get("nbf"), claims.get("exp")
    issues: Issues = []
    if is_number(iat) and iat > now + CLOCK_SKEW_S:
        issues.append((Status.WARN, f"issued {human_duration(iat - now)} in the future: the API's clock is ahead"))
    if is_number(nbf) and nbf > now + CLOCK_SKEW_S:
        issues.append((Status.WARN, f"not valid before {when(nbf)}: ERPGo refuses it until then"))
    for name, value in (("iat", iat), ("nbf", nbf)):
        if is_number(value) and is_number(exp) and value > exp:
            issues.append((Status.WARN, f"{name} is after exp: the token was never valid"))
    return issues


def lifetime_check(claims: dict[str, Any], kind: str | None, api: ApiJwtSettings) -> tuple[Issues, list[str]]:
    """The token's lifetime (exp − iat) against the API's JWT_EXPIRY, for access tokens."""
    if not (is_number(claims.get("exp")) and is_number(claims.get("iat"))):
        return [], []
    lifetime = claims["exp"] - claims["iat"]
    lines = [f"lifetime (exp − iat): {human_duration(lifetime)} — compare with JWT_EXPIRY"]
    if kind == "refresh":
        return [], [*lines, "refresh tokens have a lifetime of their own, not JWT_EXPIRY"]
    if api.container is None or (api.unavailable and api.expiry is None):
        return [], lines
    if api.expiry is None:
        return [], [*lines, f"JWT_EXPIRY is not set in {api.container}'s environment: ERPGo's default applies"]
    try:
        configured = parse_duration(api.expiry)
    except ValueError:
        return [], [*lines, f"{api.container}'s JWT_EXPIRY is {claim_text(api.expiry)} (not a duration read here)"]
    if abs(lifetime - configured) <= LIFETIME_TOLERANCE_S:
        return [], [*lines, f"as {api.container}'s JWT_EXPIRY ({claim_text(api.expiry)}) says"]
    issue = (
        f"lifetime {human_duration(lifetime)}, but {api.container}'s JWT_EXPIRY is {claim_text(api.expiry)}: "
        "issued under another setting (before it changed, or by another instance)"
    )
    return [(Status.WARN, issue)], lines


async def roles_now(ctx: CheckContext, claims: dict[str, Any]) -> tuple[Issues, list[str]]:
    """The token's roles against the user's roles in the database now (when it can be asked)."""
    token_roles = claims.get("roles")
    email = claims.get("email")
    if not isinstance(token_roles, list) or not isinstance(email, str) or not email:
        return [], []
    try:
        async with ctx.targets.pg.connect() as conn:
            if await conn.fetchval("SELECT to_regclass('user_roles') IS NULL"):
                return [], []
            rows = await conn.fetch(
                "SELECT r.name FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id"
                " WHERE u.email = $1 ORDER BY r.name",
                email,
            )
    except NotConfigured:
        return [], []
    except Exception as exc:
        return [], [f"roles not compared with the database: {describe_error(exc)}"]
    held = sorted(r["name"] for r in rows)
    if sorted(map(str, token_roles)) == held:
        return [], ["roles: as the database has them now"]
    issue = (
        f"the token carries roles {claim_text(token_roles)}, the database now {claim_text(held)}: the roles "
        "changed after it was issued, and the API goes by the token until it expires — log in again"
    )
    return [(Status.WARN, issue)], []


# --- the check ----------------------------------------------------------------------------------


def malformed(parts: list[str]) -> Finding | None:
    if len(parts) != 3:
        return Finding.warn(
            "JWT",
            f"not a JWT: {plural(len(parts), 'part')}, a JWT has 3 (header.payload.signature)",
            details=[
                "ERPGo answers 401 UNAUTHORIZED (invalid token; the guide's AUTH_003); the client may have cut "
                "or wrapped it"
            ],
            data={"parts": len(parts)},
        )
    return None


@runbook.check("jwt", component="JWT", section=JWT)
async def jwt_token(ctx: CheckContext) -> Finding:
    """Structure, signature (with the API's JWT_SECRET), kind, issuer, expiry against JWT_EXPIRY, nbf/iat."""
    return await token_finding(ctx, ctx.arg(TokenArgs).token)


async def token_finding(ctx: CheckContext, token: str) -> Finding:
    """What `jwt` says about one token (also about the token a probe login got)."""
    import jwt

    parts = token.split(".")
    if (bad := malformed(parts)) is not None:
        return bad
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        return Finding.warn(
            "JWT",
            "3 parts, but they do not decode: " + shorten(str(exc), 120, ""),
            details=["ERPGo answers 401 UNAUTHORIZED (invalid token; the guide's AUTH_003): the token is corrupted"],
            data={"parts": 3, "decodes": False},
        )
    now = time.time()
    alg = str(header.get("alg"))
    api = await api_jwt_settings(ctx)
    signature, issues, signature_lines = verify_signature(token, alg, api)
    if signature == "unsigned" or not parts[2]:
        issues.append(
            (
                Status.WARN,
                f"unsigned (alg {alg}, {'empty' if not parts[2] else 'present'} signature): ERPGo must reject it",
            )
        )
    kind, how = token_kind(claims)
    issues += issuer_issues(claims)
    expiry, expiry_issues = expiry_of(claims, now)
    issues += expiry_issues + time_issues(claims, now)
    lifetime_issues, lifetime_lines = lifetime_check(claims, kind, api)
    role_issues, role_lines = await roles_now(ctx, claims)
    issues += lifetime_issues + role_issues

    details = [
        f"header: alg {alg}, typ {header.get('typ', '—')}"
        + (f", kid {claim_text(header['kid'])}" if "kid" in header else ""),
        f"signature: {len(parts[2])} characters, not shown",
        *signature_lines,
        *kind_details(kind, how),
        *claim_lines(claims),
        *lifetime_lines,
        *role_lines,
    ]
    details += [f"⚠ {text}" for _, text in issues]
    data = {
        "alg": alg,
        "typ": header.get("typ"),
        "kind": kind,
        "signature": signature,
        "issuer": claims.get("iss"),
        "expired": is_number(claims.get("exp")) and claims["exp"] <= now,
        "claims": sorted(claims),
        "issues": [text for _, text in issues],
    }
    title = token_title(alg, kind, claims, signature, expiry, issues)
    return Finding(worst(s for s, _ in issues), "JWT", title, details=details, data=data)


def claim_lines(claims: dict[str, Any]) -> list[str]:
    """The claims worth showing with their values, the times, and the names of the rest."""
    lines = [f"{name}: {claim_text(claims[name])}" for name in SHOWN_CLAIMS if name in claims]
    lines += [f"{name}: {when(claims[name])}" for name in TIME_CLAIMS if name in claims]
    others = sorted(set(claims) - set(SHOWN_CLAIMS) - set(TIME_CLAIMS))
    if others:
        lines.append("other claims (values not shown): " + ", ".join(claim_text(k) for k in others[:20]))
    return lines


def token_title(alg: str, kind: str | None, claims: dict[str, Any], signature: str, expiry: str, issues: Issues) -> str:
    who = claims.get("email") or claims.get("sub")
    title = (
        f"{'unsigned' if alg.lower() == 'none' else alg} {kind + ' token' if kind else 'token'}"
        + (f" for {claim_text(who)}" if who else "")
        + (", signature verified" if signature == "verified" else "")
        + f": {expiry}"
    )
    first = next((text for _, text in issues if not text.startswith("expired")), None)
    return title + (" — " + first.split(":")[0] if first else "")
