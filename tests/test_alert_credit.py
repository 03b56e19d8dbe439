"""Alert threads close the loop: an action approved in an alert's thread is credited when the group
resolves — through a real Alertmanager — within ERPGO_VERIFY_WINDOW; still firing when the window
ends, the thread is told once."""

from __future__ import annotations

import asyncio
import copy

import pytest

from bot.approvals.alert_credit import note_alert_outcomes
from bot.local.text import render_text
from demo.services import free_port
from tests.db_support import Blocking
from tests.support import eventually

TOKEN = "credit-token-0123456789abcdef"
CHANNEL = "C0ALERTS"
WEBHOOK = "/alerts/alertmanager"
LABELS = {"alertname": "DatabaseConnectionPool", "severity": "critical", "instance": "postgres:5432"}
POLICY = 'groups:\n  oncall: [U0BOB]\nverbs:\n  "*": [everyone]\nactions:\n  "db.*":\n    approvers: [oncall]\n'


@pytest.fixture
async def blocked(fresh_database):
    erp = fresh_database("erp")
    scenario = await Blocking(erp).start()
    try:
        yield erp, scenario
    finally:
        await scenario.close()


@pytest.fixture
def credit_bot(start_bot, fresh_database, tmp_path, blocked, alertmanager_factory):
    """Factory: (a bot with alert intake on the blocked database, a real Alertmanager sending to it)."""

    async def factory(**overrides):
        policy = tmp_path / "policy.yml"
        policy.write_text(POLICY)
        port = free_port()
        bot = await start_bot(
            bot_database_url=fresh_database("bot"),
            erpgo_database_url=blocked[0],
            chatops_policy_file=str(policy),
            alert_webhook_token=TOKEN,
            erpgo_alert_channel=CHANNEL,
            erpgo_slack_channel_interval=0.05,
            alertmanager_url=f"http://127.0.0.1:{port}",
            **overrides,
        )
        am = await asyncio.to_thread(
            alertmanager_factory, bot.base_url + WEBHOOK, TOKEN, port=port, group_wait="1s", group_interval="1s"
        )
        return bot, am

    return factory


async def terminate_approval(bot) -> dict:
    """The db.terminate approval the triage posted in the alert's thread."""

    def posted():
        heads = bot.slack.channel_messages(CHANNEL)
        thread = bot.slack.thread(CHANNEL, heads[0]["ts"]) if heads else []
        found = [m for m in thread if bot.slack.buttons(m) and "Terminate backend" in render_text(m)]
        return copy.deepcopy(found[0]) if found else None

    return await eventually(posted, 30, "the triage's db.terminate approval")


def thread_texts(bot, message: dict) -> list[str]:
    return [render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"])]


async def test_resolution_within_the_window_is_credited_to_the_action(credit_bot, blocked):
    bot, am = await credit_bot()
    await asyncio.to_thread(am.fire, LABELS, {"summary": "pool almost full"})
    approval = await terminate_approval(bot)

    await bot.slack.click(approval, "approval.approve", user_id="U0BOB")
    await bot.settle()
    assert await blocked[1].update_finished() == "UPDATE 1"
    await asyncio.to_thread(am.resolve, LABELS)

    def credited():
        return [t for t in thread_texts(bot, approval) if "The alert resolved" in t]

    [line] = await eventually(credited, 30, "the resolution credited in the thread")
    assert "after `db.terminate` (approval #" in line and "was approved by @U0BOB" in line
    async with bot.runtime.store.acquire() as conn:
        row = await conn.fetchrow("SELECT alert_resolved_at, alert_noted_at FROM verifications")
    assert row["alert_resolved_at"] is not None and row["alert_noted_at"] is not None
    listing = render_text((await bot.command("actions", user_id="U0BOB")).json)
    assert "1 run, 1 verified, 1 alert resolved in time, median" in listing
    assert await note_alert_outcomes(bot.runtime) == 0, "a sweep after it says nothing more"
    await bot.settle()
    assert len(credited()) == 1 and not any("Still firing" in t for t in thread_texts(bot, approval))


async def test_still_firing_when_the_window_ends_is_said_once(credit_bot, blocked):
    bot, am = await credit_bot(erpgo_verify_window="2")
    await asyncio.to_thread(am.fire, LABELS, {"summary": "pool almost full"})
    approval = await terminate_approval(bot)
    await bot.slack.click(approval, "approval.approve", user_id="U0BOB")
    await bot.settle()

    def still_firing():
        return [t for t in thread_texts(bot, approval) if "Still firing" in t]

    [line] = await eventually(still_firing, 20, "the thread told the alert still fires")
    assert "Still firing 2 s after `db.terminate`" in line and "approved by @U0BOB" in line
    assert await note_alert_outcomes(bot.runtime) == 0, "a sweep after it says nothing more"
    assert len(still_firing()) == 1
