"""Guide: "Authentication & Authorization › JWT Token Issues" — `jwt <token>`. Tokens are never
echoed: only their decoded claims are shown."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import jwt

from bot.core.engine import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.registry import UsageError
from bot.core.units import human_duration
from runbooks.auth.common import JWT, MAX_TOKEN, plural, runbook

CLOCK_SKEW_S = 60

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
