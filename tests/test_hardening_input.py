"""What an adversary (or bad luck) sends the bot, one finding at a time: forged and malformed Slack
requests, numbers in other scripts, control characters, huge texts, poisonous webhooks, forged
clickers and ids, a Slack failing auth.test at start, a Docker engine that does not answer."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import secrets
import socket
import time
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.core.engine import run_checks
from bot.core.findings import Proposal, Status
from bot.core.logs import configure_logging, log
from bot.core.parse import ascii_int
from bot.core.registry import UsageError
from bot.local.slack import LocalSlack
from bot.local.text import render_text
from bot.settings import ConfigError, load_settings
from bot.slack.render import mention
from bot.targets import Targets
from runbooks.application import LogsArgs
from tests import harness
from tests.support import eventually

TOKEN = "am-webhook-token-hardening-0123"
CHANNEL = "C0OPS"
WEBHOOK = "/alerts/alertmanager"
EVERYONE_APPROVES = """
verbs:
  "*": [everyone]
actions:
  "db.*":
    approvers: [everyone]
    self_approval: true
"""


# ---------------------------------------------------------------------- helpers


@pytest.fixture
def logs(capsys):
    """The bot's log lines (JSON, as in production) since the last call."""
    configure_logging("info")
    capsys.readouterr()

    def read() -> list[dict]:
        out = capsys.readouterr()
        lines = [line for line in (out.out + out.err).split("\n") if line.strip()]
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                parsed.append({"level": "unparsed", "event": line})
        return parsed

    return read


def errors_in(lines: list[dict]) -> list[dict]:
    return [
        line
        for line in lines
        if line.get("level") in ("error", "critical", "exception", "unparsed") or "Traceback" in json.dumps(line)
    ]


def sign(secret: str, body: bytes, timestamp: str | None = None) -> dict:
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + digest}


async def post_raw(url: str, body: bytes, headers: dict) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def ack_text(result) -> str:
    return render_text(result.json) if isinstance(result.json, dict) else result.body_text


def everything_posted(slack: LocalSlack) -> str:
    """Every message, update, ephemeral and response_url answer the bot sent, as Slack got it."""
    sent = [
        {key: c.args.get(key) for key in ("text", "blocks", "attachments")}
        for c in slack.calls
        if c.method.startswith("chat.") or c.method in ("response_url", "ack")
    ]
    return json.dumps(sent, ensure_ascii=False)


def forged_click(slack: LocalSlack, *, value: str = "1", user: object = "U0BOB", drop_user: bool = False) -> bytes:
    """A block_actions payload for an Approve button, signed as Slack would send it."""
    payload: dict = {
        "type": "block_actions",
        "user": {"id": user, "username": "who", "team_id": slack.team_id},
        "api_app_id": slack.app_id,
        "token": slack.verification_token,
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": CHANNEL},
        "trigger_id": "1.2.3",
        "team": {"id": slack.team_id, "domain": slack.team_domain},
        "channel": {"id": CHANNEL, "name": "ops"},
        "response_url": slack.response_url(channel=CHANNEL, user=user if isinstance(user, str) else "U0NOBODY"),
        "actions": [{"action_id": "approval.approve", "block_id": "b", "type": "button", "value": value}],
    }
    if drop_user:
        del payload["user"]
    return urlencode({"payload": json.dumps(payload)}).encode()


async def send_signed(bot, body: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(bot.slack.signing_secret, body)}
    return await post_raw(bot.slack.bot_url, body, headers)


def webhook(key: str = '{}:{alertname="Hardening"}', fingerprint: str = "hard-1", **alert) -> dict:
    return {
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "Hardening"},
        "commonLabels": {"alertname": "Hardening", "severity": "warning"},
        "commonAnnotations": {"summary": "hardening"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Hardening", "instance": fingerprint},
                "annotations": {},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint,
            }
            | alert
        ],
    }


