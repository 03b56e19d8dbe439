"""The ChatOps policy: the YAML file, the safe default, the most specific rule deciding, malformed
files stopping the bot with one clear line, and refusals in Slack (ephemeral, audited)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.approvals.policy import Policy, load_policy, parse_policy
from bot.local.text import render_text
from bot.settings import ConfigError

ROOT = Path(__file__).resolve().parents[1]

POLICY = """
groups:
  oncall: [U0ALICE, U0BOB]
  dba: [U0DBA]
channels: [C0OPS, C0INCIDENT]
verbs:
  "*": [everyone]
  "db *": [oncall, dba]
  db locks: [dba]
  audit: [U0BOB]
actions:
  "db.*":
    approvers: [oncall]
  db.terminate:
    approvers: [dba, U0BOB]
    self_approval: true
    expiry_minutes: 5
"""


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY, "policy.yml")


def test_verbs_most_specific_rule_decides(policy):
    assert policy.verb_refusal("U0NEW", "health") is None  # "*": everyone
    assert policy.verb_refusal("U0ALICE", "db long-queries") is None  # "db *": oncall
    assert "allows it for oncall, dba only" in policy.verb_refusal("U0NEW", "db long-queries")
    assert policy.verb_refusal("U0DBA", "db locks") is None  # the exact name beats "db *"
    assert "allows it for dba only" in policy.verb_refusal("U0ALICE", "db locks")
    assert policy.verb_refusal("U0BOB", "audit") is None and policy.verb_refusal("U0ALICE", "audit")
    assert policy.verb_refusal("U0NEW", "help") is None


def test_channels(policy):
    assert policy.command_refusal("U0ALICE", "C0OPS", "health") is None
    refusal = policy.command_refusal("U0ALICE", "C0RANDOM", "health")
    assert (
        refusal
        == "`/erpgo` is not used in this channel: the policy (policy.yml) allows it in <#C0OPS>, <#C0INCIDENT> only."
    )
    assert policy.command_refusal("U0ALICE", "C0RANDOM", "help") is None


def test_actions(policy):
    assert policy.approval_refusal("U0BOB", "db.cancel", requester="U0ALICE") is None
    assert "allows oncall only" in policy.approval_refusal("U0DBA", "db.cancel", requester="U0ALICE")
    assert "You requested this yourself" in policy.approval_refusal("U0ALICE", "db.cancel", requester="U0ALICE")
    # db.terminate: its own rule, self-approval allowed, a shorter expiry
    assert policy.approval_refusal("U0DBA", "db.terminate", requester="U0DBA") is None
    assert "allows dba, U0BOB only" in policy.approval_refusal("U0ALICE", "db.terminate", requester="U0BOB")
    assert policy.expiry("db.terminate") == timedelta(minutes=5)
    assert policy.expiry("db.cancel") == timedelta(minutes=15), "the default expiry"
    assert not policy.approvable("docker.restart") and "names no approvers" in policy.approval_refusal(
        "U0BOB", "docker.restart", requester="U0ALICE"
    )


def test_default_policy_reads_for_everyone_and_approves_nothing():
    default = load_policy(None)
    assert default.is_default
    assert default.command_refusal("U0ANYONE", "C0ANY", "db locks") is None
    assert default.command_refusal("U0ANYONE", "C0ANY", "audit") is None
    assert not default.approvable("db.terminate")
    assert "No one may approve `db.terminate`: the default policy" in default.approval_refusal(
        "U0BOB", "db.terminate", requester="U0ALICE"
    )


def test_shipped_policies_load():
    example = load_policy(str(ROOT / "policy.example.yml"))
    assert example.approvable("db.terminate") and not example.self_approval("db.terminate")
    demo = load_policy(str(ROOT / "demo" / "policy.yml"))
    assert demo.approval_refusal("U0BOB", "db.terminate", requester="U0YOU") is None
    assert "You requested this yourself" in demo.approval_refusal("U0YOU", "db.terminate", requester="U0YOU")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("groups: [oops", "not valid YAML (line 1, column 14)"),
        ("- just\n- a list", "must be a mapping"),
        ("verbs:\n  health: [oncal]", "verbs › health: 'oncal' is neither a group nor a Slack user id"),
        ("actions:\n  db.*:\n    approvers: [dbas]", "actions › db.* › approvers: 'dbas' is neither a group"),
        ("actions:\n  db.*:\n    expiry_minutes: 0", "actions › db.* › expiry_minutes: Input should be greater than 0"),
        ("actions:\n  db.*:\n    self_aproval: true", "actions › db.* › self_aproval: Extra inputs are not permitted"),
        ("groups:\n  oncall: [alice]", "groups › oncall: 'alice' is not a Slack user id"),
        ("channels: [ops]", "channels: 'ops' is not a Slack channel id"),
        ("roles: {}", "roles: Extra inputs are not permitted"),
    ],
)
def test_malformed_policy_names_file_and_problem(text, problem):
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, "/etc/erpgo/policy.yml")
    message = str(caught.value)
    assert message.startswith("configuration error: CHATOPS_POLICY_FILE /etc/erpgo/policy.yml: ")
    assert problem in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('verbs:\n  "*": [everyone]\n  audti: [U0BOB]\n', "verbs › 'audti' matches no verb"),
        ("actions:\n  db.terminat:\n    approvers: [U0BOB]\n", "actions › 'db.terminat' matches no action"),
        ('actions:\n  "dbx.*":\n    approvers: [U0BOB]\n', "actions › 'dbx.*' matches no action"),
    ],
)
def test_a_policy_pattern_that_matches_nothing_stops_the_bot_naming_it(tmp_path, text, pattern):
    from bot.app import build_runtime
    from bot.settings import load_settings

    path = tmp_path / "policy.yml"
    path.write_text(text)
    runtime = build_runtime(load_settings(chatops_policy_file=str(path)), offline=True)
    with pytest.raises(ConfigError) as caught:
        runtime.load_policy()
    assert str(caught.value) == f"configuration error: CHATOPS_POLICY_FILE {path}: {pattern} of this bot"


def test_the_shipped_policies_name_only_verbs_and_actions_the_bot_has():
    from bot.app import build_runtime
    from bot.settings import load_settings

    for shipped in (ROOT / "policy.example.yml", ROOT / "demo" / "policy.yml"):
        runtime = build_runtime(load_settings(chatops_policy_file=str(shipped)), offline=True)
        runtime.load_policy()  # raises when a pattern matches nothing
        assert runtime.policy.source == str(shipped)


def test_missing_policy_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_policy(str(tmp_path / "nope.yml"))


def test_bot_with_malformed_policy_exits_2_with_one_line(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("actions:\n  db.*:\n    approvers: [dbas]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPGO_", "SLACK_", "BOT_", "CHATOPS_"))}
    env |= {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cr3t-signing", "CHATOPS_POLICY_FILE": str(path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"configuration error: CHATOPS_POLICY_FILE {path}: actions › db.* › approvers: 'dbas' is "
        "neither a group nor a Slack user id (groups: none defined)"
    ]


# --- in Slack ----------------------------------------------------------------------------------


async def test_refused_verb_is_ephemeral_and_audited(start_bot, fresh_database, tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    bot_db = fresh_database("bot")
    bot = await start_bot(bot_database_url=bot_db, chatops_policy_file=str(path))
    result = await bot.command("db locks", user_id="U0ALICE")
    assert render_text(result.json).endswith(
        " You may not run `/erpgo db locks`: the policy (policy.yml) allows it for dba only."
    )
    result = await bot.command("health", user_id="U0ALICE", channel_id="C0RANDOM")
    assert "not used in this channel" in render_text(result.json)
    result = await bot.command("audit", user_id="U0ALICE")
    assert "You may not run `/erpgo audit`" in render_text(result.json)
    assert bot.slack.channel_messages("C0OPS") == [] and bot.slack.channel_messages("C0RANDOM") == []
    conn = await asyncpg.connect(bot_db)
    try:
        rows = await conn.fetch("SELECT actor, event, action, outcome, channel FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    assert [(r["actor"], r["event"], r["action"], r["channel"]) for r in rows] == [
        ("U0ALICE", "refused", "/erpgo db locks", "C0OPS"),
        ("U0ALICE", "refused", "/erpgo health", "C0RANDOM"),
        ("U0ALICE", "refused", "/erpgo audit", "C0OPS"),
    ]
    assert rows[0]["outcome"].startswith("You may not run `/erpgo db locks`")
    help_text = render_text((await bot.command("help", user_id="U0NEW", channel_id="C0RANDOM")).json)
    assert "/erpgo approvals" in help_text and "/erpgo audit [n]" in help_text
