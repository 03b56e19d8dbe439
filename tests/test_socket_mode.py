"""`erpgo-bot socket`: Slack over Socket Mode, the webhook, /healthz and /metrics over HTTP on PORT.
Slack unreachable at start or the socket dropping: the HTTP side keeps serving, /healthz says Slack
is not connected, and the link comes back by itself."""

from __future__ import annotations

import aiohttp
import pytest

from bot.local.text import render_text
from tests.fixtures.bot import ALERT_CHANNEL as CHANNEL
from tests.fixtures.bot import ALERT_TOKEN as TOKEN
from tests.support import eventually


def webhook() -> dict:
    labels = {"alertname": "ErpgoApiDown", "severity": "critical"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ErpgoApiDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "ErpgoApiDown"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "the API is down"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "instance": "api-1"},
                "annotations": {"summary": "the API is down"},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "api-down-1",
            }
        ],
    }


@pytest.fixture
async def socket_bot(start_socket_bot):
    """(bot base URL, runtime, local Slack) for `erpgo-bot socket` with Slack down at start."""
    return await start_socket_bot()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def healthz(base: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(base + "/healthz") as response:
        assert response.status == 200
        return await response.json()


async def test_socket_mode_serves_http_while_slack_is_down_and_connects_when_it_is_back(socket_bot):
    base, _runtime, slack = socket_bot
    health = await eventually(lambda: healthz(base), what="/healthz answering")
    assert health["status"] == "degraded" and health["slack"]["connected"] is False
    down = await eventually(lambda: _with_error(base), what="/healthz naming the failed connection attempt")
    assert "error" in down["slack"] and down["slack"]["failures"] >= 1

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/alerts/alertmanager", json=webhook(), headers=headers) as response:
            assert response.status == 200, "the webhook is served while Slack is unreachable"
    status, metrics = await get(base + "/metrics")
    assert status == 200 and "erpgo_alert_webhooks_total" in metrics
    assert (await get(base + "/slack/events"))[0] == 404, "Slack's events come over the socket, not HTTP"

    slack.recover()
    await slack.wait_socket(timeout=15)
    health = await eventually(lambda: _connected(base), 15, "/healthz saying Slack is connected")
    assert health["status"] == "ok" and "error" not in health["slack"]
    header = await eventually(lambda: (slack.channel_messages(CHANNEL) or [None])[0], 20, "the alert's header")
    assert header["text"].startswith("FIRING: ErpgoApiDown")

    answer = await slack.socket_slash("help", user_id="U0ALICE")
    assert answer.status == 200 and "usage: `/erpgo" in render_text(answer.json)
    await eventually(lambda: "I'm on it" in render_text(slack.messages[CHANNEL, header["ts"]]), 20, "buttons")
    clicked = await slack.socket_click(slack.messages[CHANNEL, header["ts"]], "alert.ack", user_id="U0BOB")
    assert clicked.status == 200
    await eventually(
        lambda: "Acknowledged by @U0BOB" in render_text(slack.messages[CHANNEL, header["ts"]]), 20, "the ack shown"
    )


async def test_a_dropped_socket_is_reported_and_reconnected(socket_bot):
    base, _runtime, slack = socket_bot
    slack.recover()
    await slack.wait_socket(timeout=15)
    await eventually(lambda: _connected(base), 15, "connected")
    opened = len([c for c in slack.calls if c.method == "apps.connections.open" and c.ok])
    slack.outage(503)  # the connection drops and Slack stays unreachable for a while
    await slack.drop_sockets()
    down = await eventually(lambda: _disconnected(base), 10, "/healthz saying Slack is not connected")
    assert down["status"] == "degraded"
    await eventually(lambda: _with_error(base), 10, "a failed reconnection attempt reported")
    slack.recover()
    await eventually(lambda: _connected(base), 15, "connected again")
    assert len([c for c in slack.calls if c.method == "apps.connections.open" and c.ok]) == opened + 1
    assert (await slack.socket_slash("help")).status == 200


async def _connected(base: str) -> dict | None:
    health = await healthz(base)
    return health if health["slack"]["connected"] else None


async def _disconnected(base: str) -> dict | None:
    health = await healthz(base)
    return health if not health["slack"]["connected"] else None


async def _with_error(base: str) -> dict | None:
    health = await healthz(base)
    return health if health["slack"].get("error") else None


async def test_a_redelivered_envelope_runs_once_and_malformed_ones_are_acknowledged(socket_bot):
    base, runtime, slack = socket_bot
    slack.recover()
    await slack.wait_socket(timeout=15)
    await eventually(lambda: _connected(base), 15, "connected")

    first = await slack.socket_slash("health", channel_id="C0OPS", envelope_id="Env0SAME")
    await runtime.tasks.idle(30)
    again = await slack.socket_slash("health", channel_id="C0OPS", envelope_id="Env0SAME", retry_attempt=1)
    await runtime.tasks.idle(30)
    assert first.status == 200 and again.status == 200, "both deliveries acknowledged"
    reports = [m for m in slack.channel_messages("C0OPS") if "ERPGo health" in m["text"]]
    assert len(reports) == 1, "the redelivery did not run the command again"

    for malformed in (
        {"envelope_id": "Env0LIST", "type": "slash_commands", "payload": [1, 2]},
        {"envelope_id": "Env0TYPE", "type": 7, "payload": {}},
        {"envelope_id": "Env0BARE", "type": "events_api"},
        {"envelope_id": "Env0ODD", "type": "interactive", "payload": {"type": "block_actions", "actions": "x"}},
    ):
        acked = await slack.socket_send(malformed, timeout=3)
        assert acked.status == 200, f"{malformed['envelope_id']} acknowledged, so Slack does not redeliver it"
    assert (await slack.socket_slash("help")).status == 200, "and the bot still answers"
