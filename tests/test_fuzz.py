"""Fuzzing the bot's three doors over real HTTP: slash texts, Alertmanager webhooks, button clicks.

Hypothesis draws the inputs (digits of every script, control characters, mentions, huge texts, JSON of
any shape, time stamps of any range, bodies that lie about their encoding, forged users and values);
each example is sent to the running bot and must get a 2xx/4xx answer, leave no error-level or
traceback line in the bot's log, and put no mention the bot did not mean into anything it posted.
Hypothesis runs in a worker thread; each request runs on the bot's own event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.logs import configure_logging
from bot.core.parse import is_slack_user_id
from tests.support import eventually

TOKEN = "am-webhook-token-fuzz-0123456789"
CHANNEL = "C0OPS"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible, never flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# what the bot must never produce unless it means to: a broadcast, or a mention of an id it was sent
BROADCAST = re.compile(r"<!(channel|here|everyone)\b|<!subteam")
MENTION = re.compile(r"<@([^>|]*)")
CONTENT = ("text", "blocks", "attachments")  # what Slack renders of a message (not who it is for)

DIGITS = ["²", "①", "٩", "١٢", "໓", "𝟗", "1" * 30, "-1", "1_000", "0x1f", "1e3", "nan", "  7", "1\x00"]
NASTY = ["\x00", "\x1b[31m", "\x7f", "\u202e", "\ufeff", "\u200b", "<!channel>", "<!here>", "<@U0ADMIN>", "&amp;"]
NASTY += ["<#C0SECRET>", "`", '"', "'", "\\", "\n", "\t", "%00", "\ud7ff", "😀", "Ⅻ"]
VERBS = ["health", "logs", "audit", "approvals", "alerts", "db explain", "db long-queries", "db locks", "user", "jwt"]
VERBS += ["errors", "help", "db", "frobnicate"]
FORGED_USERS = ["U0X|x> <!channel> <@U0Y", "<!here>", "", "alertmanager", "u0lower", "U0BOT", "W0WORKER"]


# ---------------------------------------------------------------------- plumbing


class Bridge:
    """Runs the bot's side of each example on its loop from Hypothesis's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capsys: pytest.CaptureFixture):
        self.loop = loop
        self.capsys = capsys

    def run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def log_lines(self) -> list[str]:
        out = self.capsys.readouterr()
        return [line for line in (out.out + out.err).split("\n") if line.strip()]


def bad_log_lines(lines: list[str]) -> list[str]:
    bad = []
    for line in lines:
        try:
            level = json.loads(line).get("level")
        except ValueError:
            level = "unparsed"  # not ours: a library printing outside the log
        if level in ("error", "critical", "exception", "unparsed") or "Traceback" in line:
            bad.append(line[:500])
    return bad


def unmeant_mentions(posted: str, meant: set[str]) -> list[str]:
    """Broadcasts, and mentions of anything other than a well-formed id the bot meant to mention."""
    wrong = BROADCAST.findall(posted)
    wrong += [m for m in MENTION.findall(posted) if not (is_slack_user_id(m) and m in meant)]
    return [str(w) for w in wrong]


def posted_since(slack, first_call: int) -> str:
    """The content (text, blocks, attachments) of every message the bot sent since `first_call`."""
    sent = [
        {key: c.args.get(key) for key in CONTENT}
        for c in slack.calls[first_call:]
        if c.method.startswith("chat.") or c.method in ("response_url", "ack")
    ]
    return json.dumps(sent, ensure_ascii=False)


def sign(secret: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + digest}


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


def check_example(bridge: Bridge, bot, send: Callable[[], Awaitable[int]], meant: set[str]) -> int:
    first = len(bot.slack.calls)
    status = bridge.run(send())
    bridge.run(bot.settle())
    assert status < 500, status
    assert bad_log_lines(bridge.log_lines()) == []
    assert unmeant_mentions(posted_since(bot.slack, first), meant) == []
    return status


@pytest.fixture
async def bridge(capsys):
    configure_logging("info")
    capsys.readouterr()
    return Bridge(asyncio.get_running_loop(), capsys)


# ---------------------------------------------------------------------- slash commands

