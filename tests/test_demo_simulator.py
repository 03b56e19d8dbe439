"""The ERPGo simulator answers like the real ERPGo, and its switches make it sick on demand."""

import base64
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from demo.simulator import (
    Switches,
    create_app,
    go_timestamp,
    make_jwt,
    parse_args,
    switches_from_args,
    user_id,
)
from tests.support import eventually

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RFC3339_NANO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
DB_DIAL_ERROR = "failed to connect to `host=postgres user=erpgo database=erp`: dial error"
POOL_KEYS = {"max_conns", "total_conns", "idle_conns", "acquired_conns", "constructing_conns"}


@pytest.fixture
async def client():
    async with TestClient(TestServer(create_app())) as test_client:
        yield test_client


def sim(client: TestClient) -> Switches:
    return client.server.app["sim"]


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- /health --------------------------------------------------------------------------------------


async def test_healthy_health_has_exactly_the_real_shape(client):
    resp = await client.get("/health")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()

    assert set(doc) == {"status", "timestamp", "version", "checks"}
    assert doc["status"] == "healthy"
    assert doc["version"] == "dev"
    assert RFC3339_NANO.match(doc["timestamp"])
    assert set(doc["checks"]) == {"database", "cache"}

    database = doc["checks"]["database"]
    assert set(database) == {"status", "message", "timestamp", "details", "checks"}
    assert database["status"] == "healthy"
    assert database["message"] == "All database health checks passed"
    assert RFC3339_NANO.match(database["timestamp"])

    assert set(database["details"]) == {"pool_stats"}
    pool = database["details"]["pool_stats"]
    assert set(pool) == POOL_KEYS
    assert all(type(value) is int for value in pool.values())
    assert pool["total_conns"] == pool["idle_conns"] + pool["acquired_conns"] + pool["constructing_conns"]
    assert pool["total_conns"] <= pool["max_conns"] == 20

    assert set(database["checks"]) == {"connection", "query"}
    assert database["checks"]["connection"]["message"] == "Connection successful"
    assert database["checks"]["query"]["message"] == "Query successful"
    for check in database["checks"].values():
        assert set(check) == {"status", "message", "latency"}
        assert check["status"] == "healthy"
        assert type(check["latency"]) is int
        assert 0 < check["latency"] < 1_000_000_000  # nanoseconds: well under a second

    assert doc["checks"]["cache"] == {"status": "healthy", "message": "Cache connection successful"}


async def test_unhealthy_answers_503_with_the_database_check_failing(client):
    sim(client).status = "unhealthy"
    resp = await client.get("/health")
    assert resp.status == 503
    doc = await resp.json()
    assert doc["status"] == "unhealthy"
    database = doc["checks"]["database"]
    assert database["status"] == "unhealthy"
    assert DB_DIAL_ERROR in database["message"]
    assert database["checks"]["connection"]["status"] == "unhealthy"
    assert DB_DIAL_ERROR in database["checks"]["connection"]["message"]
    assert database["checks"]["query"]["status"] == "unhealthy"
    assert database["details"]["pool_stats"]["total_conns"] == 0
    assert doc["checks"]["cache"]["status"] == "healthy"


async def test_degraded_answers_200_with_the_cache_check_failing(client):
    sim(client).status = "degraded"
    resp = await client.get("/health")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["status"] == "degraded"
    assert doc["checks"]["database"]["status"] == "healthy"
    assert doc["checks"]["cache"]["status"] == "unhealthy"
    assert "6379" in doc["checks"]["cache"]["message"]


async def test_wrong_json_body_cannot_be_parsed(client):
    sim(client).body = "wrong-json"
    resp = await client.get("/health")
    assert resp.status == 200
    text = await resp.text()
    assert text.startswith('{"status":"healthy"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_wrong_shape_body_is_valid_json_of_another_shape(client):
    sim(client).body = "wrong-shape"
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"ok": True}


async def test_empty_body(client):
    sim(client).body = "empty"
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.read() == b""


