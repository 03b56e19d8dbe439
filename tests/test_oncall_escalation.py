"""On call and escalation: a rotation whose handoff an injected clock crosses, `/erpgo oncall`, an
unacknowledged critical alert through the real Alertmanager that escalates by itself (once per level),
the Escalate button (on call, then the secondary), and ERPGO_ALERT_UPDATES=header."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.approvals.policy import parse_policy
from bot.approvals.usergroups import UserGroups
from bot.local.text import render_text
from bot.oncall import on_call
from tests.support import eventually
from tests.watch_support import CHANNEL, TOKEN, WEBHOOK, live, post, query, thread_showing, top_showing, tops, webhook

POLICY = """
oncall:
  rotation: [U0ALICE, U0BOB]
  handoff: "mon 09:00"
  tz: Europe/Berlin
  secondary: U0CAROL
"""


@pytest.fixture
def oncall_bot(start_bot, fresh_database, tmp_path):
    async def factory(policy: str = POLICY, **overrides):
        path = tmp_path / "policy.yml"
        path.write_text(policy)
        settings = {
            "bot_database_url": fresh_database("oncall"),
            "alert_webhook_token": TOKEN,
            "erpgo_alert_channel": CHANNEL,
            "erpgo_slack_channel_interval": 0.05,
            "erpgo_slack_max_backoff": 1,
            "erpgo_watch": "off",
            "erpgo_digest_cron": "off",
            "chatops_policy_file": str(path),
        }
        settings.update(overrides)
        return await start_bot(**settings)

    return factory


async def nobody_in_groups(_group: str) -> list[str]:
    return []


async def test_the_rotation_hands_over_at_monday_nine_in_berlin():
    rule = parse_policy(POLICY, "policy.yml").document.oncall
    groups = UserGroups(nobody_in_groups)
    before = await on_call(None, rule, "policy.yml", groups, datetime(2026, 12, 7, 7, 59, tzinfo=UTC))  # 08:59 CET
    after = await on_call(None, rule, "policy.yml", groups, datetime(2026, 12, 7, 8, 1, tzinfo=UTC))  # 09:01 CET
    assert before.now != after.now and {*before.now, *after.now} == {"U0ALICE", "U0BOB"}
    assert before.next == after.now[0], "who was next is on call once the handoff passed"
    assert before.next_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    summer = await on_call(None, rule, "policy.yml", groups, datetime(2026, 6, 1, 7, 1, tzinfo=UTC))  # 09:01 CEST
    assert summer.next_at is not None and summer.next_at.astimezone(UTC).hour == 7, "09:00 local in summer too"
    assert before.secondary == "U0CAROL"


async def test_oncall_verb_says_who_now_and_next(oncall_bot):
    bot = await oncall_bot()
    result = await bot.command("oncall")
    shown = render_text(result.json)
    assert "On call now" in shown and "rotation (the policy (policy.yml))" in shown
    assert "Next" in shown and "Secondary" in shown and "@U0CAROL" in shown
    assert ("@U0ALICE" in shown) and ("@U0BOB" in shown), "the one on call now and the next"


async def test_an_unacknowledged_critical_alert_escalates_by_itself_once_per_level(oncall_bot, alertmanager_factory):
    bot = await oncall_bot(POLICY.replace("[U0ALICE, U0BOB]", "[U0ALICE]"), erpgo_escalate_after="2s")
    am = await asyncio.to_thread(
        alertmanager_factory,
        bot.base_url + WEBHOOK,
        TOKEN,
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
    )
    await asyncio.to_thread(
        am.fire, {"alertname": "ErpgoApiDown", "severity": "critical", "instance": "api-1"}, {"summary": "API down"}
    )
    head = await top_showing(bot, "FIRING", "ErpgoApiDown")
    first = await thread_showing(bot, head, "@U0ALICE", "you are on call")
    assert "not acknowledged for 2s" in render_text(first)
    await eventually(lambda: "Escalated to @U0ALICE (level 1)" in render_text(live(bot, head)), 20, "level 1 shown")
    await thread_showing(bot, head, "@U0CAROL", "you are secondary on call", timeout=20)
    await eventually(lambda: "Escalate" not in render_text(live(bot, head)).replace("Escalated", ""), 20, "no button")
    events = await query(bot, "SELECT actor, outcome FROM audit_log WHERE event = 'escalated' ORDER BY id")
    assert [tuple(e) for e in events] == [("bot", "level 1: U0ALICE"), ("bot", "level 2: U0CAROL")]
    mentions = [render_text(m) for m in bot.slack.thread(CHANNEL, head["ts"]) if "you are" in render_text(m)]
    assert len(mentions) == 2, mentions


async def test_escalate_button_mentions_on_call_then_the_secondary(oncall_bot):
    bot = await oncall_bot(POLICY.replace("[U0ALICE, U0BOB]", "[U0ALICE]"), erpgo_escalate_after="off")
    assert await post(bot, webhook(["api-1"])) == 200
    head = await top_showing(bot, "Escalate")
    await bot.slack.click(live(bot, head), "alert.escalate", user_id="U0DAVE", user_name="dave")
    said = await thread_showing(bot, head, "@U0ALICE", "you are on call")
    assert "escalated by @U0DAVE" in render_text(said)
    await eventually(lambda: "(level 1)" in render_text(live(bot, head)), 20, "level 1 in the header")
    await bot.slack.click(live(bot, head), "alert.escalate", user_id="U0DAVE", user_name="dave")
    await thread_showing(bot, head, "@U0CAROL", "you are secondary on call")
    events = await query(bot, "SELECT actor, event, action FROM audit_log WHERE event = 'escalated'")
    assert [tuple(e) for e in events] == [("U0DAVE", "escalated", "alerts.escalate")] * 2


async def test_header_updates_only_keep_membership_out_of_the_thread(oncall_bot):
    bot = await oncall_bot(erpgo_alert_updates="header", erpgo_escalate_after="off")
    assert await post(bot, webhook(["api-1"])) == 200
    head = await top_showing(bot, "FIRING", "1 firing")
    await bot.settle()
    assert await post(bot, webhook(["api-1", "api-2"])) == 200
    await eventually(lambda: "2 firing" in render_text(live(bot, head)), 20, "the header counting 2")
    await bot.settle()
    thread = [render_text(m) for m in bot.slack.thread(CHANNEL, head["ts"])]
    assert not any("joined" in t for t in thread), thread
    assert len(tops(bot)) == 1
