"""What the container-action tests share: a policy where on-call may approve docker actions, the bot's
settings with it, and the approval message a command posts."""

from __future__ import annotations

import copy

import pytest

from bot.local.text import render_text

CHANNEL = "C0OPS"
STAYS_UP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"  # a container that stops at once on SIGTERM
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB, U0CAROL]
verbs:
  "*": [everyone]
actions:
  "docker.*":
    approvers: [oncall]
"""


@pytest.fixture
def docker_bot_settings(fresh_database, tmp_path, docker_engine) -> dict:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {
        "bot_database_url": fresh_database("bot"),
        "chatops_policy_file": str(policy),
        "docker_host": docker_engine.host,
    }


async def proposed(bot, verb: str) -> dict:
    """Run `/erpgo <verb>` as U0ALICE; the one approval message it posted in the report's thread."""
    await bot.command(verb, user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    approvals = [m for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    assert len(approvals) == 1, [render_text(m) for m in bot.slack.thread(CHANNEL, head["ts"])]
    return copy.deepcopy(approvals[0])