async def test_delay_is_honoured(client):
    sim(client).delay = 0.3
    started = time.monotonic()
    resp = await client.get("/health")
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert elapsed >= 0.3
    doc = await resp.json()
    assert doc["checks"]["database"]["checks"]["query"]["latency"] >= 300_000_000


async def test_pool_override_keeps_the_pool_within_max(client):
    sim(client).pool = {"acquired_conns": 19}
    doc = await (await client.get("/health")).json()
    assert doc["checks"]["database"]["details"]["pool_stats"] == {
        "max_conns": 20,
        "total_conns": 20,
        "idle_conns": 1,
        "acquired_conns": 19,
        "constructing_conns": 0,
    }


def test_go_timestamp_formats_like_rfc3339nano():
    assert go_timestamp(1_764_464_523_123_456_789) == "2025-11-30T01:02:03.123456789Z"
    assert go_timestamp(1_764_464_523_120_000_000) == "2025-11-30T01:02:03.12Z"
    assert go_timestamp(1_764_464_523_000_000_000) == "2025-11-30T01:02:03Z"


# --- optional endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["detailed", "database", "cache"])
async def test_sub_endpoints_answer_when_exposed(client, endpoint):
    resp = await client.get(f"/health/{endpoint}")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["status"] == "healthy"
    if endpoint == "detailed":
        assert {"status", "timestamp", "version", "checks", "system"} <= set(doc)
    if endpoint == "database":
        assert set(doc["details"]["pool_stats"]) == POOL_KEYS


@pytest.mark.parametrize("endpoint", ["detailed", "database", "cache"])
async def test_sub_endpoints_404_when_not_exposed(client, endpoint):
    sim(client).expose = {"detailed", "database", "cache"} - {endpoint}
    resp = await client.get(f"/health/{endpoint}")
    assert resp.status == 404
    assert await resp.text() == "404 page not found"
    assert (await client.get("/health")).status == 200


async def test_sub_endpoints_follow_the_status(client):
    sim(client).status = "unhealthy"
    assert (await client.get("/health/database")).status == 503
    assert (await client.get("/health/detailed")).status == 503
    assert (await client.get("/health/cache")).status == 200


async def test_pprof_is_absent_by_default_and_can_be_exposed(client):
    assert (await client.get("/debug/pprof/")).status == 404
    sim(client).expose = sim(client).expose | {"pprof"}
    resp = await client.get("/debug/pprof/")
    assert resp.status == 200
    assert "Types of profiles available" in await resp.text()
    resp = await client.get("/debug/pprof/goroutine", params={"debug": "1"})
    assert (await resp.text()).startswith("goroutine profile: total ")


# --- /_sim ----------------------------------------------------------------------------------------


async def test_get_sim_shows_the_switches(client):
    resp = await client.get("/_sim")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "healthy",
        "delay": 0.0,
        "body": "json",
        "expose": ["cache", "database", "detailed"],
        "pool": {},
        "dialect": "real",
        "login": "open",
        "leak": False,
    }


async def test_post_sim_changes_the_mode(client):
    resp = await client.post("/_sim", json={"status": "unhealthy", "expose": ["database"]})
    assert resp.status == 200
    assert (await resp.json())["status"] == "unhealthy"
    assert (await client.get("/health")).status == 503
    assert (await client.get("/health/cache")).status == 404
    assert (await (await client.get("/_sim")).json())["expose"] == ["database"]

    await client.post("/_sim", json={"status": "healthy", "body": "wrong-shape"})
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"ok": True}


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "on fire"},
        {"delay": -1},
        {"delay": "slow"},
        {"body": "xml"},
        {"expose": ["metrics"]},
        {"pool": {"acquired_conns": -1}},
        {"pool": {"busy": 3}},
        {"colour": "red"},
        {"dialect": "klingon"},
        {"login": "maybe"},
        {"status": "unhealthy", "delay": -1},  # all or nothing: status must not change either
    ],
)
async def test_post_sim_rejects_bad_switches_and_changes_nothing(client, payload):
    resp = await client.post("/_sim", json=payload)
    assert resp.status == 400
    assert "error" in await resp.json()
    assert sim(client).as_dict() == Switches().as_dict()


