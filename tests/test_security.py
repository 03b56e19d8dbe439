"""`/erpgo security`: attackers found where the real ERPGo leaves them — its audit_logs table (written as
the application writes it), its zerolog lines and a reverse proxy's access log, both printed by real
containers — with ban proposals that, approved, bite on a real nftables firewall; the API container's
security settings; `auth.deactivate_user` / `auth.activate_user` from `/erpgo user`; alert triage."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest

from bot.alerts.triage import triage_checks
from bot.app import build_registry
from bot.core.findings import Status
from bot.settings import load_settings
from demo.services import DockerEngine, ServiceError
from runbooks.security.attacks import SecurityArgs
from runbooks.security.logscan import attack_kinds, parse_combined, scan_access_log
from tests import harness
from tests.fixtures.network import EdgeNetwork
from tests.security_support import (
    POLICY,
    ErpgoAudit,
    approval_for,
    approve,
    can_connect,
    content,
    create_erpgo_audit_schema,
)
from tests.security_support import run as command
from tests.support import eventually

JWT_SECRET = "short-secret-0123456"  # 20 characters: too short, and must never be shown
SPRAYER, BRUTE, BYSTANDER, OLD = "198.51.100.2", "203.0.113.50", "198.51.100.3", "198.51.100.9"
RATE_LIMITED, SQLI, XSS, TRAVERSAL, HAMMER = (
    "203.0.113.77",
    "203.0.113.66",
    "203.0.113.67",
    "203.0.113.68",
    "203.0.113.80",
)
DISTRIBUTED = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"]
ALLOWLIST = "203.0.113.48/29"  # covers BRUTE: over the threshold, never proposed


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
async def attacked_erpgo(fresh_database) -> str:
    """An ERPGo database whose audit_logs show a spray, a brute force, a distributed attack and a lock-out."""
    dsn = fresh_database("erp")
    await create_erpgo_audit_schema(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        erp = ErpgoAudit(conn)
        admin = await erp.add_user("admin@example.com")
        tanaka = await erp.add_user("k.tanaka@example.com")
        await erp.add_user("j.martin@example.com")
        await erp.add_user("e.dubois@example.com", active=False)
        minutes = [timedelta(minutes=m) for m in range(60)]
        for n in range(30):  # one address, 15 accounts: a spray
            await erp.login_failed(f"user{n % 15}@example.com", SPRAYER, "python-requests/2.31.0", minutes[n + 1])
        await erp.login(tanaka, SPRAYER, "python-requests/2.31.0", minutes[2])  # …and one password worked
        for n in range(12):  # one account, hammered
            await erp.login_failed("admin@example.com", BRUTE, "curl/8.5.0", minutes[n + 1])
        for n, ip in enumerate(DISTRIBUTED * 2):  # one account, many addresses
            await erp.login_failed("j.martin@example.com", ip, "Mozilla/5.0", minutes[n + 3])
        for n in range(2):
            await erp.login_failed("p.novak@example.com", BYSTANDER, "Mozilla/5.0 (Macintosh)", minutes[n + 5])
        await erp.lockout(admin, BRUTE, minutes[4])
        for n in range(3):  # the hour before: the rate to compare with
            await erp.login_failed("admin@example.com", BYSTANDER, "Mozilla/5.0", timedelta(minutes=70 + n))
        for n in range(50):  # long ago, outside any window asked for
            await erp.login_failed("admin@example.com", OLD, "curl/7.0", timedelta(hours=5, minutes=n))
    finally:
        await conn.close()
    return dsn


def zerolog(level: str, message: str, **fields: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return f"{stamp} {level} {message} " + " ".join(f"{k}={v}" for k, v in fields.items())


SQLI_VALUES = ("1' OR 1=1", "1 UNION SELECT password_hash FROM users", "x';--")


def input_event(ip: str, event: str, value: str) -> str:
    """ERPGo's input validator's warning, as its console writer prints `.Interface("data", …)`."""
    data = {"client_ip": ip, "event": event, "method": "GET", "path": "/api/v1/products", "value": value}
    return zerolog("WRN", "Input validation security event", data=json.dumps(data, separators=(",", ":")))


API_LINES = (
    [zerolog("INF", "Starting server", port="8080")]
    + [
        zerolog("ERR", "Failed to login user", error='"UNAUTHORIZED: invalid credentials"', email="admin@example.com")
        for _ in range(12)
    ]
    + [
        zerolog("WRN", "Rate limit exceeded for login attempt", email="admin@example.com", ip=RATE_LIMITED)
        for _ in range(12)
    ]
    + [zerolog("WRN", "Login attempt for locked account", email="admin@example.com")]
    + [input_event(SQLI, "Injection pattern detected in query parameter", v) for v in SQLI_VALUES]
    + [
        json.dumps(
            {
                "level": "warn",
                "data": {"client_ip": XSS, "event": "Injection pattern detected in form field", "value": "<script>x"},
                "message": "Input validation security event",
            }
        )
    ]
)


def combined(ip: str, request: str, status: int, agent: str = "Mozilla/5.0") -> str:
    stamp = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - - [{stamp}] "{request}" {status} 512 "-" "{agent}"'


ACCESS_LINES = [
    combined(SQLI, "GET /api/v1/products?q=1'%20OR%201=1 HTTP/1.1", 200, "sqlmap/1.7"),
    combined(SQLI, "GET /api/v1/products?id=1%20UNION%20SELECT%20password_hash%20FROM%20users HTTP/1.1", 500),
    combined(SQLI, "GET /api/v1/orders?id=5;-- HTTP/1.1", 400),
    combined(XSS, "GET /search?q=<script>alert('<!here>')</script> HTTP/1.1", 200),
    combined(XSS, "GET /go?to=javascript:alert(document.cookie) HTTP/1.1", 302),
    combined(TRAVERSAL, "GET /static/../../etc/hosts HTTP/1.1", 404),
    combined(TRAVERSAL, "GET /static/%2e%2e/%2e%2e/secret HTTP/1.1", 404),
    combined(TRAVERSAL, "GET /download?file=/etc/passwd HTTP/1.1", 404),
    combined(BYSTANDER, "GET /api/v1/products HTTP/1.1", 200),
] + [combined(HAMMER, "POST /api/v1/auth/login HTTP/1.1", 401, "Go-http-client/1.1") for _ in range(25)]


def printing(lines: list[str]) -> str:
    """A container script that prints `lines` once, then stays up."""
    return "cat <<'EOF'\n" + "\n".join(lines) + "\nEOF\nexec sleep 100000"


@pytest.fixture
def containers(docker_engine: DockerEngine, names) -> dict:
    """An API container (its env holds the security settings) and a proxy printing an access log."""
    api, proxy = names("erpgo-api"), names("proxy")
    env = ["-e", f"JWT_SECRET={JWT_SECRET}", "-e", "RATE_LIMIT_ENABLED=false", "-e", "JWT_EXPIRY=72h"]
    docker_engine.run(api, printing(API_LINES), run_args=env)
    docker_engine.run(proxy, printing(ACCESS_LINES))
    for name, count in ((api, len(API_LINES)), (proxy, len(ACCESS_LINES))):
        eventually_logged(docker_engine, name, count)
    return {"docker_host": docker_engine.host, "erpgo_containers": api, "erpgo_access_log_container": proxy}


def eventually_logged(engine: DockerEngine, name: str, count: int) -> None:
    from tests.support import eventually_sync

    eventually_sync(lambda: len(engine.docker("logs", name).splitlines()) >= count, timeout=10, what=f"{name} printing")


@pytest.fixture
def security_settings(fresh_database, policy_file, attacked_erpgo, containers, edge_network: EdgeNetwork) -> dict:
    return {
        "bot_database_url": fresh_database("bot"),
        "chatops_policy_file": policy_file,
        "erpgo_database_url": attacked_erpgo,
        "erpgo_firewall": "nftables",
        "erpgo_firewall_command": " ".join(edge_network.nft_command),
        "erpgo_ban_allowlist": ALLOWLIST,
        **containers,
    }


def everything_sent(bot) -> str:
    return json.dumps([call.args for call in bot.slack.calls], ensure_ascii=False)


async def test_security_ranks_the_attackers_and_an_approved_ban_stops_one(start_bot, security_settings, edge_network):
    bot = await start_bot(**security_settings)

    text, approvals = await command(bot, "security")

    # audit_logs, by address: the spray first, its user agent, the login that worked
    assert "Failed logins" in text and "CRITICAL" in text
    assert f"{SPRAYER}: 30 failed logins, 15 accounts (a spray)" in text and "python-requests/2.31.0" in text
    assert "and 1 successful login from it: possible compromise" in text
    assert f"{BRUTE}: 12 failed logins, 1 account —" in text and "curl/8.5.0" in text
    assert "52 failed logins in the last 1h from 7 addresses — 3 in the window before (×17.3): a spike" in text
    assert OLD not in text, "five hours ago is outside the window"
    # by account, and lock-outs
    assert "j.martin@example.com: 8 failed logins from 4 addresses (a distributed attack)" in text
    assert "admin@example.com: 1 lock-out" in text
    # the API's log lines: no IP on a failed login, one on a rate-limited attempt
    assert "carry no client IP, only the e-mail" in text and "admin@example.com ×12" in text
    assert f"{RATE_LIMITED}: 12 rate-limited login attempts" in text
    # the proxy's access log, each pattern, examples escaped
    assert f"{SQLI}: 3 requests — 3 SQL injection" in text
    assert f"{XSS}: 2 requests — 2 XSS" in text
    assert f"{TRAVERSAL}: 3 requests — 3 path traversal" in text
    assert f"{HAMMER}: 25 requests (401 ×25)" in text
    sent = everything_sent(bot)
    assert "<!here>" not in sent and "<script" not in sent and "&lt;script&gt;alert" in sent
    assert "`GET /go?to=javascript:alert(document.cookie) HTTP/1.1`" in sent
    # the settings: rate limiting off, the secret judged by its length, never shown
    assert "rate limiting OFF" in text and "JWT_SECRET too short (20 characters)" in text
    assert "tokens valid 72h" in text and "5 attempts before a 15m lock-out" in text
    assert JWT_SECRET not in sent

    # one proposal per address over a threshold, none for the allowlisted or the bystander
    proposed = {
        ip
        for ip in (SPRAYER, RATE_LIMITED, SQLI, TRAVERSAL, HAMMER)
        if any(f"Ban {ip} for 1h" in content(m) for m in approvals)
    }
    assert proposed == {SPRAYER, RATE_LIMITED, SQLI, TRAVERSAL, HAMMER}, [content(m).splitlines()[0] for m in approvals]
    assert len(approvals) == 5
    assert (
        f"{BRUTE}: 12 failed logins for 1 account in the last 1h (audit_logs) — not proposed: "
        f"{BRUTE}/32 overlaps {ALLOWLIST}, in ERPGO_BAN_ALLOWLIST" in text
    )
    spray_approval = content(approval_for(approvals, bot, f"Ban {SPRAYER} for 1h"))
    assert RATE_LIMITED not in spray_approval, "each approval shows the evidence against its own address"
    spray = approval_for(approvals, bot, f"Ban {SPRAYER} for 1h on nftables")
    assert "30 failed logins for 15 accounts in the last 1h (audit_logs)" in content(spray)

    assert await can_connect(edge_network, SPRAYER)
    decided = await approve(bot, spray)

    assert f"executed: Banned {SPRAYER} on nftables" in decided
    assert not await can_connect(edge_network, SPRAYER)
    assert await can_connect(edge_network, BYSTANDER)
    again, approvals = await command(bot, "security")
    assert f"{SPRAYER}: 30 failed logins for 15 accounts in the last 1h (audit_logs) — already banned" in again
    assert not any(f"Ban {SPRAYER} " in content(m) for m in approvals)


async def test_input_events_a_spray_and_a_limiter_that_never_starts_are_not_green(attacked_erpgo, containers):
    found = {
        f.component: f
        for f in await harness.run_words("security", load_settings(erpgo_database_url=attacked_erpgo, **containers))
    }
    api = found[f"API log {containers['erpgo_containers']}"]
    assert api.data["input_events"] == {SQLI: {"SQL injection": 3}, XSS: {"XSS": 1}}
    assert f"{SQLI}: 3 input validation events refused by the API — 3 SQL injection" in api.details
    assert f"{XSS}: 1 input validation event refused by the API — 1 XSS" in api.details
    assert api.status is Status.WARN and "1 attempt on locked accounts" in api.title
    targeted = found["Targeted accounts"]
    assert targeted.status is Status.WARN and f"a password spray from {SPRAYER}" in targeted.title
    assert found["Failed logins"].status is not Status.OK


async def test_rate_limiting_enabled_is_said_to_be_never_started(docker_engine, names):
    api = names("erpgo-api")
    docker_engine.run(
        api, "exec sleep 100000", run_args=["-e", "RATE_LIMIT_ENABLED=true", "-e", "JWT_SECRET=" + "s" * 40]
    )
    settings = load_settings(docker_host=docker_engine.host, erpgo_containers=api)
    [finding] = await harness.run_args("security", SecurityArgs(), settings, only=("security_settings",))
    assert finding.status is Status.WARN and "rate limiting never started" in finding.title
    assert "security coordinator leaves that as a TODO" in " ".join(finding.details)


async def test_window_and_arguments(start_bot, security_settings):
    bot = await start_bot(**security_settings)
    text, _ = await command(bot, "security 600")
    assert f"{OLD}: 50 failed logins" in text and "the last 10h" in text
    text, _ = await command(bot, "security 0")
    assert "minutes must be between 1 and 1440" in text
    text, [message] = await command(bot, f"ban {SPRAYER} 2h spray")
    assert "ERPGo's audit_logs, last 24 h: 30 failed logins from it, for 15 accounts" in text
    assert f"Ban {SPRAYER} for 2h on nftables" in content(message)


async def test_user_proposes_deactivation_on_compromise_and_reactivation(
    start_bot, fresh_database, policy_file, attacked_erpgo
):
    bot = await start_bot(
        bot_database_url=fresh_database("bot"), chatops_policy_file=policy_file, erpgo_database_url=attacked_erpgo
    )
    _, approvals = await command(bot, "user k.tanaka@example.com")
    [message] = approvals
    assert "Deactivate k.tanaka@example.com" in content(message)
    assert (
        f"possible compromise: a successful login in the last 24 hours from {SPRAYER}, which failed 30 logins"
        in content(message)
    )

    assert "executed: Deactivated k.tanaka@example.com" in await approve(bot, message)
    conn = await asyncpg.connect(attacked_erpgo)
    try:
        assert await conn.fetchval("SELECT is_active FROM users WHERE email = 'k.tanaka@example.com'") is False
        _, [message] = await command(bot, "user k.tanaka@example.com")
        assert "Reactivate k.tanaka@example.com" in content(message)
        assert "executed: Reactivated k.tanaka@example.com" in await approve(bot, message, "U0CAROL")
        assert await conn.fetchval("SELECT is_active FROM users WHERE email = 'k.tanaka@example.com'") is True

        # the same account, re-checked when approved: renamed in between, nothing is done
        _, [message] = await command(bot, "user e.dubois@example.com")
        await conn.execute("UPDATE users SET email = 'emma.dubois@example.com' WHERE email = 'e.dubois@example.com'")
        decided = await approve(bot, message)
        assert "nothing done: user" in decided and "is now emma.dubois@example.com, not e.dubois@example.com" in decided
        assert await conn.fetchval("SELECT is_active FROM users WHERE email = 'emma.dubois@example.com'") is False
    finally:
        await conn.close()
    _, approvals = await command(bot, "user j.martin@example.com")
    assert approvals == [], "attacked, but nothing got in: nothing to deactivate"


async def test_a_ban_inside_a_docker_network_of_the_deployment_is_refused(
    start_bot, fresh_database, policy_file, docker_engine, names, edge_network
):
    subnet = f"198.18.{os.getpid() % 250}.0/24"
    network = f"sec-net-{os.getpid() % 100000}"
    try:
        docker_engine.docker("network", "create", "--internal", "--subnet", subnet, network)
    except ServiceError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"this engine cannot create a bridge network: {exc}")
        pytest.skip(f"this engine cannot create a bridge network: {exc}")
    api = names("erpgo-api")
    try:
        docker_engine.run(api, "exec sleep 100000", network=network)
        bot = await start_bot(
            bot_database_url=fresh_database("bot"),
            chatops_policy_file=policy_file,
            docker_host=docker_engine.host,
            erpgo_containers=api,
            erpgo_firewall="nftables",
            erpgo_firewall_command=" ".join(edge_network.nft_command),
        )
        inside = subnet.replace(".0/24", ".7")
        text, approvals = await command(bot, f"ban {inside}")
        assert f"overlaps {subnet}, a network of the deployment (Docker)" in text and approvals == []
        text, approvals = await command(bot, "ban 198.51.100.2")
        assert len(approvals) == 1, "other addresses may still be banned"
    finally:
        docker_engine.remove(api)
        docker_engine.docker("network", "rm", network)


async def test_alert_triage_runs_the_security_checks_and_proposes_bans(start_bot, security_settings):
    token = "am-webhook-token-security-0123"
    bot = await start_bot(
        **security_settings,
        alert_webhook_token=token,
        erpgo_alert_channel="C0ALERTS",
        erpgo_slack_channel_interval=0.05,
    )
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighFailedLoginRate"}',
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "HighFailedLoginRate"},
        "commonLabels": {"alertname": "HighFailedLoginRate", "severity": "warning"},
        "commonAnnotations": {"summary": "failed logins above 10/min"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighFailedLoginRate", "severity": "warning"},
                "annotations": {},
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "failed-logins",
            }
        ],
    }
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(bot.base_url + "/alerts/alertmanager", json=body, headers=headers) as response:
            assert response.status == 200

    async def triaged() -> list[dict]:
        await bot.settle()
        heads = bot.slack.channel_messages("C0ALERTS")
        thread = bot.slack.thread("C0ALERTS", heads[0]["ts"]) if heads else []
        approvals = [m for m in thread if bot.slack.buttons(m)]
        # every proposal, paced one a second: the spray's is not necessarily first
        return approvals if any(f"Ban {SPRAYER} " in content(m) for m in approvals) else []

    approvals = await eventually(triaged, timeout=30, what="ban proposals in the alert's thread")
    head = bot.slack.channel_messages("C0ALERTS")[0]
    thread = [content(m) for m in bot.slack.thread("C0ALERTS", head["ts"])]
    assert any("Triage: HighFailedLoginRate" in t and "(a spray)" in t for t in thread), thread
    assert any(
        f"Ban {SPRAYER} for 1h on nftables" in content(m) and "Requested by alertmanager" in content(m)
        for m in approvals
    )


def test_security_alerts_map_to_the_security_checks():
    registry = build_registry()
    for alertname in (
        "HighFailedLoginRate",
        "HighAuthFailureRate",
        "CriticalAuthFailureRate",
        "UnauthorizedAccessAttempts",
        "SuspiciousAPIUsage",
        "DataExfiltrationDetection",
    ):
        assert [c.name for c in triage_checks(registry, [alertname], {})] == ["attack_evidence", "security_settings"]


@pytest.mark.parametrize(
    "request_line, kind",
    [
        ("GET /?q=%27%20or%20%271%27%3D%271 HTTP/1.1", "SQL injection"),
        ("GET /?q=1+UNION+ALL+SELECT+1,2 HTTP/1.1", "SQL injection"),
        ("GET /?q=1%252e%252e%252fetc HTTP/1.1", "path traversal"),
        ("GET /?q=\\x22><script>x</script> HTTP/1.1", "XSS"),
        ("GET /?next=JaVaScRiPt:alert(1) HTTP/1.1", "XSS"),
    ],
)
def test_encoded_attack_patterns_are_recognised(request_line, kind):
    assert kind in attack_kinds(request_line)


def test_ordinary_requests_are_not_attacks_and_other_formats_are_not_parsed():
    assert attack_kinds("GET /api/v1/orders?status=SHIPPED&page=2 HTTP/1.1") == []
    assert attack_kinds("GET /docs/v1.2/index.html HTTP/1.1") == []
    assert parse_combined("GET /x 200 12ms") is None
    summary = scan_access_log([combined("198.51.100.5", "GET / HTTP/1.1", 200), "garbage"])
    assert summary.parsed == 1 and summary.lines == 2
