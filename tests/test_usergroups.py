"""Slack user groups (S…) in the policy: resolved with usergroups.users.list through the local Slack,
cached with a TTL, read again on a miss, and never granting anything when they cannot be read."""

from __future__ import annotations

import asyncio

import pytest

from bot.approvals.policy import parse_policy
from bot.approvals.usergroups import UserGroups
from bot.local.slack import LocalSlack
from bot.settings import ConfigError
from bot.slack.client import SlackOut, web_client

POLICY = """
groups:
  oncall: [U0ALICE, S0SRE]
verbs:
  "*": [everyone]
  "db *": [S0DBA]
actions:
  "db.*":
    approvers: [oncall]
  alerts.ack:
    allowed: [S0GONE]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def slack():
    async with LocalSlack("usergroups-secret") as local:
        local.usergroups.update({"S0SRE": ["U0BOB"], "S0DBA": ["U0DBA"]})
        yield local


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy(slack, clock):
    out = SlackOut(web_client(slack.bot_token, slack.api_url))
    out.client.retry_handlers = []  # an outage is an answer here, not something to wait out
    groups = UserGroups(out.usergroup_members, ttl=300, miss_refresh=10, clock=clock)
    return parse_policy(POLICY, "policy.yml").with_usergroups(groups)


def fetched(slack) -> list[str]:
    return [c.args["usergroup"] for c in slack.calls if c.method == "usergroups.users.list"]


async def test_an_approver_through_a_user_group_is_resolved(slack, policy):
    await policy.resolve("U0BOB")
    assert policy.approval_refusal("U0BOB", "db.terminate", requester="U0ALICE") is None
    await policy.resolve("U0DBA")
    assert policy.verb_refusal("U0DBA", "db locks") is None
    await policy.resolve("U0EVE")
    assert "You may not approve `db.terminate`" in policy.approval_refusal("U0EVE", "db.terminate", "U0ALICE")
    assert "allows it for <!subteam^S0DBA> only" in policy.verb_refusal("U0EVE", "db locks")
    assert sorted(set(fetched(slack))) == ["S0DBA", "S0GONE", "S0SRE"]


async def test_an_unresolvable_user_group_denies(slack, policy):
    await policy.resolve("U0BOB")  # S0GONE does not exist: no_such_subteam
    assert "may not use `alerts.ack`" in policy.action_refusal("U0BOB", "C0OPS", "alerts.ack")
    assert policy.approvable("db.terminate"), "a group that may have members still lets proposals be posted"


async def test_slack_down_never_grants_once_the_cache_has_expired(slack, policy, clock):
    await policy.resolve("U0BOB")
    assert policy.approval_refusal("U0BOB", "db.terminate", "U0ALICE") is None
    slack.outage(503)
    clock.now += 60  # within the TTL the reading stands
    await policy.resolve("U0BOB")
    assert policy.approval_refusal("U0BOB", "db.terminate", "U0ALICE") is None
    clock.now += 300  # expired, and it cannot be read again
    await policy.resolve("U0BOB")
    assert policy.approval_refusal("U0BOB", "db.terminate", "U0ALICE") is not None
    slack.recover()
    clock.now += 11  # a failed reading is tried again after a while, not at every click
    await policy.resolve("U0BOB")
    assert policy.approval_refusal("U0BOB", "db.terminate", "U0ALICE") is None


async def test_someone_added_to_the_group_is_found_on_a_miss(slack, policy, clock):
    await policy.resolve("U0CAROL")
    assert policy.approval_refusal("U0CAROL", "db.terminate", "U0ALICE") is not None
    reads = len(fetched(slack))
    slack.usergroups["S0SRE"].append("U0CAROL")
    await policy.resolve("U0CAROL")  # a miss, but it was read a moment ago: not again yet
    assert len(fetched(slack)) == reads
    clock.now += 11
    await policy.resolve("U0CAROL")
    assert policy.approval_refusal("U0CAROL", "db.terminate", "U0ALICE") is None
    assert fetched(slack).count("S0SRE") == 2


async def test_concurrent_decisions_read_a_group_once(slack, policy):
    await asyncio.gather(*(policy.resolve("U0BOB") for _ in range(10)))
    assert fetched(slack).count("S0SRE") == 1


def test_policy_files_accept_user_group_ids_and_refuse_garbage():
    assert parse_policy(POLICY, "policy.yml").usergroup_ids == {"S0SRE", "S0DBA", "S0GONE"}
    with pytest.raises(ConfigError, match="'s0sre' is neither a group nor a Slack user id"):
        parse_policy('verbs:\n  "*": [s0sre]\n', "policy.yml")