async def test_post_sim_rejects_a_body_that_is_not_an_object(client):
    assert (await client.post("/_sim", data="status=unhealthy")).status == 400
    assert (await client.post("/_sim", json=["unhealthy"])).status == 400


def test_create_app_takes_switches_and_validates_them():
    app = create_app(status="degraded", delay=0.5, body="empty", expose=["database"], pool={"max_conns": 50})
    assert app["sim"] == Switches(
        status="degraded", delay=0.5, body="empty", expose={"database"}, pool={"max_conns": 50}
    )
    with pytest.raises(ValueError):
        create_app(status="bogus")
    with pytest.raises(ValueError):
        create_app(volume=11)


def test_cli_flags_become_switches():
    args = parse_args(
        [
            "--port",
            "9000",
            "--status",
            "unhealthy",
            "--delay",
            "1.5",
            "--body",
            "wrong-json",
            "--no-detailed",
            "--no-cache",
            "--pprof",
            "--pool",
            "acquired_conns=19",
            "--dialect",
            "guide",
            "--login",
            "locked",
        ]
    )
    assert args.port == 9000
    assert switches_from_args(args) == {
        "status": "unhealthy",
        "delay": 1.5,
        "body": "wrong-json",
        "expose": {"database", "pprof"},
        "pool": {"acquired_conns": 19},
        "dialect": "guide",
        "login": "locked",
    }
    assert switches_from_args(parse_args([]))["dialect"] == "real"
    with pytest.raises(SystemExit):
        parse_args(["--status", "sick"])


# --- auth: the real application (the default) -----------------------------------------------------


async def login(client, payload):
    return await client.post("/api/v1/auth/login", json=payload)


