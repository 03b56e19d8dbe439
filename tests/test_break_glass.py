"""Break glass: nobody approved in time, the requester presses Break glass, the thread announces a
countdown naming the approvers, anyone who may approve can veto; without a veto it runs once —
on two replicas — audited as break glass and waiting for a review."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime

import asyncpg
import pytest

from bot.approvals.breakglass import due
from bot.approvals.policy import parse_policy
from bot.local.text import render_text
from bot.settings import ConfigError
from tests.support import eventually

CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0BOB, U0CAROL]
verbs:
  "*": [everyone]
actions:
  "db.terminate":
    approvers: [oncall]
    break_glass: {after: 1s, veto: 2s, review_within: 24h}
"""


@pytest.fixture
def bot_settings(fresh_database, locked, tmp_path) -> dict:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {
        "bot_database_url": fresh_database("bot"),
        "erpgo_database_url": locked[0],
        "chatops_policy_file": str(policy),
    }


async def proposed(bot) -> dict:
    await bot.command("db locks", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    [approval] = [m for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    return copy.deepcopy(approval)


async def rows(dsn: str, sql: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def press(bot, message: dict, action_id: str, user: str) -> None:
    answer = await bot.slack.click(message, action_id, user_id=user)
    assert answer.status == 200 and answer.within_ack_deadline
    await bot.settle()


def told(bot, user: str) -> list[str]:
    return [render_text(e) for e in bot.slack.ephemerals if e["user"] == user]


def live(bot, message: dict) -> dict:
    return bot.slack.messages[CHANNEL, message["ts"]]


async def after_the_wait(dsn: str) -> None:
    """Past the rule's `after` (1 s) since the request: the time the rule waits for, not an event."""
    [(created,)] = await rows(dsn, "SELECT created_at FROM approvals")
    await asyncio.sleep(max(0.0, 1.1 - (datetime.now(UTC) - created).total_seconds()))


async def test_break_glass_without_a_veto_runs_once_on_two_replicas(start_bot, bot_settings, locked):
    dsn = bot_settings["bot_database_url"]
    first = await start_bot(**bot_settings)
    second = await start_bot(slack=first.slack, **bot_settings)
    message = await proposed(second)
    assert [b["text"] for b in first.slack.buttons(message)] == ["Approve", "Reject", "Break glass"]
    assert "Break glass: if no approver acts within 1s" in render_text(message)

    await press(second, message, "approval.break_glass", "U0BOB")  # not the requester
    assert any("Only the person who requested it may break glass" in t for t in told(first, "U0BOB"))
    await after_the_wait(dsn)
    await press(second, message, "approval.break_glass", "U0ALICE")

    thread = [render_text(m) for m in first.slack.thread(CHANNEL, message["thread_ts"])]
    [countdown] = [t for t in thread if "pressed *Break glass*" in t]
    assert "@U0ALICE" in countdown and "unless one of @U0BOB, @U0CAROL vetoes" in countdown
    assert "Veto" in [b["text"] for b in first.slack.buttons(live(first, message))]

    await eventually(lambda: rows(dsn, "SELECT 1 FROM verifications WHERE state <> 'running'"), 15, "the run verified")
    await first.settle()
    await second.settle()
    assert not await locked[1].blocker_alive() and await locked[1].update_finished() == "UPDATE 1"
    audit = await rows(dsn, "SELECT actor, event, outcome FROM audit_log WHERE event <> 'refused' ORDER BY id")
    assert [event for _, event, _ in audit] == ["proposed", "break_glass", "break_glass", "executed", "verified"]
    assert audit[1] == ("U0ALICE", "break_glass", "countdown") and audit[2][2] == "executing"
    assert audit[3] == ("U0ALICE", "executed", "succeeded"), "ran once, as break glass, by nobody else"
    shown = await eventually(lambda: "needs a review" in render_text(live(first, message)) and live(first, message))
    assert "Mark reviewed" in [b["text"] for b in first.slack.buttons(shown)]
    listing = render_text((await second.command("approvals")).json)
    assert "ran under break glass (succeeded), *needs a review*" in listing
    assert "Run under break glass, not reviewed yet: #1" in render_text((await second.command("audit")).json)

    await second.slack.open_home("U0CAROL")
    home = await eventually(lambda: (view := second.slack.home_views.get("U0CAROL")) and render_text(view), 10)
    assert "ran under break glass, needs a review by" in home, home
    await press(second, shown, "approval.review", "U0ALICE")  # the requester reviews nothing
    await press(second, shown, "approval.review", "U0CAROL")
    assert await rows(dsn, "SELECT reviewed_by FROM approvals") == [("U0CAROL",)]
    assert render_text((await second.command("approvals")).json) == "No open approvals."


async def test_a_veto_during_the_countdown_stops_it(start_bot, bot_settings, locked):
    dsn = bot_settings["bot_database_url"]
    bot = await start_bot(**bot_settings)
    message = await proposed(bot)
    await after_the_wait(dsn)
    await press(bot, message, "approval.break_glass", "U0ALICE")
    countdown = copy.deepcopy(live(bot, message))

    await press(bot, countdown, "approval.veto", "U0DAVE")  # may not approve: may not veto
    assert any("may veto" in t for t in told(bot, "U0DAVE"))
    await press(bot, countdown, "approval.veto", "U0CAROL")

    assert await rows(dsn, "SELECT state, vetoed_by FROM approvals") == [("rejected", "U0CAROL")]
    thread = [render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"])]
    assert any("@U0CAROL vetoed the break glass of approval #1" in t for t in thread)
    assert await due(bot.runtime.approvals) == [], "nothing left to run"
    assert await locked[1].blocker_alive(), "nothing was done"
    events = [e for (e,) in await rows(dsn, "SELECT event FROM audit_log WHERE event <> 'refused' ORDER BY id")]
    assert events == ["proposed", "break_glass", "vetoed"]


def test_break_glass_without_review_within_stops_the_start():
    with pytest.raises(ConfigError, match="break_glass: review_within is required"):
        parse_policy(POLICY.replace(", review_within: 24h", ""), "policy.yml")


def test_break_glass_is_refused_for_several_approvers_unless_the_rule_allows_it():
    several = POLICY.replace("approvers: [oncall]\n", "approvers: [oncall]\n    approvals_required: 2\n")
    assert parse_policy(several, "policy.yml").break_glass("db.terminate") is None
    allowed = several.replace("review_within: 24h}", "review_within: 24h, several_approvers: true}")
    glass = parse_policy(allowed, "policy.yml").break_glass("db.terminate")
    assert glass is not None and (glass.after, glass.veto, glass.review_within) == (1, 2, 86400)
