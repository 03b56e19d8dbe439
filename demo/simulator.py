"""A small ERPGo API simulator for demos and tests.

It answers like the real ERPGo (not like the guide): `GET /health` has the nested shape of the
real application, the other health endpoints and `/debug/pprof/` may be absent, and the auth
endpoints answer as the real handlers do: a wrong password is 401
`{"error": {"code": "UNAUTHORIZED", "message": "invalid credentials", "details": {…}, "correlation_id": …,
"timestamp": …}}`, a refused login 429 `{"error": "Too many login attempts", …}` or `{"error": "Account
locked", …}`, and tokens carry the real claims (`user_id`, `roles`, `iss` erpgo-api, `aud` erpgo-api or
erpgo-refresh). The `dialect` switch set to "guide" makes the auth endpoints speak the guide's codes
(AUTH_001..AUTH_003) instead.

Switches make it sick on purpose (see `Switches`). They are set by CLI flags at start, by
`POST /_sim` with a JSON object, or in-process through `app["sim"]`; `GET /_sim` shows them.

    python -m demo.simulator --port 8080 --status unhealthy --delay 2 --no-detailed
    python -m demo.simulator --dialect guide --login locked
    curl -X POST localhost:8080/_sim -d '{"status": "degraded", "pool": {"acquired_conns": 19}}'
    curl -X POST localhost:8080/_sim -d '{"leak": true}'     # /metrics: goroutines and heap grow
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import random
import secrets
import sys
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from demo.go_runtime import CONTENT_TYPE as METRICS_CONTENT_TYPE
from demo.go_runtime import GoRuntime

STATUSES = ("healthy", "unhealthy", "degraded")
DIALECTS = ("real", "guide")
LOGIN_STATES = ("open", "rate-limited", "locked")
BODIES = ("json", "wrong-json", "wrong-shape", "empty")
ENDPOINTS = ("detailed", "database", "cache", "pprof")
DEFAULT_EXPOSE = frozenset({"detailed", "database", "cache"})
POOL_KEYS = ("max_conns", "total_conns", "idle_conns", "acquired_conns", "constructing_conns")

VERSION = "dev"
DEMO_CREDENTIALS = {"admin@example.com": "admin123"}
DEMO_ROLES = {"admin@example.com": ["admin"]}
ACCESS_TTL = 15 * 60
REFRESH_TTL = 7 * 24 * 3600
LOCKOUT_S = 15 * 60
ISSUER = "erpgo-api"

DB_DIAL_ERROR = (
    "failed to connect to `host=postgres user=erpgo database=erp`: "
    "dial error (dial tcp 172.18.0.2:5432: connect: connection refused)"
)
CACHE_DIAL_ERROR = "dial tcp 172.18.0.3:6379: connect: connection refused"

# pgxpool's numbers for a quiet API (total = idle + acquired + constructing) and for one that
# cannot reach its database.
HEALTHY_POOL = {"max_conns": 20, "idle_conns": 2, "acquired_conns": 1, "constructing_conns": 0}
DOWN_POOL = {"max_conns": 20, "idle_conns": 0, "acquired_conns": 0, "constructing_conns": 0}


# --- switches -----------------------------------------------------------------------------------


@dataclass
class Switches:
    """What is wrong with the simulated ERPGo right now.

    status  "healthy" | "unhealthy" (503, database check failing) | "degraded" (200, cache failing)
    delay   seconds added before every /health* answer
    body    "json" | "wrong-json" (truncated JSON) | "wrong-shape" ({"ok": true}) | "empty"
    expose  which optional endpoints answer: "detailed", "database", "cache", "pprof"
    pool    overrides for details.pool_stats, e.g. {"acquired_conns": 19}; unless given,
            idle_conns shrinks to fit max_conns and total_conns = idle + acquired + constructing
    dialect "real" (the application's error bodies and tokens) | "guide" (AUTH_001..AUTH_003)
    login   "open" | "rate-limited" (every login answers 429) | "locked" (every account is locked)
    leak    /metrics' goroutines and heap grow with time (see demo/go_runtime.py)
    """

    status: str = "healthy"
    delay: float = 0.0
    body: str = "json"
    expose: set[str] = field(default_factory=lambda: set(DEFAULT_EXPOSE))
    pool: dict[str, int] = field(default_factory=dict)
    dialect: str = "real"
    login: str = "open"
    leak: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Validate every change first, then apply them all; raise ValueError on any bad one."""
        parsed = {name: _parse_switch(name, value) for name, value in changes.items()}
        for name, value in parsed.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "delay": self.delay,
            "body": self.body,
            "expose": sorted(self.expose),
            "pool": dict(self.pool),
            "dialect": self.dialect,
            "login": self.login,
            "leak": self.leak,
        }