def app_error_of(doc: dict) -> dict:
    """The real pkg/errors body, with its generated parts checked and removed."""
    error = dict(doc["error"])
    uuid.UUID(error.pop("correlation_id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error.pop("timestamp"))
    return error


async def test_login_ok_returns_the_real_tokens(client):
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 200
    doc = await resp.json()
    assert set(doc) == {"access_token", "refresh_token", "expires_at", "user"}
    assert RFC3339_NANO.match(doc["expires_at"])
    assert doc["user"]["email"] == "admin@example.com" and doc["user"]["roles"] == ["admin"]
    header, payload, _ = doc["access_token"].split(".")
    assert b64url_json(header) == {"alg": "HS256", "typ": "JWT"}
    access = b64url_json(payload)
    assert set(access) == {"user_id", "email", "username", "roles", "jti", "iss", "sub", "aud", "exp", "nbf", "iat"}
    assert (access["iss"], access["aud"], access["roles"]) == ("erpgo-api", ["erpgo-api"], ["admin"])
    assert access["sub"] == access["user_id"] == doc["user"]["id"] and access["exp"] > time.time()
    refresh_claims = b64url_json(doc["refresh_token"].split(".")[1])
    assert set(refresh_claims) == {"jti", "iss", "sub", "aud", "exp", "nbf", "iat"}
    assert refresh_claims["aud"] == ["erpgo-refresh"]


@pytest.mark.parametrize(
    "payload, details",
    [
        (
            {"email": "admin@example.com", "password": "wrong"},
            {"operation": "Login", "user_id": user_id("admin@example.com")},
        ),
        ({"email": "nobody@example.com", "password": "admin123"}, {"operation": "Login"}),
    ],
)
async def test_login_with_bad_credentials_is_401_unauthorized_invalid_credentials(client, payload, details):
    resp = await login(client, payload)
    assert resp.status == 401
    assert app_error_of(await resp.json()) == {
        "code": "UNAUTHORIZED",
        "message": "invalid credentials",
        "details": details,
    }


async def test_login_while_the_database_is_down_still_says_invalid_credentials(client):
    # the real service hides why the user lookup failed: a database that is down looks like a wrong password
    sim(client).status = "unhealthy"
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 401
    assert app_error_of(await resp.json())["message"] == "invalid credentials"


@pytest.mark.parametrize(
    "payload, details",
    [
        (
            {"email": "admin@example.com"},
            "Key: 'LoginRequest.Password' Error:Field validation for 'Password' failed on the 'required' tag",
        ),
        (
            {"email": "admin", "password": "x"},
            "Key: 'LoginRequest.Email' Error:Field validation for 'Email' failed on the 'email' tag",
        ),
    ],
)
async def test_login_with_a_bad_body_is_400_from_the_binding(client, payload, details):
    resp = await login(client, payload)
    assert resp.status == 400
    assert await resp.json() == {"error": "Invalid request body", "details": details}


async def test_login_refused_by_the_rate_limiter_or_a_locked_account_is_429_without_a_code(client):
    sim(client).login = "rate-limited"
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 429
    assert await resp.json() == {"error": "Too many login attempts", "details": "Please try again later"}
    sim(client).login = "locked"
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
    doc = await resp.json()
    assert resp.status == 429 and doc["error"] == "Account locked" and "Please try again at " in doc["details"]


async def test_credentials_live_in_the_app_state(client):
    client.server.app["credentials"]["ops@example.com"] = "s3cret"
    assert (await login(client, {"email": "ops@example.com", "password": "s3cret"})).status == 200


async def refresh(client, token):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_ok(client):
    tokens = await (await login(client, {"email": "admin@example.com", "password": "admin123"})).json()
    resp = await refresh(client, tokens["refresh_token"])
    assert resp.status == 200
    assert set(await resp.json()) == {"access_token", "refresh_token", "expires_at", "user"}


async def test_refresh_with_an_expired_or_invalid_token_is_a_500_as_the_real_handler_answers_it(client):
    secret = client.server.app["jwt_secret"]
    expired = make_jwt(
        secret, {"sub": user_id("admin@example.com"), "aud": ["erpgo-refresh"], "exp": int(time.time()) - 5}
    )
    tokens = await (await login(client, {"email": "admin@example.com", "password": "admin123"})).json()
    cases = [
        (expired, "token has invalid claims: token is expired"),
        ("garbage", "token is malformed: token contains an invalid number of segments"),
        (make_jwt("not-the-secret", {"exp": int(time.time()) + 60}), "token signature is invalid"),
        (tokens["access_token"], "invalid refresh token claims"),
    ]
    for token, words in cases:
        resp = await refresh(client, token)
        doc = await resp.json()
        assert resp.status == 500 and doc["error"] == "Token refresh failed" and words in doc["details"], doc


async def test_refresh_with_bad_json_is_400(client):
    resp = await client.post("/api/v1/auth/refresh", data="nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"] == "Invalid request body"


# --- auth: the guide's dialect --------------------------------------------------------------------


@pytest.fixture
async def guide():
    async with TestClient(TestServer(create_app(dialect="guide"))) as test_client:
        yield test_client


async def test_guide_login_ok_returns_jwt_looking_tokens(guide):
    resp = await login(guide, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["token_type"] == "Bearer"
    header, payload, signature = doc["access_token"].split(".")
    assert b64url_json(header) == {"alg": "HS256", "typ": "JWT"}
    claims = b64url_json(payload)
    assert claims["email"] == "admin@example.com"
    assert claims["type"] == "access"
    assert claims["exp"] > time.time()
    assert signature
    assert b64url_json(doc["refresh_token"].split(".")[1])["type"] == "refresh"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "admin@example.com", "password": "wrong"},
        {"email": "nobody@example.com", "password": "admin123"},
    ],
)
async def test_guide_login_with_bad_credentials_is_401_auth_001(guide, payload):
    resp = await login(guide, payload)
    assert resp.status == 401
    assert await resp.json() == {"error": {"code": "AUTH_001", "message": "Invalid credentials"}}