words = st.one_of(
    st.sampled_from(DIGITS + NASTY),
    st.text(max_size=12),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Nl", "Cc", "Cf", "Zs"]), max_size=6),
    st.from_regex(r"[a-z0-9._-]{1,20}", fullmatch=True),
)
slash_texts = st.one_of(
    st.builds(lambda verb, args: " ".join([verb, *args]), st.sampled_from(VERBS), st.lists(words, max_size=4)),
    st.text(max_size=200),
    st.builds(lambda n, c: c * n, st.integers(4001, 300_000), st.sampled_from(["x", "a ", '"', "\x00"])),
)
slash_users = st.one_of(st.sampled_from(["U0ALICE", "W0ALICE2"]), st.sampled_from(FORGED_USERS), st.text(max_size=20))


async def test_fuzzed_slash_commands(start_bot, bridge, tmp_path):
    bot = await start_bot(docker_host=f"unix://{tmp_path}/no-docker.sock")

    statuses: list[int] = []

    @FUZZ
    @given(text=slash_texts, user=slash_users)
    def example(text: str, user: str) -> None:
        async def send() -> int:
            result = await bot.slack.slash(text, user_id=user)
            return result.status

        statuses.append(check_example(bridge, bot, send, meant={user}))

    await asyncio.to_thread(example)
    assert len(statuses) >= FUZZ.max_examples and set(statuses) == {200}, sorted(set(statuses))


# ---------------------------------------------------------------------- Alertmanager webhooks

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
wild_times = st.one_of(
    st.sampled_from(["9999-12-31T23:59:59-01:00", "2025-11-30T01:00:00+23:59", "0001-01-01T00:00:00Z", "", "now"]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.builds(
        lambda y, h, m, sign_: f"{y:04d}-06-01T12:00:00{sign_}{h:02d}:{m:02d}",
        st.integers(1, 9999),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from("+-"),
    ),
)
plain_times = st.sampled_from(["2025-11-30T01:00:00Z", "0001-01-01T00:00:00Z", "2026-01-02T03:04:05.123456789+05:30"])
times = st.one_of(plain_times, plain_times, plain_times, wild_times)
label_values = st.one_of(st.text(max_size=30), st.sampled_from(NASTY + DIGITS))


clean_text = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=30)


@st.composite
def webhooks(draw: st.DrawFn, wild: bool = True) -> dict:
    """A version 4 webhook; `wild`: with hostile values and, now and then, a part of the wrong shape."""
    text = label_values if wild else clean_text
    when = times if wild else plain_times
    alerts = []
    name = draw(text)
    for n in range(draw(st.integers(1, 3))):
        alert: dict[str, Any] = {
            "status": draw(st.sampled_from(["firing", "resolved"])),
            "labels": {"alertname": name, "instance": draw(text), "severity": "warning"},
            "annotations": {"summary": draw(text), "description": draw(text)},
            "startsAt": draw(when),
            "endsAt": draw(when),
            "fingerprint": draw(st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True)) + str(n),
        }
        if wild and draw(st.integers(0, 3)) == 0:
            alert[draw(st.sampled_from(list(alert)))] = draw(json_values)
        alerts.append(alert)
    hook: dict[str, Any] = {
        "version": draw(st.sampled_from(["4", "3", 4])) if wild else "4",
        "groupKey": draw(text.filter(bool) if wild else clean_text.filter(bool)),
        "truncatedAlerts": draw(st.sampled_from([0, 2, -1])) if wild else 0,
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": name},
        "commonLabels": {"severity": "warning", "team": draw(text)},
        "commonAnnotations": {"summary": draw(text)},
        "externalURL": draw(st.sampled_from(["http://am.example:9093", "", "javascript:alert(1)"])),
        "alerts": alerts,
    }
    if wild and draw(st.integers(0, 3)) == 0:
        hook[draw(st.sampled_from(list(hook)))] = draw(json_values)
    return hook


def encoded(body: bytes, encoding: str, lie: bool) -> bytes:
    if lie or encoding in ("identity", "br", "bogus"):
        return body
    return gzip.compress(body) if encoding == "gzip" else zlib.compress(body)


