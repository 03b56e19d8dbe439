"""The real ERPGo's log lines: zerolog's console and JSON writers, Go panics, gin's recovery and access lines —
parsed, counted, and read by `/erpgo logs` from a container that prints them."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid

import pytest

from bot.core.findings import Status
from runbooks.application import scan
from runbooks.loglines import parse, strip_ansi
from tests.db_support import run_verb

ESC = "\x1b"
CONSOLE_FAILED = (
    '2025-11-30T01:02:03.000Z ERR Failed to login user error="UNAUTHORIZED: invalid credentials" email=user@example.com'
)
COLOURED_FAILED = (
    f"{ESC}[90m2025-11-30T01:02:04.000Z{ESC}[0m {ESC}[31mERR{ESC}[0m Failed to login user "
    f'{ESC}[36merror={ESC}[0m{ESC}[31m"UNAUTHORIZED: invalid credentials"{ESC}[0m '
    f"{ESC}[36memail={ESC}[0muser@example.com"
)
DEV_FAILED = (
    "2025-11-30T01:02:05.000Z ERROR handlers/simple_auth_handler.go:139 | Failed to login user "
    'error="UNAUTHORIZED: invalid credentials" email:J.MARTIN@EXAMPLE.COM'
)
JSON_FAILED = json.dumps(
    {
        "level": "error",
        "error": "UNAUTHORIZED: invalid credentials",
        "email": "j.martin@example.com",
        "time": "2025-11-30T01:02:06Z",
        "message": "Failed to login user",
    },
    separators=(",", ":"),
)
RATE_LIMITED = (
    "2025-11-30T01:02:07.000Z WRN Rate limit exceeded for login attempt email=admin@example.com ip=203.0.113.66"
)
RATE_LIMITED_JSON = json.dumps(
    {
        "level": "warn",
        "ip": "203.0.113.66",
        "email": "root@example.com",
        "time": "2025-11-30T01:02:08Z",
        "message": "Rate limit exceeded for login attempt",
    }
)
LOCKED = (
    "2025-11-30T01:02:09.000Z WRN Login attempt for locked account email=admin@example.com "
    "unlock_time=2025-11-30T01:17:09Z"
)
RECORD_FAILED = (
    '2025-11-30T01:02:10.000Z ERR Failed to record failed login attempt error="dial tcp 172.18.0.3:6379: '
    'connect: connection refused" email=admin@example.com'
)
ACCESS_OK = "2025-11-30T01:02:11.000Z INF Request completed duration=503 method=GET path=/api/v1/products status=200"
ACCESS_500_JSON = json.dumps(
    {
        "level": "error",
        "method": "GET",
        "path": "/api/v1/orders/7",
        "status": 500,
        "duration": 12.5,
        "message": "Request completed",
    }
)
GIN_500 = '[GIN] 2025/11/30 - 01:02:12 | 500 |    1.234567ms |      172.18.0.1 | GET      "/api/v1/orders/7"'
REQUEST_PANIC = (
    '2025-11-30T01:02:13.000Z ERR Request panic panic="runtime error: index out of range [3] with length 3" '
    "path=/api/v1/orders/7"
)
GIN_RECOVERY = [
    "2025/11/30 01:02:14 [Recovery] 2025/11/30 - 01:02:14 panic recovered:",
    "runtime error: invalid memory address or nil pointer dereference",
    "/usr/local/go/src/runtime/panic.go:261 (0x44c6b2)",
]
GO_PANIC = [
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x8c4f2a]",
    "",
    "goroutine 42 [running]:",
    "erpgo/internal/interfaces/http/handlers.(*OrderHandler).GetOrder(0xc0001a2b40, 0xc000412300)",
    "\t/app/internal/interfaces/http/handlers/order_handler.go:142 +0x1a4",
]
STARTING = "2025-11-30T01:02:00.000Z INF Starting ERPGo API server port=8080"


# --- the parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, writer, level",
    [
        (CONSOLE_FAILED, "console", "error"),
        (COLOURED_FAILED, "console", "error"),
        (DEV_FAILED, "console", "error"),
        (JSON_FAILED, "json", "error"),
    ],
)
def test_a_failed_login_reads_the_same_in_every_writer(line, writer, level):
    parsed = parse(line)
    assert (parsed.writer, parsed.level, parsed.message) == (writer, level, "Failed to login user")
    assert parsed.fields["error"] == "UNAUTHORIZED: invalid credentials"
    assert parsed.fields["email"].lower() in ("user@example.com", "j.martin@example.com")
    assert ESC not in parsed.text


def test_fields_and_statuses_of_access_lines():
    assert parse(RATE_LIMITED).fields == {"email": "admin@example.com", "ip": "203.0.113.66"}
    assert parse(ACCESS_OK).status() == 200 and parse(ACCESS_OK).fields["duration"] == "503"
    assert parse(ACCESS_500_JSON).status() == 500
    gin = parse(GIN_500)
    assert (gin.writer, gin.level, gin.status()) == ("plain", None, None)
    assert parse(REQUEST_PANIC).fields["panic"] == "runtime error: index out of range [3] with length 3"


def test_lines_that_are_not_zerologs_keep_their_text():
    for line in ["panic: runtime error: boom", "goroutine 7 [running]:", "", "{not json", '{"no":"level"}']:
        parsed = parse(line)
        assert parsed.writer == "plain" and parsed.message == line.strip()
    assert strip_ansi(f"{ESC}[1m{ESC}[31mERR{ESC}[0m") == "ERR"


def test_scan_counts_failed_logins_per_email_and_rate_limits_per_address():
    lines = [
        strip_ansi(line)
        for line in [
            STARTING,
            CONSOLE_FAILED,
            COLOURED_FAILED,
            DEV_FAILED,
            JSON_FAILED,
            RATE_LIMITED,
            RATE_LIMITED_JSON,
            LOCKED,
            RECORD_FAILED,
            ACCESS_OK,
        ]
    ]
    found = scan(lines)
    assert found["failed_login"] == 4
    assert dict(found["failed_by_email"]) == {"user@example.com": 2, "j.martin@example.com": 2}
    assert dict(found["rate_limited_by_ip"]) == {"203.0.113.66": 2}
    assert dict(found["rate_limited_emails"]) == {"admin@example.com": 1, "root@example.com": 1}
    assert dict(found["locked"]) == {"admin@example.com": 1}
    # the limiter failing to reach Redis is a real error, not one more failed login
    assert found["error"] == [8]
    assert found["5xx"] == [] and found["panic"] == []  # "duration=503" is not a 5xx


def test_scan_finds_5xx_and_panics_in_every_shape_once_each():
    lines = [ACCESS_OK, ACCESS_500_JSON, GIN_500, REQUEST_PANIC, *GIN_RECOVERY, *GO_PANIC]
    found = scan(lines)
    assert found["5xx"] == [1, 2]
    assert found["panic"] == [3, 4, 7], "the zerolog panic line, gin's recovery (with its error below), Go's panic"
    assert found["trace"] == [10]


# --- /erpgo logs on a container that prints them -------------------------------------------------


def printing(lines: list[str], stderr: list[str]) -> str:
    """A shell script that prints `lines` to stdout, `stderr` to stderr, then waits."""
    out = " ".join(shlex.quote(line) for line in lines)
    err = f"printf '%s\\n' {' '.join(shlex.quote(line) for line in stderr)} >&2; " if stderr else ""
    return f"trap 'exit 0' TERM; printf '%s\\n' {out}; {err}echo printed; sleep 100000 & wait $!"


@pytest.fixture(scope="module")
def zerolog_api(docker_engine):
    """A container printing the real API's lines, in both writers; returns (DOCKER_HOST, its name)."""
    name = f"erpgo-api-zerolog-{uuid.uuid4().hex[:6]}"
    stdout = [
        STARTING,
        CONSOLE_FAILED,
        COLOURED_FAILED,
        DEV_FAILED,
        JSON_FAILED,
        CONSOLE_FAILED,
        RATE_LIMITED,
        RATE_LIMITED_JSON,
        RATE_LIMITED,
        ACCESS_OK,
        ACCESS_500_JSON,
        REQUEST_PANIC,
        RECORD_FAILED,
    ]
    docker_engine.run(name, printing(stdout, [*GIN_RECOVERY, *GO_PANIC]))
    deadline = time.monotonic() + 20
    while "printed" not in docker_engine.docker("logs", name):
        assert time.monotonic() < deadline, "the container never printed its lines"
        time.sleep(0.1)  # polling the container's output, not guessing how long it takes
    yield docker_engine.host, name
    docker_engine.remove(name)


