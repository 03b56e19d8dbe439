"""Hardening, third round: what a misconfiguration, a retry storm or a forged click could do, refused
or bounded (settings and policy refused at start, backoff with jitter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.approvals.messages import approval_message, decided_message
from bot.approvals.model import Approval, State
from bot.approvals.policy import Policy
from bot.core.errors import Backoff
from bot.core.findings import Finding, Status
from bot.settings import ConfigError, load_settings
from bot.slack import render


def test_replicas_failing_together_do_not_retry_in_lockstep():
    backoff = Backoff(first=1.0, cap=30.0)
    waits = [backoff.delay(3) for _ in range(200)]
    assert all(0.0 <= wait <= 8.0 for wait in waits), "never longer than the exponential step"
    assert len({round(wait, 3) for wait in waits}) > 150, "each replica draws its own wait"
    assert min(waits) < 2.0 and max(waits) > 6.0, "spread over the whole step (full jitter)"
    assert all(backoff.delay(40) <= 30.0 for _ in range(50)), "the cap holds"


@pytest.mark.parametrize(
    "setting, value, problem",
    [
        ("erpgo_ban_default_duration", "hunter2-xoxb-9f8e7d", "is not a duration such as 3600, 30m, 4h or 7d"),
        ("erpgo_ban_max_duration", "s3cr3t-pasted-here", "is not a duration such as 3600, 30m, 4h or 7d"),
        ("erpgo_ban_default_duration", "0", "Input should be greater than or equal to 1"),
        ("erpgo_ban_allowlist", "10.0.0.0/8,not-an-address", "entry 2 is not an IP address or CIDR"),
        ("erpgo_tls_endpoints", "::::", "entry 1 is not host:port (an IPv6 address in brackets)"),
        ("erpgo_firewall_command", "", "must name the command that runs nft"),
        ("erpgo_firewall_command", "'nft", "is not a command line (unbalanced quotes)"),
        ("erpgo_containers", "erpgo-api,../../info", "entry 2 is not a container name"),
    ],
)
def test_a_setting_that_would_fail_later_stops_the_bot_at_start_without_showing_its_value(setting, value, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(**{setting: value})
    message = str(caught.value)
    assert message.startswith(f"configuration error: {setting.upper()} {problem}"), message
    if len(value) > 4:
        assert value not in message


def test_a_default_ban_longer_than_the_longest_stops_the_bot():
    with pytest.raises(ConfigError) as caught:
        load_settings(erpgo_ban_default_duration="8d", erpgo_ban_max_duration="7d")
    assert str(caught.value) == (
        "configuration error: ERPGO_BAN_DEFAULT_DURATION is longer than ERPGO_BAN_MAX_DURATION"
    )


def test_well_formed_settings_still_load():
    settings = load_settings(
        erpgo_ban_default_duration="30m",
        erpgo_ban_max_duration="7d",
        erpgo_ban_allowlist="10.0.0.0/8, 192.0.2.7, 2001:db8::/32",
        erpgo_tls_endpoints="api.example.com:443,[2001:db8::1]:8443,erpgo_api",
        erpgo_firewall_command="ip netns exec edge nft",
        erpgo_containers="erpgo-api,erpgo_postgres.1",
    )
    assert settings.erpgo_ban_default_duration == 1800 and settings.erpgo_containers[1] == "erpgo_postgres.1"


HOSTILE = "<!channel> <https://evil.example|ok>"


def hostile_approval(state: str) -> Approval:
    now = datetime.now(UTC)
    return Approval(
        id=1,
        action="db.terminate",
        args={"pid": 4242},
        summary=f"Terminate backend 4242 ({HOSTILE})",
        reason=f"idle in transaction, application_name {HOSTILE}",
        preview="SELECT pg_terminate_backend(4242)",
        target=[f"application_name: {HOSTILE}"],
        requester="U0ALICE",
        channel="C0OPS",
        message_ts="1.1",
        thread_ts="1.0",
        state=State(state),
        created_at=now,
        expires_at=now + timedelta(minutes=15),
        decided_by="U0BOB" if state != "pending" else None,
        decided_at=now if state != "pending" else None,
        finished_at=now if state != "pending" else None,
        result=f"terminated {HOSTILE}" if state != "pending" else None,
    )


def all_texts(message: dict) -> list[str]:
    """Every string of a message Slack parses as mrkdwn: the fallback and every text of its blocks."""
    found = [message["text"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message["blocks"])
    return found


@pytest.mark.parametrize("state", ["pending", "succeeded", "rejected"])
def test_an_approvals_fallback_text_escapes_what_a_backend_named_itself(state):
    approval = hostile_approval(state)
    message = approval_message(approval, Policy()) if state == "pending" else decided_message(approval)
    for text in all_texts(message):
        assert "<!channel>" not in text and "<https://evil" not in text, text
    assert "&lt;!channel&gt;" in message["text"], "the fallback (the notification) shows the name, harmless"


def test_a_reports_fallback_text_escapes_its_findings_components():
    finding = Finding(Status.WARN, f"container {HOSTILE}", "restarting")
    message = render.headline("ERPGo logs", [finding])
    assert "<!channel>" not in message["text"] and "&lt;!channel&gt;" in message["text"]
