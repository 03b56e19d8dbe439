"""The ERPGo simulator answers like the real ERPGo, and its switches make it sick on demand."""

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from demo.simulator import Switches, create_app, go_timestamp, make_jwt, parse_args, switches_from_args
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
        ]
    )
    assert args.port == 9000
    assert switches_from_args(args) == {
        "status": "unhealthy",
        "delay": 1.5,
        "body": "wrong-json",
        "expose": {"database", "pprof"},
        "pool": {"acquired_conns": 19},
    }
    with pytest.raises(SystemExit):
        parse_args(["--status", "sick"])


# --- auth -----------------------------------------------------------------------------------------


async def login(client, payload):
    return await client.post("/api/v1/auth/login", json=payload)


async def test_login_ok_returns_jwt_looking_tokens(client):
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
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
async def test_login_with_bad_credentials_is_401_auth_001(client, payload):
    resp = await login(client, payload)
    assert resp.status == 401
    assert await resp.json() == {"error": {"code": "AUTH_001", "message": "Invalid credentials"}}


async def test_login_with_bad_json_is_400(client):
    resp = await client.post(
        "/api/v1/auth/login", data='{"email": "admin@example.com",', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "Invalid request body"


async def test_login_with_missing_fields_is_400(client):
    resp = await login(client, {"email": "admin@example.com"})
    assert resp.status == 400


async def test_login_fails_with_500_while_the_database_is_down(client):
    sim(client).status = "unhealthy"
    resp = await login(client, {"email": "admin@example.com", "password": "admin123"})
    assert resp.status == 500


async def test_credentials_live_in_the_app_state(client):
    client.server.app["credentials"]["ops@example.com"] = "s3cret"
    assert (await login(client, {"email": "ops@example.com", "password": "s3cret"})).status == 200


async def refresh(client, token):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_ok(client):
    tokens = await (await login(client, {"email": "admin@example.com", "password": "admin123"})).json()
    resp = await refresh(client, tokens["refresh_token"])
    assert resp.status == 200
    assert set(await resp.json()) >= {"access_token", "refresh_token"}


async def test_refresh_with_an_expired_token_is_401_auth_002(client):
    secret = client.server.app["jwt_secret"]
    expired = make_jwt(secret, {"email": "admin@example.com", "type": "refresh", "exp": int(time.time()) - 5})
    resp = await refresh(client, expired)
    assert resp.status == 401
    assert await resp.json() == {"error": {"code": "AUTH_002", "message": "Token expired"}}


async def test_refresh_with_an_invalid_token_is_401_auth_003(client):
    tokens = await (await login(client, {"email": "admin@example.com", "password": "admin123"})).json()
    forged = make_jwt("not-the-secret", {"email": "admin@example.com", "type": "refresh", "exp": int(time.time()) + 60})
    for token in ["garbage", forged, tokens["access_token"]]:
        resp = await refresh(client, token)
        assert resp.status == 401, token
        assert (await resp.json())["error"]["code"] == "AUTH_003"


async def test_refresh_with_bad_json_is_400(client):
    resp = await client.post("/api/v1/auth/refresh", data="nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400


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