def _parse_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _parse_delay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"delay must be a number of seconds; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"delay must be >= 0; got {value!r}")
    return float(value)


def _parse_expose(value: Any) -> set[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"expose must be a list of endpoint names; got {value!r}")
    names = set(value)
    unknown = names - set(ENDPOINTS)
    if unknown:
        raise ValueError(f"expose knows only {', '.join(ENDPOINTS)}; got {sorted(map(str, unknown))}")
    return names


def _parse_pool(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError(f'pool must be an object like {{"acquired_conns": 19}}; got {value!r}')
    pool = {}
    for key, number in value.items():
        if key not in POOL_KEYS:
            raise ValueError(f"pool knows only {', '.join(POOL_KEYS)}; got {key!r}")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"pool.{key} must be an integer >= 0; got {number!r}")
        pool[key] = number
    return pool


def _parse_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


_PARSERS = {
    "status": lambda v: _parse_choice("status", v, STATUSES),
    "delay": _parse_delay,
    "body": lambda v: _parse_choice("body", v, BODIES),
    "expose": _parse_expose,
    "pool": _parse_pool,
    "dialect": lambda v: _parse_choice("dialect", v, DIALECTS),
    "login": lambda v: _parse_choice("login", v, LOGIN_STATES),
    "leak": lambda v: _parse_flag("leak", v),
}


def _parse_switch(name: str, value: Any) -> Any:
    parser = _PARSERS.get(name)
    if parser is None:
        raise ValueError(f"unknown switch {name!r}; known: {', '.join(_PARSERS)}")
    return parser(value)


# --- health documents ---------------------------------------------------------------------------


