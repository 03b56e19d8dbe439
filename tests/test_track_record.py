"""Each remediation's track record (runs, verified, not fixed, median time to resolve over 90 days)
is shown on the next approval message for it and by `/erpgo actions`, with who may request and
approve every remediation (Slack user groups resolved)."""

from __future__ import annotations

import copy
import re
from contextlib import AsyncExitStack

import pytest

from bot.local.text import render_text
from tests.db_support import Blocking

CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0ALICE, S0SRE]
verbs:
  "*": [everyone]
  "db *": [oncall]
actions:
  "db.*":
    approvers: [oncall]
"""


@pytest.fixture
def bot_settings(fresh_database, tmp_path) -> dict:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {
        "bot_database_url": fresh_database("bot"),
        "erpgo_database_url": fresh_database("erp"),
        "chatops_policy_file": str(policy),
    }


async def proposed(bot) -> dict:
    await bot.command("db locks", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    [approval] = [m for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    return copy.deepcopy(approval)


async def test_the_next_approval_and_actions_show_the_record(start_bot, bot_settings):
    bot = await start_bot(**bot_settings)
    bot.slack.usergroups.update({"S0SRE": ["U0BOB", "U0CAROL"]})
    async with AsyncExitStack() as stack:
        first = await Blocking(bot_settings["erpgo_database_url"]).start()
        stack.push_async_callback(first.close)
        message = await proposed(bot)
        assert "here: never run in the last 90 days" in render_text(message)
        await bot.slack.click(message, "approval.approve", user_id="U0BOB")
        await bot.settle()
        assert await first.update_finished() == "UPDATE 1"

        second = await Blocking(bot_settings["erpgo_database_url"]).start()
        stack.push_async_callback(second.close)
        again = render_text(await proposed(bot))
        assert "here: 1 run, 1 verified, median " in again and " s to resolve" in again, again

    listing = render_text((await bot.command("actions", user_id="U0CAROL")).json)
    entries = re.split(r"\n(?=\*`)", listing)
    [terminate] = [entry for entry in entries if entry.startswith("*`db.terminate`*")]
    assert "Terminate a backend" in terminate
    assert "requested by @U0ALICE, @U0BOB, @U0CAROL (through `db locks`" in terminate
    assert "approved by oncall = @U0ALICE, @U0BOB, @U0CAROL" in terminate
    assert "here: 1 run, 1 verified, median" in terminate
    [restart] = [entry for entry in entries if entry.startswith("*`docker.restart`*")]
    assert "approved by nobody: the policy (policy.yml) names no approvers" in restart
    assert "here: never run" in restart