async def test_guide_login_with_bad_json_or_missing_fields_is_400(guide):
    resp = await guide.post(
        "/api/v1/auth/login", data='{"email": "admin@example.com",', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "Invalid request body"
    assert (await login(guide, {"email": "admin@example.com"})).status == 400


async def test_guide_login_fails_with_500_while_the_database_is_down(guide):
    sim(guide).status = "unhealthy"
    resp = await login(guide, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 500


async def test_guide_login_refused_speaks_the_documented_codes(guide):
    sim(guide).login = "rate-limited"
    assert (await (await login(guide, {"email": "a@b.c", "password": "x"})).json())["error"][
        "code"
    ] == "RATE_LIMIT_EXCEEDED"
    sim(guide).login = "locked"
    resp = await login(guide, {"email": "a@b.c", "password": "x"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "ACCOUNT_LOCKED"


async def test_guide_refresh_ok_expired_and_invalid(guide):
    tokens = await (await login(guide, {"email": "admin@example.com", "password": "admin123"})).json()
    resp = await refresh(guide, tokens["refresh_token"])
    assert resp.status == 200 and set(await resp.json()) >= {"access_token", "refresh_token"}
    secret = guide.server.app["jwt_secret"]
    expired = make_jwt(secret, {"email": "admin@example.com", "type": "refresh", "exp": int(time.time()) - 5})
    resp = await refresh(guide, expired)
    assert resp.status == 401
    assert await resp.json() == {"error": {"code": "AUTH_002", "message": "Token expired"}}
    forged = make_jwt("not-the-secret", {"email": "admin@example.com", "type": "refresh", "exp": int(time.time()) + 60})
    for token in ["garbage", forged, tokens["access_token"]]:
        resp = await refresh(guide, token)
        assert resp.status == 401, token
        assert (await resp.json())["error"]["code"] == "AUTH_003"
    bad = await guide.post("/api/v1/auth/refresh", data="nope", headers={"Content-Type": "application/json"})
    assert bad.status == 400


async def test_the_dialect_can_be_switched_at_run_time(client):
    assert (await client.post("/_sim", json={"dialect": "guide"})).status == 200
    resp = await login(client, {"email": "admin@example.com", "password": "wrong"})
    assert (await resp.json())["error"]["code"] == "AUTH_001"


async def test_unknown_paths_answer_like_go():
    async with TestClient(TestServer(create_app())) as test_client:
        resp = await test_client.get("/api/v1/nothing-here")
        assert resp.status == 404
        assert await resp.text() == "404 page not found"


# --- as a program ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for_status(url: str, timeout: float = 10.0) -> int:
    async def status() -> int | None:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return resp.status
        except aiohttp.ClientConnectionError:
            return None

    return await eventually(status, timeout=timeout, what=f"{url} answering")


async def test_runs_as_a_module_and_logs_one_line_per_request():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.simulator", "--port", str(port), "--status", "unhealthy"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert await wait_for_status(f"http://127.0.0.1:{port}/health") == 503
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=10)
    assert stdout == ""
    request_lines = [line for line in stderr.splitlines() if '"GET /health HTTP/1.1" 503' in line]
    assert len(request_lines) == 1, stderr


async def test_forgot_password_answers_the_same_for_any_account_and_mails_only_a_known_one(client):
    same = {"message": "If an account with this email exists, a password reset link has been sent"}
    for email in ("Admin@Example.com", "nobody@example.com"):
        resp = await client.post("/api/v1/auth/forgot-password", json={"email": email})
        assert resp.status == 200 and await resp.json() == same
    assert client.server.app["password_resets"] == ["admin@example.com"]
    resp = await client.post("/api/v1/auth/forgot-password", json={"email": "not-an-address"})
    doc = await resp.json()
    assert resp.status == 400 and doc["error"] == "Invalid request body" and "'email' tag" in doc["details"]
    sim(client).status = "unhealthy"
    resp = await client.post("/api/v1/auth/forgot-password", json={"email": "admin@example.com"})
    assert resp.status == 500 and (await resp.json())["error"] == "Failed to process request"
