"""Policies with actions that need several approvers: what the file may say, and what it may not."""

from __future__ import annotations

import pytest

from bot.approvals.policy import parse_policy
from bot.settings import ConfigError

BASE = """
groups:
  oncall: [U0ALICE, U0BOB, U0CAROL]
actions:
  "db.restore":
    approvers: [oncall]
"""


def test_approvals_required_defaults_to_one_and_is_read_per_action():
    policy = parse_policy(BASE + "    approvals_required: 2\n", "p.yml")
    assert policy.approvals_required("db.restore") == 2
    assert policy.approvals_required("db.terminate") == 1
    assert "needs 2 approvals from other people" in policy.approval_refusal("U0ALICE", "db.restore", "U0ALICE")
    assert policy.approval_refusal("U0BOB", "db.restore", "U0ALICE") is None


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("    approvals_required: 4\n", "approvals_required is 4 but its approvers name only 3 people"),
        (
            "    approvals_required: 2\n    self_approval: true\n",
            "self_approval cannot be combined with approvals_required 2",
        ),
        ("    approvals_required: 0\n", "approvals_required"),
        ("    approvals_required: 9\n", "approvals_required"),
    ],
)
def test_impossible_counts_stop_the_bot_with_one_line(extra, problem):
    with pytest.raises(ConfigError) as caught:
        parse_policy(BASE + extra, "p.yml")
    assert problem in str(caught.value) and "p.yml" in str(caught.value)


def test_everyone_is_always_enough_people():
    policy = parse_policy('actions:\n  "docker.*":\n    approvers: [everyone]\n    approvals_required: 3\n', "p.yml")
    assert policy.approvals_required("docker.restart_all") == 3