bodies = st.one_of(
    webhooks(wild=False).map(lambda h: json.dumps(h).encode()),
    webhooks().map(lambda h: json.dumps(h).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"version": "4"}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}']),
)
encodings = st.sampled_from(["identity", "identity", "identity", "gzip", "deflate", "br", "bogus"])
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])


async def test_fuzzed_webhooks(start_bot, fresh_database, bridge, tmp_path):
    bot = await start_bot(
        bot_database_url=fresh_database("fuzz"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel="C0ALERTS",
        erpgo_slack_channel_interval=0,
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    statuses: list[int] = []

    @FUZZ
    @given(body=bodies, encoding=encodings, lie=st.integers(0, 3).map(lambda n: n == 0), content_type=content_types)
    def example(body: bytes, encoding: str, lie: bool, content_type: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Encoding": encoding}
        if content_type:
            headers["Content-Type"] = content_type
        sent = encoded(body, encoding, lie)
        statuses.append(
            check_example(bridge, bot, lambda: post(bot.base_url + "/alerts/alertmanager", sent, headers), set())
        )

    await asyncio.to_thread(example)
    assert len(statuses) >= FUZZ.max_examples and {200, 400} <= set(statuses), sorted(set(statuses))

    # what the outbox delivers later (headers, replies) is checked too, once it is all out
    async def delivered() -> bool:
        return (await bot.runtime.outbox.health())["pending"] == 0

    await eventually(delivered, timeout=30, what="every alert message delivered")
    assert unmeant_mentions(posted_since(bot.slack, 0), set()) == []
    assert bad_log_lines(bridge.log_lines()) == []


# ---------------------------------------------------------------------- button clicks

users = st.one_of(
    st.sampled_from(["U0BOB", "U0BOT"] + FORGED_USERS),
    st.text(max_size=12),
    json_values,
)
values = st.one_of(st.sampled_from(DIGITS + ["1", "99999999", ""]), st.text(max_size=20), json_values)


@st.composite
def clicks(draw: st.DrawFn) -> dict:
    action: dict[str, Any] = {
        "action_id": draw(st.sampled_from(["approval.approve", "approval.reject", "approval.approve"])),
        "block_id": "b",
        "type": "button",
        "value": draw(values),
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": draw(users), "username": "fuzz", "team_id": "T0LOCAL"},
        "api_app_id": "A0LOCAL",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": CHANNEL},
        "team": {"id": "T0LOCAL", "domain": "local"},
        "channel": {"id": draw(st.sampled_from([CHANNEL, CHANNEL, "C0X|<!channel>", ""])), "name": "ops"},
        "actions": [action],
    }
    for _ in range(draw(st.integers(0, 2))):  # a part of the wrong shape
        where = draw(st.sampled_from(["user", "container", "channel", "actions", "team", "response_url", "message"]))
        payload[where] = draw(json_values)
    return payload


async def test_fuzzed_button_clicks(start_bot, fresh_database, bridge, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text('verbs:\n  "*": [everyone]\nactions:\n  "db.*":\n    approvers: [everyone]\n')
    bot = await start_bot(bot_database_url=fresh_database("fuzzbtn"), chatops_policy_file=str(policy))
    response_url = bot.slack.response_url(channel=CHANNEL, user="U0BOB")

    @FUZZ
    @given(payload=clicks(), signed=st.booleans(), extra=st.sampled_from(["", "&payload=x", "&x=%ff"]))
    def example(payload: dict, signed: bool, extra: str) -> None:
        payload.setdefault("response_url", response_url)
        body = (urlencode({"payload": json.dumps(payload)}) + extra).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers |= sign(bot.slack.signing_secret, body)
        status = check_example(bridge, bot, lambda: post(bot.slack.bot_url, body, headers), set())
        assert status == 401 if not signed else status in (200, 400, 404)
        statuses.append(status)

    statuses: list[int] = []
    await asyncio.to_thread(example)
    assert len(statuses) >= FUZZ.max_examples and {200, 400, 401} <= set(statuses), sorted(set(statuses))
    async with bot.runtime.store.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM approvals WHERE state <> 'pending'") == 0
