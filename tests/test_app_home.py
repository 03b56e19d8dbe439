"""The App Home tab: opening it publishes what is firing (with thread links), the approvals the viewer
may decide and the viewer's own recent commands."""

from __future__ import annotations

import aiohttp

from bot.local.text import render_text
from tests.support import eventually

TOKEN = "home-webhook-token-0123456789"
CHANNEL = "C0ALERTS"
POLICY = """
verbs:
  "*": [everyone]
actions:
  alerts.silence:
    second_approver: true
    approvers: [U0BOB]
"""


def webhook() -> dict:
    labels = {"alertname": "ErpgoStockDrift", "severity": "warning"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ErpgoStockDrift"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "ErpgoStockDrift"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "stock levels drift"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "instance": "db-1"},
                "annotations": {"summary": "stock levels drift"},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "stock-drift-1",
            }
        ],
    }


async def home_of(bot, user: str) -> str:
    before = bot.slack.home_views.get(user, {}).get("hash")
    result = await bot.slack.open_home(user)
    assert result.status == 200 and result.within_ack_deadline
    view = await eventually(
        lambda: (v := bot.slack.home_views.get(user)) and v["hash"] != before and v, 10, f"{user}'s App Home"
    )
    return render_text(view)


async def test_app_home_shows_firing_groups_my_approvals_and_my_commands(start_bot, fresh_database, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    bot = await start_bot(
        bot_database_url=fresh_database("home"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=CHANNEL,
        erpgo_slack_channel_interval=0.05,
        chatops_policy_file=str(policy),
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    empty = await home_of(bot, "U0ALICE")
    assert "0 alert groups firing" in empty and "No alert is firing" in empty and "None yet" in empty

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(bot.base_url + "/alerts/alertmanager", json=webhook(), headers=headers) as response:
            assert response.status == 200
    header = await eventually(lambda: (bot.slack.channel_messages(CHANNEL) or [None])[0], 20, "the header")
    await eventually(lambda: "Silence…" in render_text(bot.slack.messages[CHANNEL, header["ts"]]), 20, "buttons")
    await bot.slack.click(bot.slack.messages[CHANNEL, header["ts"]], "alert.silence.1h", user_id="U0ALICE")
    await bot.settle()  # the silence now waits for U0BOB's approval in the thread
    await bot.command("health", user_id="U0ALICE")
    await bot.command("alerts", user_id="U0ALICE")

    alice = await home_of(bot, "U0ALICE")
    assert "1 alert group firing" in alice and "ErpgoStockDrift (https://local.slack.com/archives/C0ALERTS/p" in alice
    assert "Nothing waits for you" in alice, "her own request is not hers to approve"
    assert alice.index("/erpgo alerts") < alice.index("/erpgo health"), "newest first"
    bob = await home_of(bot, "U0BOB")
    assert "Silence ErpgoStockDrift for 1h 0m" in bob and "requested by @U0ALICE" in bob
    assert "None yet" in bob, "only his own commands"
    eve = await home_of(bot, "U0EVE")
    assert "Nothing waits for you" in eve and "ErpgoStockDrift" in eve


RESTRICTED = """
channels: [C0ALERTS, C0OPS]
verbs:
  "*": [everyone]
  alerts: [U0BOB]
"""


def critical() -> dict:
    body = webhook()
    labels = {"alertname": "ErpgoPayrollLeak", "severity": "critical"}
    body |= {"groupKey": '{}:{alertname="ErpgoPayrollLeak"}', "groupLabels": {"alertname": "ErpgoPayrollLeak"}}
    body |= {"commonLabels": labels, "commonAnnotations": {"summary": "payroll data exposed"}}
    body["alerts"] = [
        body["alerts"][0]
        | {"labels": {**labels, "instance": "hr-1"}, "annotations": {"summary": "payroll data exposed"}}
        | {"fingerprint": "payroll-1"}
    ]
    return body


async def test_app_home_shows_only_the_groups_the_viewer_may_see(start_bot, fresh_database, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(RESTRICTED)
    bot = await start_bot(
        bot_database_url=fresh_database("home"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=CHANNEL,
        erpgo_alert_routes="severity=critical:C0SECRET",  # a channel the policy keeps everyone out of
        erpgo_slack_channel_interval=0.05,
        chatops_policy_file=str(policy),
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for body in (webhook(), critical()):
            async with http.post(bot.base_url + "/alerts/alertmanager", json=body, headers=headers) as response:
                assert response.status == 200
    await eventually(lambda: bot.slack.channel_messages("C0SECRET"), 20, "the critical group's header")

    alice = await home_of(bot, "U0ALICE")  # refused `/erpgo alerts`
    assert "0 alert groups firing" in alice
    assert "ErpgoStockDrift" not in alice and "stock levels drift" not in alice and "ErpgoPayrollLeak" not in alice
    bob = await home_of(bot, "U0BOB")
    assert "1 alert group firing" in bob and "ErpgoStockDrift" in bob and "stock levels drift" in bob
    assert "ErpgoPayrollLeak" not in bob and "payroll data exposed" not in bob and "C0SECRET" not in bob