def go_timestamp(ns: int) -> str:
    """Format a UTC time like Go's time.RFC3339Nano: trailing zeros of the fraction are cut."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def pool_stats(sim: Switches) -> dict[str, int]:
    stats = dict(DOWN_POOL if sim.status == "unhealthy" else HEALTHY_POOL)
    stats.update(sim.pool)
    if "idle_conns" not in sim.pool:  # keep the pool within max_conns when others are overridden
        room = stats["max_conns"] - stats["acquired_conns"] - stats["constructing_conns"]
        stats["idle_conns"] = max(0, min(stats["idle_conns"], room))
    stats.setdefault("total_conns", stats["idle_conns"] + stats["acquired_conns"] + stats["constructing_conns"])
    return {key: stats[key] for key in POOL_KEYS}


def database_check(sim: Switches, now_ns: int) -> dict[str, Any]:
    details = {"pool_stats": pool_stats(sim)}
    if sim.status == "unhealthy":
        return {
            "status": "unhealthy",
            "message": f"Database connection check failed: {DB_DIAL_ERROR}",
            "timestamp": go_timestamp(now_ns),
            "details": details,
            "checks": {
                "connection": {
                    "status": "unhealthy",
                    "message": DB_DIAL_ERROR,
                    "latency": random.randint(400_000, 1_500_000),
                },
                "query": {"status": "unhealthy", "message": "Query skipped: no database connection", "latency": 0},
            },
        }
    # A slow ERPGo is slow because of its database, so the delay shows up in the query latency.
    query_latency = random.randint(300_000, 2_500_000) + int(sim.delay * 1_000_000_000)
    return {
        "status": "healthy",
        "message": "All database health checks passed",
        "timestamp": go_timestamp(now_ns),
        "details": details,
        "checks": {
            "connection": {
                "status": "healthy",
                "message": "Connection successful",
                "latency": random.randint(150_000, 900_000),
            },
            "query": {"status": "healthy", "message": "Query successful", "latency": query_latency},
        },
    }


def cache_check(sim: Switches) -> dict[str, Any]:
    if sim.status == "degraded":
        return {"status": "unhealthy", "message": f"Cache connection failed: {CACHE_DIAL_ERROR}"}
    return {"status": "healthy", "message": "Cache connection successful"}


def health_document(sim: Switches, now_ns: int) -> dict[str, Any]:
    return {
        "status": sim.status,
        "timestamp": go_timestamp(now_ns),
        "version": VERSION,
        "checks": {"database": database_check(sim, now_ns), "cache": cache_check(sim)},
    }


def detailed_document(sim: Switches, now_ns: int, started_ns: int) -> dict[str, Any]:
    doc = health_document(sim, now_ns)
    doc["uptime_seconds"] = (now_ns - started_ns) // 1_000_000_000
    doc["system"] = {
        "go_version": "go1.23.4",
        "num_cpu": 2,
        "goroutines": 42,
        "memory": {
            "alloc_bytes": 18_874_368,
            "total_alloc_bytes": 412_090_112,
            "sys_bytes": 42_991_616,
            "heap_objects": 98_311,
            "num_gc": 57,
        },
    }
    return doc


# --- responses ----------------------------------------------------------------------------------


def json_response(doc: Any, status: int = 200) -> web.Response:
    # Go's encoding/json writes compact JSON.
    return web.Response(status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json")


def api_error(status: int, code: str, message: str) -> web.Response:
    """The guide's error body."""
    return json_response({"error": {"code": code, "message": message}}, status)


def go_time(seconds: float) -> str:
    """Go's time.RFC3339 in UTC, as pkg/errors formats its timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def app_error(status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> web.Response:
    """The real application's error body (pkg/errors through its error middleware)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = dict(details)
    error["correlation_id"] = str(uuid.uuid4())
    error["timestamp"] = go_time(time.time())
    return json_response({"error": error}, status)


def handler_error(status: int, error: str, details: str) -> web.Response:
    """What the real auth handlers answer themselves: {"error": "<message>", "details": "<text>"}, no code."""
    return json_response({"error": error, "details": details}, status)


def go_not_found() -> web.Response:
    return web.Response(status=404, text="404 page not found", content_type="text/plain")