async def test_logs_counts_the_real_apis_failed_logins_per_email(zerolog_api):
    host, name = zerolog_api
    [finding] = await run_verb(f"logs {name} 15", None, docker_host=host, erpgo_containers=name)
    assert finding.component == f"Logs {name}" and finding.status is Status.CRIT
    data = finding.data
    assert data["failed_logins"] == 5
    assert data["failed_logins_by_email"] == {"user@example.com": 3, "j.martin@example.com": 2}
    assert data["rate_limited_logins"] == 3 and data["rate_limited_by_ip"] == {"203.0.113.66": 3}
    assert (data["5xx"], data["panics"], data["stack_traces"]) == (1, 3, 1)
    assert data["error_lines"] >= 2  # the 500 access line and the limiter that cannot reach Redis
    assert "5 failed logins" in finding.title and "3 rate-limited" in finding.title
    details = "\n".join(finding.details)
    assert "failed logins: 5 — user@example.com ×3, j.martin@example.com ×2" in details
    assert "rate-limited login attempts: 3 — ip 203.0.113.66 ×3" in details
    assert "panic: runtime error: invalid memory address" in "\n".join(finding.evidence)
    assert all(ESC not in line for line in finding.evidence)


async def test_failed_logins_alone_leave_the_finding_green_until_they_pile_up(docker_engine):
    name = f"erpgo-api-logins-{uuid.uuid4().hex[:6]}"
    docker_engine.run(name, printing([STARTING, CONSOLE_FAILED, JSON_FAILED], []))
    try:
        deadline = time.monotonic() + 20
        while "printed" not in docker_engine.docker("logs", name):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        [finding] = await run_verb(f"logs {name}", None, docker_host=docker_engine.host, erpgo_containers=name)
    finally:
        docker_engine.remove(name)
    assert finding.status is Status.OK
    assert finding.title.endswith("no 5xx, panics or errors in 4 lines; 2 failed logins")
    assert finding.data["failed_logins_by_email"] == {"user@example.com": 1, "j.martin@example.com": 1}


async def test_the_demos_api_container_prints_what_logs_reads(docker_engine):
    from demo.launch import ERPGO_API_SCRIPT

    name = f"erpgo-api-demo-{uuid.uuid4().hex[:6]}"
    docker_engine.run(name, ERPGO_API_SCRIPT)
    try:
        deadline = time.monotonic() + 20
        while True:  # until its first round (stdout and stderr) has been read back
            [finding] = await run_verb(f"logs {name}", None, docker_host=docker_engine.host, erpgo_containers=name)
            if finding.data.get("stack_traces") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        docker_engine.remove(name)
    assert finding.status is Status.CRIT and finding.data["panics"] >= 2 and finding.data["stack_traces"] >= 1
    assert finding.data["failed_logins_by_email"]["admin@example.com"] >= 3
    assert finding.data["rate_limited_by_ip"]["203.0.113.66"] >= 4