async def post_webhook(bot, body: bytes, headers: dict | None = None) -> tuple[int, str]:
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", **(headers or {})}
    return await post_raw(bot.base_url + WEBHOOK, body, sent)


@pytest.fixture
def alert_bot(start_bot, fresh_database, tmp_path):
    async def factory(**overrides):
        return await start_bot(
            bot_database_url=fresh_database("hard"),
            alert_webhook_token=TOKEN,
            erpgo_alert_channel="C0ALERTS",
            erpgo_slack_channel_interval=0.01,
            docker_host=f"unix://{tmp_path}/no-docker.sock",
            **overrides,
        )

    return factory


# ---------------------------------------------------------------------- 4: only watched containers


async def test_logs_of_a_container_that_is_not_watched_are_never_read(start_bot, docker_engine, names):
    vault = names("vault")
    docker_engine.run(vault, "echo 'error: unseal key=s3cr3t-vault-unseal-key'; sleep 100000")
    bot = await start_bot(docker_host=docker_engine.host, erpgo_containers="erpgo-api,postgres,redis")
    result = await bot.command(f"logs {vault} 30")
    assert result.status == 200
    answer = ack_text(result)
    assert f"{vault}` is not a watched container; watched: erpgo-api, postgres, redis" in answer
    assert bot.slack.channel_messages(CHANNEL) == []
    assert "s3cr3t-vault-unseal-key" not in everything_posted(bot.slack)
    # and the check itself (erpgo-bot check, triage) refuses it too
    targets = Targets(bot.settings)
    try:
        [finding] = await run_checks(
            bot.runtime.registry.verbs["logs"].checks, harness.context(bot.settings, targets, LogsArgs(vault))
        )
    finally:
        await targets.close()
    assert finding.status is Status.SKIPPED and "not a watched container" in finding.title
    assert "s3cr3t" not in json.dumps(finding.to_dict())


async def test_with_a_compose_project_its_containers_are_the_watched_ones(start_bot, docker_engine, names):
    project, member, outsider = names("proj"), names("web"), names("other")
    docker_engine.run(
        member, "echo 'GET /x 503 1ms'; sleep 100000", run_args=["--label", f"com.docker.compose.project={project}"]
    )
    docker_engine.run(outsider, "echo 'key=outsider-secret'; sleep 100000")
    bot = await start_bot(docker_host=docker_engine.host, erpgo_compose_project=project)
    refused = await bot.command(f"logs {outsider}")
    assert f"is not a watched container; watched: {member}" in ack_text(refused)
    await bot.command(f"logs {member} 30")
    [head] = bot.slack.channel_messages(CHANNEL)
    assert f"Logs {member}" in render_text(head)
    assert "outsider-secret" not in everything_posted(bot.slack)


# ---------------------------------------------------------------------- 6: the Slack request, guarded