def health_response(sim: Switches, doc: dict[str, Any]) -> web.Response:
    """Answer a health document the way the `body` switch says."""
    status = 503 if doc["status"] == "unhealthy" else 200
    if sim.body == "wrong-shape":
        doc = {"ok": True}
    text = json.dumps(doc, separators=(",", ":"))
    if sim.body == "wrong-json":
        text = text[: len(text) // 2]  # a cut-off object is never valid JSON
    elif sim.body == "empty":
        text = ""
    return web.Response(status=status, text=text, content_type="application/json")


# --- health handlers ----------------------------------------------------------------------------


async def _slow_down(sim: Switches) -> None:
    if sim.delay > 0:
        await asyncio.sleep(sim.delay)


async def health(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    await _slow_down(sim)
    return health_response(sim, health_document(sim, time.time_ns()))


async def health_detailed(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    await _slow_down(sim)
    if "detailed" not in sim.expose:
        return go_not_found()
    return health_response(sim, detailed_document(sim, time.time_ns(), request.app["started_ns"]))


async def health_database(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    await _slow_down(sim)
    if "database" not in sim.expose:
        return go_not_found()
    return health_response(sim, database_check(sim, time.time_ns()))


async def health_cache(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    await _slow_down(sim)
    if "cache" not in sim.expose:
        return go_not_found()
    return health_response(sim, cache_check(sim))


PPROF_INDEX = """<html>
<head><title>/debug/pprof/</title></head>
<body>
/debug/pprof/<br>
<br>
Types of profiles available:
<table>
<thead><td>Count</td><td>Profile</td></thead>
<tr><td>57</td><td><a href='allocs?debug=1'>allocs</a></td></tr>
<tr><td>42</td><td><a href='goroutine?debug=1'>goroutine</a></td></tr>
<tr><td>57</td><td><a href='heap?debug=1'>heap</a></td></tr>
</table>
</body>
</html>
"""

# Only the debug=1 text form is simulated; the real binary profiles are not.
PPROF_TEXT = {
    "goroutine": "goroutine profile: total 42\n"
    "18 @ 0x43e7ae 0x4370b7 0x46a2e5\n"
    "#\t0x46a2e4\tnet/http.(*conn).serve+0x5e4\n",
    "heap": "heap profile: 98311: 18874368 [412090: 412090112] @ heap/1048576\n"
    "# runtime.MemStats\n# Alloc = 18874368\n# Sys = 42991616\n# NumGC = 57\n",
}


async def pprof(request: web.Request) -> web.Response:
    if "pprof" not in request.app["sim"].expose:
        return go_not_found()
    profile = request.match_info["profile"]
    if profile == "":
        return web.Response(text=PPROF_INDEX, content_type="text/html")
    if profile in PPROF_TEXT:
        return web.Response(text=PPROF_TEXT[profile], content_type="text/plain")
    return go_not_found()


# --- /metrics -----------------------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    """Go's runtime and process metrics, as the real ERPGo exports them (no http_requests_total)."""
    runtime: GoRuntime = request.app["go_runtime"]
    runtime.advance(leaking=request.app["sim"].leak)
    return web.Response(body=runtime.exposition().encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


# --- auth ---------------------------------------------------------------------------------------


class TokenError(Exception):
    def __init__(self, code: str, message: str, reason: str = "signature"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason  # "segments" | "signature" | "claims" | "expired"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signing_input: str) -> str:
    digest = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return _b64url(digest)


def make_jwt(secret: str, claims: Mapping[str, Any]) -> str:
    """An HS256 JWT, like the one ERPGo issues."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{header}.{payload}.{_sign(secret, f'{header}.{payload}')}"


def read_jwt(secret: str, token: Any, now: float | None = None) -> dict[str, Any]:
    """Verify signature and expiry; raise TokenError with AUTH_003 (invalid) or AUTH_002 (expired)."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise TokenError("AUTH_003", "Invalid token", "segments")
    header, payload, signature = token.split(".")
    if not hmac.compare_digest(signature, _sign(secret, f"{header}.{payload}")):
        raise TokenError("AUTH_003", "Invalid token")
    try:
        claims = json.loads(_b64url_decode(payload))
    except ValueError:
        raise TokenError("AUTH_003", "Invalid token", "claims") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)):
        raise TokenError("AUTH_003", "Invalid token", "claims")
    if claims["exp"] <= (time.time() if now is None else now):
        raise TokenError("AUTH_002", "Token expired", "expired")
    return claims


def user_id(email: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"erpgo:user:{email}"))


def issue_tokens(secret: str, email: str) -> dict[str, Any]:
    """The guide's token pair: `type` access / refresh claims, `token_type` and `expires_in`."""
    now = int(time.time())
    subject = {"sub": user_id(email), "email": email, "iat": now}
    access = make_jwt(secret, {**subject, "type": "access", "exp": now + ACCESS_TTL, "jti": str(uuid.uuid4())})
    refresh = make_jwt(secret, {**subject, "type": "refresh", "exp": now + REFRESH_TTL, "jti": str(uuid.uuid4())})
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "user": {"id": user_id(email), "email": email},
    }


def real_tokens(secret: str, email: str | None, subject: str) -> dict[str, Any]:
    """The real token pair (pkg/auth): the access token carries the user, the refresh token only its id."""
    now = int(time.time())
    registered = {"iss": ISSUER, "sub": subject, "nbf": now, "iat": now}
    access = {
        "user_id": subject,
        "email": email or "",
        "username": (email or "").split("@")[0],
        "roles": DEMO_ROLES.get(email or "", []),
        "jti": str(uuid.uuid4()),
        **registered,
        "aud": ["erpgo-api"],
        "exp": now + ACCESS_TTL,
    }
    refresh = {"jti": str(uuid.uuid4()), **registered, "aud": ["erpgo-refresh"], "exp": now + REFRESH_TTL}
    return {
        "access_token": make_jwt(secret, access),
        "refresh_token": make_jwt(secret, refresh),
        "expires_at": go_timestamp(time.time_ns() + ACCESS_TTL * 1_000_000_000),
    }


def real_user(email: str) -> dict[str, Any]:
    return {
        "id": user_id(email),
        "email": email,
        "username": email.split("@")[0],
        "first_name": "System",
        "last_name": "Administrator",
        "roles": DEMO_ROLES.get(email, []),
        "is_active": True,
        "is_verified": True,
        "created_at": "2025-01-01T00:00:00Z",
    }


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _non_empty_strings(body: Mapping[str, Any], *keys: str) -> bool:
    return all(isinstance(body.get(key), str) and body[key] for key in keys)


def _password_matches(app: web.Application, email: str, password: str) -> bool:
    expected = app["credentials"].get(email)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


def binding_error(body: Mapping[str, Any] | None) -> str | None:
    """What gin's ShouldBindJSON says about a login body (`binding:"required,email"` / `"required"`)."""
    if body is None:
        return "invalid character looking for beginning of value"
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not email:
        return "Key: 'LoginRequest.Email' Error:Field validation for 'Email' failed on the 'required' tag"
    if "@" not in email.strip("@"):
        return "Key: 'LoginRequest.Email' Error:Field validation for 'Email' failed on the 'email' tag"
    if not isinstance(password, str) or not password:
        return "Key: 'LoginRequest.Password' Error:Field validation for 'Password' failed on the 'required' tag"
    return None


async def login(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if request.app["sim"].dialect == "guide":
        return guide_login(request, body)
    return real_login(request, body)


def real_login(request: web.Request, body: dict[str, Any] | None) -> web.Response:
    """The real handler: bind, rate limiter, account lock, then the service (which hides why it failed)."""
    sim = request.app["sim"]
    problem = binding_error(body)
    if problem or body is None:
        return handler_error(400, "Invalid request body", problem or "")
    if sim.login == "rate-limited":
        return handler_error(429, "Too many login attempts", "Please try again later")
    if sim.login == "locked":
        return handler_error(
            429,
            "Account locked",
            "Account is locked due to too many failed login attempts. "
            f"Please try again at {go_time(time.time() + LOCKOUT_S)}",
        )
    email = body["email"].strip().lower()
    # The service answers "invalid credentials" for an unknown user, an inactive one, a wrong password and
    # a user lookup that failed — a database that is down included.
    if sim.status == "unhealthy" or email not in request.app["credentials"]:
        return app_error(401, "UNAUTHORIZED", "invalid credentials", {"operation": "Login"})
    if not _password_matches(request.app, email, body["password"]):
        return app_error(401, "UNAUTHORIZED", "invalid credentials", {"operation": "Login", "user_id": user_id(email)})
    return json_response({**real_tokens(request.app["jwt_secret"], email, user_id(email)), "user": real_user(email)})


def guide_login(request: web.Request, body: dict[str, Any] | None) -> web.Response:
    sim = request.app["sim"]
    if body is None:
        return api_error(400, "VALIDATION_ERROR", "Invalid request body")
    if not _non_empty_strings(body, "email", "password"):
        return api_error(400, "VALIDATION_ERROR", "email and password are required")
    if sim.login == "rate-limited":
        return api_error(429, "RATE_LIMIT_EXCEEDED", "Too many requests")
    if sim.login == "locked":
        return api_error(403, "ACCOUNT_LOCKED", "Account temporarily locked")
    if sim.status == "unhealthy":  # the user lookup needs the database
        return api_error(500, "INTERNAL_ERROR", "Internal server error")
    if not _password_matches(request.app, body["email"], body["password"]):
        return api_error(401, "AUTH_001", "Invalid credentials")
    return json_response(issue_tokens(request.app["jwt_secret"], body["email"]))


async def refresh(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if request.app["sim"].dialect == "guide":
        return guide_refresh(request, body)
    return real_refresh(request, body)


JWT_FAILURES = {  # how golang-jwt words what read_jwt found
    "expired": "token has invalid claims: token is expired",
    "segments": "token is malformed: token contains an invalid number of segments",
    "claims": "token is malformed: could not JSON decode claim",
    "signature": "token signature is invalid: signature is invalid",
}


def real_refresh(request: web.Request, body: dict[str, Any] | None) -> web.Response:
    """The real handler turns every service error it does not spell exactly into a 500."""
    if body is None or not _non_empty_strings(body, "refresh_token"):
        detail = (
            "Key: 'RefreshTokenRequest.RefreshToken' Error:Field validation for 'RefreshToken' failed on the "
            "'required' tag"
            if body is not None
            else "invalid character looking for beginning of value"
        )
        return handler_error(400, "Invalid request body", detail)
    try:
        claims = read_jwt(request.app["jwt_secret"], body["refresh_token"])
    except TokenError as error:
        return handler_error(
            500, "Token refresh failed", f"invalid refresh token: failed to parse token: {JWT_FAILURES[error.reason]}"
        )
    if "erpgo-refresh" not in (claims.get("aud") or []):
        return handler_error(
            500, "Token refresh failed", "failed to rotate refresh token: invalid refresh token claims"
        )
    email = next((e for e in request.app["credentials"] if user_id(e) == claims.get("sub")), None)
    if email is None:
        return handler_error(500, "Token refresh failed", "user not found")
    return json_response({**real_tokens(request.app["jwt_secret"], email, user_id(email)), "user": None})


def guide_refresh(request: web.Request, body: dict[str, Any] | None) -> web.Response:
    if body is None:
        return api_error(400, "VALIDATION_ERROR", "Invalid request body")
    if not _non_empty_strings(body, "refresh_token"):
        return api_error(400, "VALIDATION_ERROR", "refresh_token is required")
    try:
        claims = read_jwt(request.app["jwt_secret"], body["refresh_token"])
    except TokenError as error:
        return api_error(401, error.code, error.message)
    if claims.get("type") != "refresh" or claims.get("email") not in request.app["credentials"]:
        return api_error(401, "AUTH_003", "Invalid token")
    return json_response(issue_tokens(request.app["jwt_secret"], claims["email"]))


async def forgot_password(request: web.Request) -> web.Response:
    """The real handler: bind the e-mail, ask the service (which mails a reset link to a known account), then
    the same 200 whether the account exists or not, so nobody learns which do. The mails it would send are
    recorded in app["password_resets"]."""
    body = await _json_object(request)
    email = body.get("email") if body is not None else None
    if not isinstance(email, str) or "@" not in email.strip("@"):
        tag = "required" if not email else "email"
        detail = f"Key: 'ForgotPasswordRequest.Email' Error:Field validation for 'Email' failed on the '{tag}' tag"
        return handler_error(400, "Invalid request body", detail)
    if request.app["sim"].status == "unhealthy":  # the user lookup needs the database
        return handler_error(500, "Failed to process request", "failed to get user: database unavailable")
    if email.strip().lower() in request.app["credentials"]:
        request.app["password_resets"].append(email.strip().lower())
    return json_response({"message": "If an account with this email exists, a password reset link has been sent"})


# --- simulator control --------------------------------------------------------------------------


async def get_switches(request: web.Request) -> web.Response:
    return json_response(request.app["sim"].as_dict())


async def set_switches(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if body is None:
        return json_response({"error": "expected a JSON object of switches"}, 400)
    try:
        request.app["sim"].update(body)
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    return json_response(request.app["sim"].as_dict())


@web.middleware
async def go_style_not_found(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return go_not_found()


# --- assembly -----------------------------------------------------------------------------------


def _set_state(app: web.Application, key: str, value: Any) -> None:
    # Plain string keys (app["sim"]) are the documented API; aiohttp only recommends AppKey.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app[key] = value


def create_app(**switches: Any) -> web.Application:
    """The simulator app; keyword arguments are initial switches (see Switches).

    State: app["sim"] (Switches), app["credentials"] (email -> password),
    app["jwt_secret"] (signs the tokens), app["started_ns"], app["go_runtime"] (what /metrics shows),
    app["password_resets"] (the e-mails a reset link was sent to).
    """
    sim = Switches()
    sim.update(switches)
    app = web.Application(middlewares=[go_style_not_found])
    _set_state(app, "sim", sim)
    _set_state(app, "credentials", dict(DEMO_CREDENTIALS))
    _set_state(app, "jwt_secret", secrets.token_hex(32))
    _set_state(app, "password_resets", [])
    _set_state(app, "started_ns", time.time_ns())
    _set_state(app, "go_runtime", GoRuntime())
    app.router.add_get("/health", health)
    app.router.add_get("/health/detailed", health_detailed)
    app.router.add_get("/health/database", health_database)
    app.router.add_get("/health/cache", health_cache)
    app.router.add_get("/debug/pprof/{profile:.*}", pprof)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/refresh", refresh)
    app.router.add_post("/api/v1/auth/forgot-password", forgot_password)
    app.router.add_get("/_sim", get_switches)
    app.router.add_post("/_sim", set_switches)
    return app


# --- command line -------------------------------------------------------------------------------


def _pool_item(text: str) -> tuple[str, int]:
    key, sep, number = text.partition("=")
    if not sep or key not in POOL_KEYS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected KEY=N with KEY in {', '.join(POOL_KEYS)}")
    return key, int(number)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.simulator", description="Serve a simulated ERPGo API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--status", choices=STATUSES, default="healthy")
    parser.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="added before every /health* answer"
    )
    parser.add_argument("--body", choices=BODIES, default="json")
    for name in ("detailed", "database", "cache"):
        parser.add_argument(f"--no-{name}", action="store_true", help=f"/health/{name} answers 404")
    parser.add_argument("--pprof", action="store_true", help="serve /debug/pprof/ (absent by default)")
    parser.add_argument(
        "--pool",
        type=_pool_item,
        action="append",
        default=[],
        metavar="KEY=N",
        help="override a pool_stats number, e.g. --pool acquired_conns=19",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="real",
        help="real: the application's error bodies and tokens (default); guide: AUTH_001..AUTH_003",
    )
    parser.add_argument(
        "--login",
        choices=LOGIN_STATES,
        default="open",
        help="rate-limited: every login answers 429; locked: every account is locked",
    )
    return parser.parse_args(argv)


def switches_from_args(args: argparse.Namespace) -> dict[str, Any]:
    expose = {name for name in ("detailed", "database", "cache") if not getattr(args, f"no_{name}")}
    if args.pprof:
        expose.add("pprof")
    return {
        "status": args.status,
        "delay": args.delay,
        "body": args.body,
        "expose": expose,
        "pool": dict(args.pool),
        "dialect": args.dialect,
        "login": args.login,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        app = create_app(**switches_from_args(args))
    except ValueError as error:
        sys.exit(f"simulator: {error}")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log_format='%a "%r" %s %b %Tfs')


if __name__ == "__main__":
    main()
