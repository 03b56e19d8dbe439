"""The alert header's buttons against a real Alertmanager: I'm on it (one of two concurrent clicks
recorded), Silence (a real silence Alertmanager lists and that stops the group's notifications),
the custom-duration modal, Unsilence, Alertmanager down, resolve and re-fire, a second approver."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import pytest

from bot.local.text import render_text
from demo.services import free_port
from tests.support import eventually

TOKEN = "am-actions-token-0123456789"
CHANNEL = "C0ALERTS"
WEBHOOK = "/alerts/alertmanager"
LABELS = {"alertname": "ErpgoOrdersFailing", "severity": "critical", "instance": "api-1"}


@pytest.fixture
def action_bot(start_bot, fresh_database, tmp_path):
    """Factory: a bot with alert intake, its Alertmanager URL on a port chosen now (started later)."""

    async def factory(policy: str | None = None, **overrides):
        port = overrides.pop("am_port", None) or free_port()
        settings = {
            "bot_database_url": fresh_database("actions"),
            "alert_webhook_token": TOKEN,
            "erpgo_alert_channel": CHANNEL,
            "erpgo_slack_channel_interval": 0.05,
            "erpgo_slack_max_backoff": 1,
            "docker_host": f"unix://{tmp_path}/no-docker.sock",
            "alertmanager_url": f"http://127.0.0.1:{port}",
        }
        if policy is not None:
            path = tmp_path / "policy.yml"
            path.write_text(policy)
            settings["chatops_policy_file"] = str(path)
        settings.update(overrides)
        bot = await start_bot(**settings)
        bot.am_port = port
        return bot

    return factory


async def alertmanager(factory, bot, **kw):
    kw.setdefault("group_wait", "1s")
    kw.setdefault("group_interval", "1s")
    kw.setdefault("repeat_interval", "1h")
    return await asyncio.to_thread(factory, bot.base_url + WEBHOOK, TOKEN, port=bot.am_port, **kw)


def webhook(status: str = "firing", alertname: str = "ErpgoOrdersFailing") -> dict:
    common = {"alertname": alertname, "severity": "critical"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": alertname},
        "commonLabels": common,
        "commonAnnotations": {"summary": "orders are failing"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**common, "instance": "api-1"},
                "annotations": {"summary": "orders are failing"},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": datetime.now(UTC).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": f"{alertname}-api-1",
            }
        ],
    }


async def post(bot, body: dict) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(bot.base_url + WEBHOOK, json=body, headers=headers) as r:
        return r.status


async def query(bot, sql: str, *args):
    async with bot.runtime.store.acquire() as conn:
        return await conn.fetch(sql, *args)


async def header(bot) -> dict:
    """The one alert header of the channel, once posted (the live message, as Slack shows it now)."""
    return await eventually(lambda: (bot.slack.channel_messages(CHANNEL) or [None])[0], 20, "an alert header")


async def header_shows(bot, *words: str, absent: tuple[str, ...] = ()) -> dict:
    """The header once it shows `words` and the bot has recorded where it is (Slack shows a message a
    moment before the bot commits its ts: a click in between finds no thread of that message)."""

    async def shows():
        message = await header(bot)
        shown = render_text(message)
        if not all(w in shown for w in words) or any(a in shown for a in absent):
            return None
        return message if await query(bot, "SELECT 1 FROM slack_threads WHERE ts = $1", message["ts"]) else None

    return await eventually(shows, 20, f"the header showing {words} and not {absent}")


def told(bot, user: str) -> list[str]:
    return [render_text(e) for e in bot.slack.ephemerals if e["user"] == user]


async def click(bot, message: dict, action_id: str, user: str):
    result = await bot.slack.click(message, action_id, user_id=user, user_name=user[2:].lower())
    assert result.status == 200 and result.within_ack_deadline
    await bot.settle()
    return result


async def audit_events(bot) -> list[tuple]:
    rows = await query(bot, "SELECT actor, event, action FROM audit_log ORDER BY id")
    return [tuple(r) for r in rows]


async def am_get(am, path: str, **params):
    async with aiohttp.ClientSession() as http, http.get(am.url + path, params=params) as response:
        return await response.json()


# ---------------------------------------------------------------------- I'm on it


async def test_two_people_acknowledging_at_once_one_is_recorded(action_bot):
    bot = await action_bot()
    assert await post(bot, webhook()) == 200
    message = await header(bot)
    await eventually(lambda: "I'm on it" in render_text(bot.slack.messages[CHANNEL, message["ts"]]), 20, "buttons")
    seen = json.loads(json.dumps(bot.slack.messages[CHANNEL, message["ts"]]))  # as both clients saw it
    results = await asyncio.gather(
        bot.slack.click(seen, "alert.ack", user_id="U0BOB", user_name="bob"),
        bot.slack.click(seen, "alert.ack", user_id="U0CAROL", user_name="carol"),
    )
    assert all(r.status == 200 and r.within_ack_deadline for r in results)
    await bot.settle()
    [row] = await query(bot, "SELECT acked_by, acked_at FROM alert_actions")
    winner = row["acked_by"]
    loser = "U0CAROL" if winner == "U0BOB" else "U0BOB"
    assert winner in ("U0BOB", "U0CAROL") and row["acked_at"] is not None
    assert [e for e in await audit_events(bot) if e[1] == "acknowledged"] == [(winner, "acknowledged", "alerts.ack")]
    shown = await header_shows(bot, f"Acknowledged by @{winner}", absent=("I'm on it",))
    assert "Silence" in render_text(shown), "the silence buttons stay"
    assert any("is already on it" in t and f"@{winner}" in t for t in told(bot, loser))


async def test_who_may_acknowledge_is_the_policys_call(action_bot):
    bot = await action_bot(
        'groups:\n  oncall: [U0BOB]\nverbs:\n  "*": [everyone]\n  alerts: [oncall]\n'
        "actions:\n  alerts.silence:\n    allowed: [U0BOB]\n"
    )
    assert await post(bot, webhook()) == 200
    message = await header_shows(bot, "I'm on it")
    await click(bot, message, "alert.ack", "U0EVE")  # may not run /erpgo alerts: may not acknowledge
    assert any("may not use `alerts.ack`" in t for t in told(bot, "U0EVE"))
    await click(bot, message, "alert.silence.1h", "U0EVE")
    assert any(
        "may not use `alerts.silence`: the policy (policy.yml) allows U0BOB only" in t for t in told(bot, "U0EVE")
    )
    assert await query(bot, "SELECT 1 FROM alert_actions") == []
    refused = [e for e in await audit_events(bot) if e[1] == "refused"]
    assert {(actor, action) for actor, _, action in refused} == {("U0EVE", "alerts.ack"), ("U0EVE", "alerts.silence")}
    await click(bot, message, "alert.ack", "U0BOB")
    await header_shows(bot, "Acknowledged by @U0BOB")


# ---------------------------------------------------------------------- Silence / Unsilence


async def test_silence_is_real_in_alertmanager_stops_notifications_and_unsilence_expires_it(
    action_bot, alertmanager_factory
):
    bot = await action_bot()
    am = await alertmanager(alertmanager_factory, bot)
    await asyncio.to_thread(am.fire, LABELS, {"summary": "orders are failing"})
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.4h", "U0BOB")

    [silence] = await am_get(am, "/api/v2/silences")
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "bob (Slack U0BOB)"
    assert {(m["name"], m["value"], m["isEqual"]) for m in silence["matchers"]} == {
        ("alertname", "ErpgoOrdersFailing", True)
    }
    ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    assert 4 * 3600 - 120 < (ends - datetime.now(UTC)).total_seconds() <= 4 * 3600
    shown = await header_shows(bot, "Silenced by @U0BOB until", "Unsilence", absent=("Silence…",))
    thread = bot.slack.thread(CHANNEL, shown["ts"])
    assert any("silenced this group until" in render_text(m) for m in thread)
    assert ("U0BOB", "silenced", "alerts.silence") in await audit_events(bot)

    # a new alert of the silenced group: Alertmanager suppresses it and tells the bot nothing
    await asyncio.to_thread(am.fire, {**LABELS, "instance": "api-2"}, {"summary": "orders are failing"})
    other = {"alertname": "ErpgoStockDrift", "severity": "warning", "instance": "db-1"}
    await asyncio.to_thread(am.fire, other, {"summary": "stock drifts"})  # fired after it, not silenced

    async def other_arrived():
        return await query(bot, "SELECT 1 FROM alert_groups WHERE common_labels->>'alertname' = 'ErpgoStockDrift'")

    await eventually(other_arrived, 20, "the unsilenced group's notification")
    suppressed = await am_get(am, "/api/v2/alerts", filter='instance="api-2"')
    assert suppressed[0]["status"]["state"] == "suppressed" and suppressed[0]["status"]["silencedBy"] == [silence["id"]]
    assert await query(bot, "SELECT 1 FROM alerts WHERE labels->>'instance' = 'api-2'") == []

    await click(bot, await header(bot), "alert.unsilence", "U0CAROL")
    expired = await am_get(am, f"/api/v2/silence/{silence['id']}")
    assert expired["status"]["state"] == "expired"
    await header_shows(bot, "Silence lifted by @U0CAROL", "Silence…", absent=("Unsilence",))
    assert ("U0CAROL", "unsilenced", "alerts.silence") in await audit_events(bot)


async def test_custom_silence_through_the_modal(action_bot, alertmanager_factory):
    bot = await action_bot()
    am = await alertmanager(alertmanager_factory, bot)
    await asyncio.to_thread(am.fire, LABELS, {"summary": "orders are failing"})
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.custom", "U0BOB")
    modal = bot.slack.modal_of("U0BOB")
    assert modal is not None and modal["title"]["text"] == "Silence alerts"

    refused = await bot.slack.submit_view(modal, {"duration": "forever", "comment": ""})
    assert refused.status == 200 and "is not a duration" in modal["errors"]["duration"]
    too_long = await bot.slack.submit_view(modal, {"duration": "30d", "comment": ""})
    assert too_long.status == 200 and "longer than the longest silence" in modal["errors"]["duration"]
    await bot.slack.submit_view(modal, {"duration": "90m", "comment": "deploying the fix, INC-42"})
    await bot.settle()
    assert bot.slack.modal_of("U0BOB") is None

    [silence] = await am_get(am, "/api/v2/silences")
    assert silence["comment"] == "deploying the fix, INC-42" and silence["status"]["state"] == "active"
    ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    assert 90 * 60 - 120 < (ends - datetime.now(UTC)).total_seconds() <= 90 * 60
    await header_shows(bot, "Silenced by @U0BOB until", "deploying the fix, INC-42")


async def test_alertmanager_down_is_a_clear_refusal_and_nothing_is_recorded(action_bot):
    bot = await action_bot()  # its ALERTMANAGER_URL points at a port nothing listens on
    assert await post(bot, webhook()) == 200
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.1h", "U0BOB")
    assert any("Nothing was silenced: Alertmanager is unreachable" in t for t in told(bot, "U0BOB"))
    assert await query(bot, "SELECT 1 FROM alert_actions WHERE silence_id IS NOT NULL") == []
    assert not [e for e in await audit_events(bot) if e[1] == "silenced"]
    assert "Silenced by" not in render_text(await header(bot))


async def test_resolve_keeps_the_silence_and_firing_again_ends_it(action_bot, alertmanager_factory):
    bot = await action_bot()
    await alertmanager(alertmanager_factory, bot)  # to hold the silence; notifications are posted by hand
    assert await post(bot, webhook()) == 200
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.1h", "U0BOB")
    await header_shows(bot, "Silenced by @U0BOB")

    assert await post(bot, webhook("resolved")) == 200
    resolved = await header_shows(bot, "RESOLVED", "Silenced by @U0BOB", "Unsilence", absent=("I'm on it",))
    assert "Silence…" not in render_text(resolved)

    assert await post(bot, webhook()) == 200  # Alertmanager notified again: the silence does not hold
    await header_shows(bot, "FIRING", "ended: the alert fired again", "Silence…", absent=("Unsilence",))
    [row] = await query(bot, "SELECT silence_ended_by FROM alert_actions")
    assert row["silence_ended_by"] == "alertmanager"


async def test_a_silence_can_need_a_second_approver_from_a_slack_user_group(action_bot, alertmanager_factory):
    policy = (
        'verbs:\n  "*": [everyone]\nactions:\n  alerts.silence:\n    second_approver: true\n    approvers: [S0SRE]\n'
    )
    bot = await action_bot(policy)
    bot.slack.usergroups["S0SRE"] = ["U0CAROL"]
    am = await alertmanager(alertmanager_factory, bot)
    assert await post(bot, webhook()) == 200
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.24h", "U0BOB")
    assert await am_get(am, "/api/v2/silences") == []
    [approval] = [m for m in bot.slack.thread(CHANNEL, message["ts"]) if bot.slack.buttons(m)]
    assert "Silence ErpgoOrdersFailing for 1d 0h" in render_text(approval)

    await click(bot, approval, "approval.approve", "U0DAVE")  # not in the user group
    assert any("You may not approve `alerts.silence`" in t for t in told(bot, "U0DAVE"))
    assert await am_get(am, "/api/v2/silences") == []
    await click(bot, approval, "approval.approve", "U0CAROL")  # resolved through usergroups.users.list
    [silence] = await am_get(am, "/api/v2/silences")
    assert silence["createdBy"] == "bob (Slack U0BOB)" and silence["status"]["state"] == "active"
    await header_shows(bot, "Silenced by @U0BOB")
    assert any(c.method == "usergroups.users.list" and c.ok for c in bot.slack.calls)


async def test_a_secret_in_a_silence_comment_reaches_neither_alertmanager_nor_the_thread(
    action_bot, alertmanager_factory
):
    bot = await action_bot()
    am = await alertmanager(alertmanager_factory, bot)
    await asyncio.to_thread(am.fire, LABELS, {"summary": "orders are failing"})
    message = await header_shows(bot, "Silence…")
    await click(bot, message, "alert.silence.custom", "U0BOB")
    modal = bot.slack.modal_of("U0BOB")
    secret = "Wq8zK2pLm4Rt"
    await bot.slack.submit_view(modal, {"duration": "1h", "comment": f"rotating, old password={secret} INC-7"})
    await bot.settle()
    [silence] = await am_get(am, "/api/v2/silences")
    assert secret not in silence["comment"] and "INC-7" in silence["comment"]
    shown = await header_shows(bot, "Silenced by @U0BOB until", "INC-7")
    assert secret not in render_text(shown)
    [row] = await query(bot, "SELECT silence_comment FROM alert_actions")
    assert secret not in row["silence_comment"]