UNSIGNED_BODIES = [b"payload=[]", b"payload={x", b"[1, 2]", b"\xff\xfe\x00binary", b"command=/erpgo&text=health"]
BAD_HEADERS = [
    {},
    {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": "1.5", "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "é" * 32},
    {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
]


async def test_unsigned_or_badly_signed_requests_are_401_and_quiet(start_bot, logs):
    bot = await start_bot()
    logs()
    statuses = []
    for _ in range(10):
        for body in UNSIGNED_BODIES:
            for headers in BAD_HEADERS:
                sent = {"Content-Type": "application/x-www-form-urlencoded"}
                sent.update({k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()})
                status, _ = await post_raw(bot.slack.bot_url, body, sent)
                statuses.append(status)
    assert set(statuses) == {401}, sorted(set(statuses))
    lines = logs()
    assert errors_in(lines) == []
    warnings = [line for line in lines if line.get("event") == "slack_requests_rejected"]
    assert len(warnings) == 1 and warnings[0]["count"] == 1, warnings  # the rest are counted, not logged
    assert bot.slack.channel_messages(CHANNEL) == []


@pytest.mark.parametrize(
    "body",
    [
        b"payload=[]",
        b"payload={x",
        b"payload=%7B%22type%22%3A5%7D",  # {"type": 5}
        b'{"type": "block_actions", "actions": []}',
        b'{"type": "event_callback", "event": null, "is_ext_shared_channel": true}',
        urlencode(
            {"payload": json.dumps({"type": "block_actions", "user": 7, "actions": [{"action_id": 1}]})}
        ).encode(),
        b"\xff\xfe\x00binary",
    ],
)
async def test_signed_but_malformed_bodies_are_400(start_bot, logs, body):
    bot = await start_bot()
    logs()
    status, _ = await send_signed(bot, body)
    assert status == 400
    await bot.settle()
    assert errors_in(logs()) == []


async def test_an_oversized_body_is_413(start_bot):
    bot = await start_bot()
    body = urlencode({"command": "/erpgo", "text": "x" * (1024 * 1024)}).encode()
    status, _ = await send_signed(bot, body)
    assert status == 413


# ---------------------------------------------------------------------- 7: numbers in ASCII digits only


def test_ascii_int_takes_ascii_digits_only():
    assert ascii_int("42", min=1, max=100, what="n") == 42
    assert ascii_int("-7", min=-10, max=10, what="n") == -7
    for text in ("²", "①", "٩", "1" * 30, "1\x00", " 7", "7 ", "+7", "1_000", "0x1f", "", "-7", "٤٢"):
        with pytest.raises(UsageError):
            ascii_int(text, min=0, max=10**18, what="n")


def test_digits_of_other_scripts_in_log_lines_and_durations_are_not_numbers():
    from bot.core.units import parse_duration
    from runbooks.loglines import parse

    assert parse('{"level":"error","message":"x","status":"²²²"}').status() is None  # int("²²²") raised
    assert parse('{"level":"error","message":"x","status":"503"}').status() == 503
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("٣h")


@pytest.mark.parametrize(
    "text",
    ["logs ²", "logs ①", "logs ٩", "audit ²", "audit ٩", "db explain ٩", "db long-queries ١٢", "security ²"],
)
async def test_numbers_in_other_scripts_get_a_usage_answer(start_bot, logs, text):
    bot = await start_bot()
    logs()
    result = await bot.command(text)
    assert result.status == 200
    assert "Usage:" in ack_text(result) or "takes one number" in ack_text(result) or "e.g. `/erpgo" in ack_text(result)
    assert bot.slack.channel_messages(CHANNEL) == []
    assert errors_in(logs()) == []


async def test_forged_button_values_are_refused_to_the_clicker(start_bot, fresh_database, logs):
    bot = await start_bot(bot_database_url=fresh_database("btn"))
    logs()
    for value in ("²", "1" * 30, "1\x00", "٩", "-1", " 1", ""):
        bot.slack.ephemerals.clear()
        status, _ = await send_signed(bot, forged_click(bot.slack, value=value))
        assert status == 200
        await bot.settle()
        told = [render_text(e) for e in bot.slack.ephemerals if e["user"] == "U0BOB"]
        assert any("does not name an approval" in t for t in told), (value, told)
    assert errors_in(logs()) == []


# ---------------------------------------------------------------------- 8: a poison notification alone


@pytest.mark.parametrize(
    "starts_at", ["9999-12-31T23:59:59-01:00", "2025-11-30T01:00:00+23:59", "1000-01-01T00:00:00Z"]
)
async def test_a_time_stamp_out_of_range_is_400_and_its_batch_mates_are_stored(alert_bot, logs, starts_at):
    bot = await alert_bot()
    logs()
    poison = webhook(key="{}:{poison}", fingerprint="poison", startsAt=starts_at)
    normal = [webhook(key=f"{{}}:{{n{i}}}", fingerprint=f"n{i}") for i in range(20)]
    answers = await asyncio.gather(
        *(post_webhook(bot, json.dumps(h).encode()) for h in [*normal[:10], poison, *normal[10:]])
    )
    statuses = [status for status, _ in answers]
    assert statuses[10] == 400 and "startsAt" in answers[10][1]
    assert statuses[:10] + statuses[11:] == [200] * 20
    lines = logs()
    assert any(line.get("group_key") == "{}:{poison}" for line in lines if line.get("level") == "warning")
    assert errors_in(lines) == []


async def test_a_notification_the_database_refuses_is_400_and_its_batch_mates_are_stored(alert_bot, logs):
    bot = await alert_bot()
    logs()
    # a groupKey over PostgreSQL's btree limit (2704 bytes): valid JSON and schema, never storable
    huge_key = secrets.token_urlsafe(3000)[:4000]
    poison = webhook(key=huge_key, fingerprint="poison")
    normal = [webhook(key=f"{{}}:{{m{i}}}", fingerprint=f"m{i}") for i in range(20)]
    answers = await asyncio.gather(
        *(post_webhook(bot, json.dumps(h).encode()) for h in [*normal[:10], poison, *normal[10:]])
    )
    statuses = [status for status, _ in answers]
    assert statuses[10] == 400 and "cannot be stored" in answers[10][1]
    assert statuses[:10] + statuses[11:] == [200] * 20
    # and alone, again: still a 400 (Alertmanager does not retry it), never a 5xx
    assert (await post_webhook(bot, json.dumps(poison).encode()))[0] == 400
    lines = logs()
    assert any(line.get("event") == "alert_not_storable" and line.get("group_key") == huge_key[:200] for line in lines)
    assert errors_in(lines) == []


async def test_a_webhook_nested_200000_deep_is_400_and_the_bot_takes_the_next(alert_bot, logs):
    bot = await alert_bot()
    logs()
    nested = b"[" * 200_000 + b"]" * 200_000
    inside = b'{"version": "4", "groupKey": "{}:{deep}", "extra": ' + nested + b"}"
    status, text = await post_webhook(bot, inside)
    assert status == 400 and "nested too deeply" in text, text
    status, text = await post_webhook(bot, nested)
    assert status == 400 and "must be a JSON object" in text, text
    assert (await post_webhook(bot, json.dumps(webhook()).encode()))[0] == 200
    assert errors_in(logs()) == []


async def test_a_lone_surrogate_in_a_group_key_is_400_and_logged(alert_bot, logs):
    bot = await alert_bot()
    logs()
    body = json.dumps(webhook(key='{}:{alertname="\ud800"}')).encode()  # JSON's escape of half a character
    assert b"\\ud800" in body
    status, text = await post_webhook(bot, body)
    assert status == 400 and "surrogate" in text, text
    lines = logs()
    assert [line["event"] for line in lines if line.get("level") == "warning"] == ["alert_webhook_invalid"]
    assert errors_in(lines) == []
    async with bot.runtime.store.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alerts_received") == 0


def test_no_log_call_raises_whatever_it_is_given(logs):
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("cannot be shown")

    log.warning("webhook_seen", group_key="{}:{\ud800}")
    log.warning("webhook_odd", value=Unprintable())
    lines = logs()
    assert lines[0]["event"] == "webhook_seen" and lines[0]["group_key"] == "{}:{\ud800}"
    assert lines[1] == {
        "level": "warning",
        "event": "log_failed",
        "failed_event": "webhook_odd",
        "error": "RuntimeError",
    }


# ---------------------------------------------------------------------- 9: gzip that is not


async def test_a_body_that_is_not_what_its_content_encoding_says_is_400(alert_bot, logs):
    bot = await alert_bot()
    logs()
    body = json.dumps(webhook()).encode()
    status, text = await post_webhook(bot, body, {"Content-Encoding": "gzip"})
    assert status == 400 and "Content-Encoding" in text
    assert (await post_webhook(bot, gzip.compress(body), {"Content-Encoding": "gzip"}))[0] == 200
    # refused by aiohttp's parser before any handler runs: still a 400, and a warning, not an error
    assert (await post_webhook(bot, b"zz", {"Content-Encoding": "deflate"}))[0] == 400
    assert (await post_webhook(bot, body, {"Content-Encoding": "br"}))[0] == 400
    assert errors_in(logs()) == []


# ---------------------------------------------------------------------- 10, 11: slash text


async def test_control_characters_in_slash_text_get_a_usage_answer(start_bot, fresh_database, logs):
    bot = await start_bot(erpgo_database_url=fresh_database("erp"))
    logs()
    for text in ("user a\x00b@c.d", "db explain 1\x00", "health\x1b[31m", "jwt \x7f"):
        result = await bot.command(text)
        assert result.status == 200
        assert "control character" in ack_text(result), ack_text(result)
    assert bot.slack.channel_messages(CHANNEL) == []
    assert "CharacterNotInRepertoire" not in everything_posted(bot.slack)
    assert errors_in(logs()) == []


async def test_a_huge_slash_text_is_refused_before_it_is_split(start_bot):
    bot = await start_bot()
    text = "x" * 250_000  # shlex.split is quadratic in a word's length: seconds of a blocked event loop

    async def healthz() -> float:
        await asyncio.sleep(0.05)  # while the command is being handled
        started = time.monotonic()
        async with aiohttp.ClientSession() as http, http.get(bot.base_url + "/healthz") as response:
            assert response.status == 200
        return time.monotonic() - started

    result, health_s = await asyncio.gather(bot.slack.slash(text), healthz())
    assert result.status == 200 and result.elapsed_s < 1.0, result.elapsed_s
    assert "a command is at most 4,000" in ack_text(result)
    assert health_s < 0.5, health_s


# ---------------------------------------------------------------------- 15: auth.test at start


@pytest.mark.parametrize("status, retry_after", [(500, None), (429, 3)])
async def test_a_slack_failing_auth_test_at_start_does_not_fail_the_first_command(start_bot, status, retry_after):
    slack = LocalSlack(secrets.token_hex(16))
    await slack.start()
    try:
        slack.fail("auth.test", status=status, retry_after=retry_after, times=3 if status == 500 else 1)
        bot = await start_bot(slack=slack)
        assert bot.runtime.identity is not None and bot.runtime.identity.user_id == slack.bot_user_id
        asked = len([c for c in slack.calls if c.method == "auth.test"])
        result = await bot.command("help")
        assert result.status == 200 and result.within_ack_deadline, result.elapsed_s
        assert "installation" not in result.body_text and "`/erpgo health`" in ack_text(result)
        assert len([c for c in slack.calls if c.method == "auth.test"]) == asked, "never again inside a request"
    finally:
        await slack.close()


async def test_while_auth_test_keeps_failing_commands_are_served_and_the_identity_arrives_later(
    start_bot, fresh_database, monkeypatch
):
    monkeypatch.setattr("bot.runtime.IDENTITY_WAIT", 0.3)
    slack = LocalSlack(secrets.token_hex(16))
    await slack.start()
    try:
        slack.fail("auth.test", status=500, times=1000)
        bot = await start_bot(slack=slack, bot_database_url=fresh_database("pending"))
        assert not bot.runtime.identity.user_id
        result = await bot.command("help")
        assert result.status == 200 and result.within_ack_deadline and "installation" not in result.body_text
        # the bot's own id is unknown yet: no click counts until it is
        status, _ = await send_signed(bot, forged_click(bot.slack, value="1", user="U0BOB"))
        assert status == 200
        await bot.settle()
        slack.recover()
        told = " ".join(render_text(e) for e in slack.ephemerals)
        assert "has not confirmed its own Slack identity" in told, told
        await eventually(lambda: bot.runtime.identity.user_id, timeout=15, what="the identity cached")
    finally:
        await slack.close()


async def test_a_token_slack_rejects_stops_the_start(start_bot):
    slack = LocalSlack(secrets.token_hex(16))
    await slack.start()
    slack._methods["auth.test"] = lambda args: {"ok": False, "error": "invalid_auth"}  # a revoked token
    try:
        with pytest.raises(ConfigError, match="invalid_auth"):
            await start_bot(slack=slack)
    finally:
        await slack.close()


# ---------------------------------------------------------------------- 16: who may click


async def test_only_a_real_user_other_than_the_bot_can_decide(start_bot, fresh_database, tmp_path, logs):
    policy = tmp_path / "policy.yml"
    policy.write_text(EVERYONE_APPROVES)
    bot = await start_bot(bot_database_url=fresh_database("who"), chatops_policy_file=str(policy))
    logs()
    for user in ("U0BOT", "B0BOT", "", "alertmanager", "<!channel>", "u0bob", None, 7):
        approval = await bot.runtime.approvals.propose(
            Proposal("db.terminate", {"pid": 4242}, "Terminate backend 4242"), requester="U0ALICE", channel=CHANNEL
        )
        bot.slack.ephemerals.clear()
        body = forged_click(bot.slack, value=str(approval.id), user=user, drop_user=user is None)
        status, _ = await send_signed(bot, body)
        assert status in (200, 400)  # 400: a user id that is not even a string never reaches the handler
        await bot.settle()
        assert (await bot.runtime.approvals.get(approval.id)).state == "pending", (user, "nothing was executed")
        if status == 200:
            told = " ".join(render_text(e) for e in bot.slack.ephemerals)
            assert "nothing was done" in told, (user, told)
    assert errors_in(logs()) == []


# ---------------------------------------------------------------------- 17: every id rendered escaped


def test_mention_escapes_anything_that_is_not_a_user_id():
    assert mention("U0ALICE") == "<@U0ALICE>"
    assert mention("W012AB") == "<@W012AB>"
    assert mention("U0X|x> <!channel> <@U0Y") == "U0X|x&gt; &lt;!channel&gt; &lt;@U0Y"
    assert mention("Uéé") == "Uéé" and mention("") == "nobody" and mention(None) == "nobody"


async def test_a_forged_user_id_in_a_slash_payload_never_becomes_a_mention(start_bot):
    bot = await start_bot()
    forged = "U0X|x> <!channel> <@U0Y"
    result = await bot.command("health", user_id=forged)
    assert result.status == 200
    [head] = bot.slack.channel_messages(CHANNEL)
    posted = everything_posted(bot.slack)
    assert "<!channel>" not in posted and "<@U0Y" not in posted and "<@U0X" not in posted
    assert "requested by U0X|x&gt; &lt;!channel&gt;" in json.dumps(head["blocks"], ensure_ascii=False)


# ---------------------------------------------------------------------- settings and Docker


def test_a_malformed_alert_route_is_named_by_position_never_quoted():
    with pytest.raises(ConfigError) as caught:
        load_settings(erpgo_alert_routes="severity=critical:#oncall,xoxb-1234-pasted-here-by-mistake")
    assert "rule 2 is not label=value:channel" in str(caught.value)
    assert "xoxb" not in str(caught.value) and "pasted" not in str(caught.value)


async def test_a_docker_engine_that_does_not_answer_is_critical_unreachable(tmp_path):
    path = tmp_path / "docker.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on: what a killed dockerd leaves behind
    stale.close()
    settings = load_settings(docker_host=f"unix://{path}")
    targets = Targets(settings)
    try:
        from runbooks import quick

        [check] = [c for c in quick.runbook.checks if c[1].name == "docker_containers"]
        findings = await run_checks([check[1]], harness.context(settings, targets))
    finally:
        await targets.close()
    assert [(f.status, f.title.split(" — ")[0]) for f in findings] == [(Status.CRIT, "unreachable")]
