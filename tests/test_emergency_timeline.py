"""`/erpgo timeline` after a scripted incident — BackupOverdue fires, triage finds the old dump and
proposes a dump, two people approve it, someone runs a command in the channel, the alert resolves —
uploads a postmortem draft into the alert's thread that lists each step, in order."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.incidents.timeline import Target, parse_target
from bot.local.text import render_text
from bot.targets.backups import dump, list_backups
from tests.emergency_support import POLICY, click, make_shop
from tests.support import eventually

TOKEN = "am-webhook-token-emergency"
CHANNEL = "C0ALERTS"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backup_overdue(status: str, started: datetime, ended: datetime | None = None) -> dict:
    labels = {"alertname": "BackupOverdue", "severity": "warning", "service": "backup"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BackupOverdue"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "BackupOverdue"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "no database backup for over 24 hours"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**labels, "instance": "backup-job"},
                "annotations": {"summary": "no database backup for over 24 hours"},
                "startsAt": iso(started),
                "endsAt": iso(ended) if ended else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "backup-overdue-1",
            }
        ],
    }


async def post_alert(bot, body: dict) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(bot.base_url + "/alerts/alertmanager", data=json.dumps(body), headers=headers) as response:
            return response.status


async def outbox_empty(bot) -> bool:
    async with bot.runtime.store.acquire() as conn:
        pending = await conn.fetchval("SELECT count(*) FROM slack_outbox WHERE state = 'pending'")
    return pending == 0 and bot.runtime.tasks.pending == 0


def test_timeline_targets():
    assert parse_target([]) == Target()
    assert parse_target(["#12"]) == Target(group_id=12)
    link = "https://acme.slack.com/archives/C0OPS/p1796120684837672?thread_ts=1796120680.000100&cid=C0OPS"
    assert parse_target([link]) == Target(channel="C0OPS", thread_ts="1796120680.000100")
    assert parse_target(["1796120684.837672"]) == Target(thread_ts="1796120684.837672")
    with pytest.raises(ValueError):
        parse_target(["yesterday"])


async def test_timeline_of_a_scripted_incident_is_uploaded_in_its_thread_step_by_step(
    start_bot, fresh_database, tmp_path
):
    shop = fresh_database("erp")
    await make_shop(shop)
    backups = tmp_path / "backups"
    backups.mkdir()
    old, _ = await dump(shop, str(backups), prefix="erp", timeout=60)
    then = time.time() - 30 * 3600
    os.utime(old.path, (then, then))
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    bot = await start_bot(
        bot_database_url=fresh_database("bot"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=CHANNEL,
        erpgo_slack_channel_interval=0.05,
        erpgo_database_url=shop,
        erpgo_backup_dir=str(backups),
        chatops_policy_file=str(policy),
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    fired = datetime.now(UTC) - timedelta(seconds=30)
    assert await post_alert(bot, backup_overdue("firing", fired)) == 200
    await eventually(lambda: outbox_empty(bot), timeout=30, what="the triage delivered")
    [head] = bot.slack.channel_messages(CHANNEL)
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert thread[0]["text"].startswith("Triage: BackupOverdue")
    [approval] = [m for m in thread if bot.slack.buttons(m)]
    assert "Dump database" in render_text(approval)

    await click(bot, approval, "U0BOB")
    await click(bot, approval, "U0CAROL")
    assert len(list_backups(str(backups))) == 2
    await bot.command("backups", user_id="U0DAVE", channel_id=CHANNEL)
    assert await post_alert(bot, backup_overdue("resolved", fired, datetime.now(UTC))) == 200
    await eventually(lambda: outbox_empty(bot), timeout=30, what="the resolution delivered")

    answer = await bot.command("timeline", user_id="U0ALICE", channel_id=CHANNEL)
    assert "Writing the timeline of alert group #1" in render_text(answer.json)
    [shared] = await eventually(lambda: list(bot.slack.files.values()), timeout=30, what="the postmortem file")
    assert shared["thread_ts"] == head["ts"] and shared["channel"] == CHANNEL
    assert shared["name"].startswith("postmortem-group-1-") and shared["name"].endswith(".md")
    draft = shared["content"].decode()
    print("\n" + draft)

    steps = [
        "| ALERT | BackupOverdue firing (instance=backup-job, service=backup): no database backup for over 24 hours |",
        "| TRIAGE | Triage: BackupOverdue: WARNING |",
        "| PROPOSED | alertmanager requested #1 Dump database",
        "| APPROVED | @U0BOB approved #1 (pending: 1 of 2 approvals) |",
        "| APPROVED | @U0CAROL approved #1 (executing) |",
        "| EXECUTED | @U0CAROL #1 Dump database",
        "| COMMAND | @U0DAVE ran `/erpgo backups` →",
        "| RESOLVED | BackupOverdue resolved (instance=backup-job, service=backup)",
        "| RESOLVED | the alert group resolved",
    ]
    positions = [draft.index(step) for step in steps]
    assert positions == sorted(positions), "each step, in the order it happened"
    assert "↳ [WARN] Backups — newest erp_" in draft, "the triage findings under the triage step"
    assert "## Actions taken" in draft and "**#1 Dump database" in draft and "— succeeded" in draft
    assert "approved by @U0BOB, @U0CAROL" in draft and "result: wrote erp_" in draft
    assert "## Open follow-ups" in draft and "Root cause: _to be written_" in draft
    assert "- **Ended:**" in draft and "not yet" not in draft


def unsigned_jwt(claims: dict) -> str:
    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{'A' * 43}"


async def test_a_private_lookup_reaches_the_postmortem_as_who_asked_only(start_bot, fresh_database, tmp_path):
    bot = await start_bot(
        bot_database_url=fresh_database("bot"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=CHANNEL,
        erpgo_slack_channel_interval=0.05,
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    assert await post_alert(bot, backup_overdue("firing", datetime.now(UTC) - timedelta(seconds=30))) == 200
    await eventually(lambda: outbox_empty(bot), timeout=30, what="the alert delivered")
    token = unsigned_jwt({"sub": "svc-payroll-admin", "email": "payroll.admin@example.com", "type": "access"})
    await bot.command(f"jwt {token}", user_id="U0ALICE", channel_id=CHANNEL)
    await eventually(lambda: outbox_empty(bot), timeout=30, what="the private answer")

    too_big = await bot.command("timeline 99999999999999999999", user_id="U0ALICE", channel_id=CHANNEL)
    said = render_text(too_big.json)
    assert "larger than any alert group number" in said and "Usage:" in said and "DataError" not in said

    await bot.command("timeline", user_id="U0ALICE", channel_id=CHANNEL)
    [shared] = await eventually(lambda: list(bot.slack.files.values()), timeout=30, what="the postmortem file")
    draft = shared["content"].decode()
    assert "| COMMAND | a private lookup by @U0ALICE |" in draft
    for private in ("svc-payroll-admin", "payroll.admin", "jwt", token[:20]):
        assert private not in draft
    async with bot.runtime.store.acquire() as conn:
        [row] = await conn.fetch("SELECT verb, args, headline FROM commands_run WHERE user_id = 'U0ALICE'")
    assert tuple(row) == ("private", "", "")
