"""Approval-gated remediation end to end: a real lock in PostgreSQL, the bot proposing to terminate
the blocker, Slack clicks (signed, over HTTP) deciding, and the bot's own database keeping state."""

from __future__ import annotations

import asyncio
import copy
import os
import sys
import time

import aiohttp
import asyncpg
import pytest

from bot.local.text import render_text
from demo.services import PostgresServer
from tests.emergency_support import click_body
from tests.support import POLICY, eventually

CHANNEL = "C0OPS"


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def bot_settings(fresh_database, locked, policy_file) -> dict:
    return {
        "bot_database_url": fresh_database("bot"),
        "erpgo_database_url": locked[0],
        "chatops_policy_file": policy_file,
    }


async def fetch(dsn: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def audit(dsn: str) -> list[tuple]:
    return [tuple(r) for r in await fetch(dsn, "SELECT actor, event, approval_id, outcome FROM audit_log ORDER BY id")]


async def state_of(dsn: str, approval_id: int) -> str:
    return (await fetch(dsn, "SELECT state FROM approvals WHERE id = $1", approval_id))[0]["state"]


async def propose(bot, user: str = "U0ALICE") -> dict:
    """Run /erpgo db locks as `user`; returns the approval message posted in the report's thread."""
    await bot.command("db locks", user_id=user)
    head = bot.slack.channel_messages(CHANNEL)[-1]
    approvals = [m for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    assert len(approvals) == 1, [render_text(m) for m in bot.slack.thread(CHANNEL, head["ts"])]
    return copy.deepcopy(approvals[0])  # as the clients saw it; slack.messages keeps the live one


def approval_id(slack, message) -> int:
    return int(slack.buttons(message)[0]["value"])


def current(slack, message) -> dict:
    return slack.messages[CHANNEL, message["ts"]]


def thread_texts(slack, message) -> list[str]:
    return [render_text(m) for m in slack.thread(CHANNEL, message["thread_ts"])]


def told(slack, user: str) -> list[str]:
    """What only `user` was shown (ephemeral messages), as text."""
    return [render_text(e) for e in slack.ephemerals if e["user"] == user]


async def click(bot, message, action: str = "approve", user: str = "U0BOB", **kw):
    result = await bot.slack.click(message, f"approval.{action}", user_id=user, **kw)
    assert result.status == 200 and result.within_ack_deadline
    await bot.settle()
    return result


# --- the happy path ------------------------------------------------------------------------


async def test_requester_proposes_colleague_approves_blocker_is_terminated(start_bot, bot_settings, locked):
    _, scenario = locked
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    text = render_text(message)
    pid = scenario.blocker_pid
    # exactly what will happen, and to what
    assert f"Approval #1 — Terminate backend {pid} (user postgres, application billing-worker)" in text
    assert "Requested by @U0ALICE" in text and "may be approved by oncall" in text
    assert "state: idle in transaction" in text and "last query: SELECT * FROM accounts WHERE id = 1 FOR UPDATE" in text
    assert f"pid {scenario.waiter_pid} (postgres) waiting" in text and "UPDATE accounts SET balance" in text
    assert (
        f"SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a\nWHERE a.pid = {pid} AND a.backend_start = '"
        in text
    )
    assert "cancelling would not release its locks" in text
    approve, reject = bot.slack.buttons(message)
    assert (approve["action_id"], approve["value"], approve["style"]) == ("approval.approve", "1", "danger")
    assert approve["confirm"]["title"]["text"] == "Approve #1?" and approve["confirm"]["style"] == "danger"
    assert (reject["action_id"], reject["value"], reject["style"]) == ("approval.reject", "1", None)

    await click(bot, message, user="U0BOB")

    assert await scenario.update_finished() == "UPDATE 1", "the waiter's UPDATE completes"
    assert not await scenario.blocker_alive(), "the blocker's session is gone"
    updated = render_text(current(bot.slack, message))
    assert bot.slack.buttons(current(bot.slack, message)) == [], "buttons gone"
    assert f"approved by @U0BOB — executed: terminated backend {pid}" in updated
    replies = [render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"])]
    assert any(f"Approval #1 (Terminate backend {pid}" in r and "approved by @U0BOB — executed" in r for r in replies)
    assert await audit(bot_settings["bot_database_url"]) == [
        ("U0ALICE", "proposed", 1, "pending"),
        ("U0BOB", "approved", 1, "executing"),
        ("U0BOB", "executed", 1, "succeeded"),
        ("bot", "verified", 1, "verified"),
    ]
    assert await state_of(bot_settings["bot_database_url"], 1) == "succeeded"
    verified = render_text(current(bot.slack, message))
    assert f"Verified*: pid {pid} (idle in transaction" in verified, verified
    assert "blocks 1 session; the longest has waited" in verified and "→ no session is waiting for a lock" in verified
    assert any("Verified" in r and "→ no session is waiting for a lock" in r for r in thread_texts(bot.slack, message))


# --- refusals ------------------------------------------------------------------------------


async def test_requester_cannot_approve_their_own_proposal(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot, user="U0ALICE")
    await click(bot, message, user="U0ALICE")
    assert any("You requested this yourself; someone else has to approve it" in t for t in told(bot.slack, "U0ALICE"))
    assert await locked[1].blocker_alive()
    assert bot.slack.buttons(current(bot.slack, message)), "still pending, buttons still there"
    assert (await audit(bot_settings["bot_database_url"]))[-1][:3] == ("U0ALICE", "refused", 1)
    assert await state_of(bot_settings["bot_database_url"], 1) == "pending"


async def test_self_approval_when_the_policy_allows_it(start_bot, bot_settings, locked, tmp_path):
    path = tmp_path / "self.yml"
    path.write_text(POLICY + "    self_approval: true\n")
    bot = await start_bot(**bot_settings | {"chatops_policy_file": str(path)})
    message = await propose(bot, user="U0ALICE")
    assert "the requester may approve too" in render_text(message)
    await click(bot, message, user="U0ALICE")
    assert not await locked[1].blocker_alive()


async def test_unauthorised_approver_is_refused(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    await click(bot, message, user="U0EVE")
    assert any(
        "You may not approve `db.terminate`" in t and "allows oncall only" in t for t in told(bot.slack, "U0EVE")
    )
    await click(bot, message, action="reject", user="U0EVE")
    assert any("You may not reject" in t for t in told(bot.slack, "U0EVE"))
    assert await locked[1].blocker_alive()
    rows = await audit(bot_settings["bot_database_url"])
    assert [r[:2] for r in rows[-2:]] == [("U0EVE", "refused"), ("U0EVE", "refused")]
    assert await state_of(bot_settings["bot_database_url"], 1) == "pending"


async def test_a_click_counts_only_for_the_approval_of_the_message_clicked(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    first = await propose(bot)
    second = await propose(bot)
    assert (approval_id(bot.slack, first), approval_id(bot.slack, second)) == (1, 2)

    def say_two(payload: dict) -> None:
        payload["actions"][0]["value"] = "2"

    await click(bot, first, user="U0BOB", tamper=say_two)
    assert any("names another approval than the one of its message" in t for t in told(bot.slack, "U0BOB"))
    dsn = bot_settings["bot_database_url"]
    assert [await state_of(dsn, 1), await state_of(dsn, 2)] == ["pending", "pending"]
    assert await locked[1].blocker_alive()
    assert bot.slack.buttons(current(bot.slack, first)) and bot.slack.buttons(current(bot.slack, second))
    assert (await audit(dsn))[-1][:3] == ("U0BOB", "refused", 2)


@pytest.mark.parametrize(
    "origin",
    [
        {"team": {"id": "T0OTHER", "domain": "other"}, "user_team": "T0OTHER"},
        {"team": {"id": "T0LOCAL", "domain": "local"}, "user_team": "T0OTHER"},  # a Slack Connect guest
        {"enterprise": {"id": "E0ELSE", "name": "else"}},
    ],
)
async def test_a_click_from_another_team_or_enterprise_does_nothing(start_bot, bot_settings, locked, origin):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)

    def elsewhere(payload: dict) -> None:
        payload.update({k: v for k, v in origin.items() if k != "user_team"})
        if "user_team" in origin:
            payload["user"]["team_id"] = origin["user_team"]

    await click(bot, message, user="U0BOB", tamper=elsewhere)
    assert await state_of(bot_settings["bot_database_url"], 1) == "pending"
    assert await locked[1].blocker_alive()
    assert bot.slack.buttons(current(bot.slack, message)), "the message is untouched"
    command = await bot.slack.slash("health", user_id="U0BOB")  # the bot's own team still gets answers
    assert "only" not in render_text(command.json)


async def test_a_stop_during_an_approved_action_settles_its_message_and_thread(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    started = asyncio.Event()

    async def hangs(_ctx, **_args) -> str:  # a remediation still running when SIGTERM's grace ends
        started.set()
        await asyncio.sleep(120)
        return "never"

    slow = copy.copy(bot.runtime.registry.remediations["db.terminate"])
    slow.func = hangs
    bot.runtime.registry.remediations["db.terminate"] = slow
    result = await bot.slack.click(message, "approval.approve", user_id="U0BOB")
    assert result.status == 200
    await asyncio.wait_for(started.wait(), 20)
    await bot.runtime.drain(grace=0.1)  # what SIGTERM does: the grace runs out and the click is cancelled

    assert await state_of(bot_settings["bot_database_url"], 1) == "failed"
    settled = await eventually(
        lambda: not bot.slack.buttons(current(bot.slack, message)) and current(bot.slack, message),
        20,
        "the approval's message without its buttons",
    )
    assert "interrupted: the bot stopped while this ran" in render_text(settled)
    assert "expires" not in render_text(settled)
    replies = [render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"])]
    assert any("Approval #1" in r and "interrupted" in r for r in replies), replies


async def test_expired_approval_is_refused_and_its_message_says_expired(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    bot_db = bot_settings["bot_database_url"]
    await fetch(bot_db, "UPDATE approvals SET expires_at = created_at + interval '1 microsecond' WHERE id = 1")
    await click(bot, message, user="U0BOB")
    assert any("Approval #1 expired" in t and "nothing was done" in t for t in told(bot.slack, "U0BOB"))
    updated = current(bot.slack, message)
    assert bot.slack.buttons(updated) == [] and "expired at" in render_text(updated)
    assert await locked[1].blocker_alive()
    assert await state_of(bot_db, 1) == "expired"
    assert [r[:2] for r in (await audit(bot_db))[-2:]] == [("bot", "expired"), ("U0BOB", "refused")]


async def test_reject_updates_the_message_and_later_approvals_are_refused(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    await click(bot, message, action="reject", user="U0BOB")
    updated = current(bot.slack, message)
    assert bot.slack.buttons(updated) == [] and "rejected by @U0BOB — nothing was done" in render_text(updated)
    assert any("rejected by @U0BOB" in render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"]))
    await click(bot, message, user="U0CAROL")  # the old buttons, as a stale client still shows them
    assert any(
        "already handled: rejected by @U0CAROL" not in t and "already handled: rejected by @U0BOB" in t
        for t in told(bot.slack, "U0CAROL")
    )
    assert await locked[1].blocker_alive()
    bot_db = bot_settings["bot_database_url"]
    assert await state_of(bot_db, 1) == "rejected"
    assert [r[1] for r in await audit(bot_db)] == ["proposed", "rejected", "refused"]


async def test_requester_reject_withdraws_the_proposal(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    await click(bot, message, action="reject", user="U0ALICE")
    assert "withdrawn by @U0ALICE (the requester)" in render_text(current(bot.slack, message))
    assert await state_of(bot_settings["bot_database_url"], 1) == "cancelled"


async def test_world_changed_before_approval_nothing_is_done(start_bot, bot_settings, locked):
    _, scenario = locked
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    await scenario.blocker.execute("ROLLBACK")  # the lock is released before anyone approves
    await scenario.update_finished()
    await click(bot, message, user="U0BOB")
    assert await scenario.blocker_alive(), "a session that no longer blocks is left alone"
    assert (
        f"approved by @U0BOB — nothing done: backend {scenario.blocker_pid} no longer blocks any session"
        in render_text(current(bot.slack, message))
    )
    assert (await audit(bot_settings["bot_database_url"]))[-1][1:] == ("executed", 1, "nothing done")


# --- exactly once -------------------------------------------------------------------------


async def test_twenty_concurrent_clicks_on_two_replicas_execute_once(start_bot, bot_settings, locked):
    erp_dsn, scenario = locked
    await fetch(erp_dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await fetch(erp_dsn, "SELECT pg_stat_statements_reset()")
    first = await start_bot(**bot_settings)
    second = await start_bot(slack=first.slack, **bot_settings)  # a second replica, same Slack, same database
    slack = first.slack
    message = await propose(second)  # slash commands go to the replica started last

    clicks = [
        (bot.base_url + "/slack/events", user)
        for _ in range(5)
        for bot in (first, second)
        for user in ("U0BOB", "U0CAROL")
    ]
    assert len(clicks) == 20
    async with aiohttp.ClientSession() as http:

        async def send(url: str, user: str) -> tuple[int, float]:
            body = click_body(slack, message, user)
            started = time.monotonic()
            async with http.post(url, data=body.encode(), headers=slack.signed_headers(body)) as response:
                return response.status, time.monotonic() - started

        answers = await asyncio.gather(*(send(url, user) for url, user in clicks))
    await first.settle()
    await second.settle()

    assert all(status == 200 and elapsed < 3 for status, elapsed in answers), answers
    terminations = await fetch(
        erp_dsn,
        "SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements WHERE query LIKE $1",
        "SELECT pg_terminate_backend(a.pid)%",
    )
    assert terminations[0]["calls"] == 1, "exactly one pg_terminate_backend"
    assert not await scenario.blocker_alive() and await scenario.update_finished() == "UPDATE 1"
    rows = await audit(bot_settings["bot_database_url"])
    assert [r for r in rows if r[1] == "executed"] == [(rows[1][0], "executed", 1, "succeeded")]
    assert len([r for r in rows if r[1] == "approved"]) == 1
    assert len([r for r in rows if r[1] == "refused" and r[3].startswith("already handled")]) == 19
    already = [t for user in ("U0BOB", "U0CAROL") for t in told(slack, user) if "Approval #1 " in t and "already" in t]
    assert len(already) == 19, "the others were told it was already handled"
    assert len([c for c in slack.calls if c.method == "chat.update"]) == 2, "decided, then verified"
    print(
        f"\nconcurrency: {len(clicks)} clicks on 2 replicas -> {terminations[0]['calls']} pg_terminate_backend, "
        f"{len([r for r in rows if r[1] == 'executed'])} executed audit row (succeeded), "
        f"{len(already)} told 'already handled'"
    )


async def test_slack_retry_of_a_click_does_not_execute_again(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    await click(bot, message, user="U0BOB")
    retry = await click(bot, message, user="U0BOB", retry_num=1, retry_reason="http_timeout")
    assert retry.elapsed_s < 1
    rows = await audit(bot_settings["bot_database_url"])
    assert [r[1] for r in rows] == ["proposed", "approved", "executed", "verified"], "the retry changed nothing"
    assert told(bot.slack, "U0BOB") == [], "and is not answered twice"
    assert len([c for c in bot.slack.calls if c.method == "chat.update"]) == 2, "decided, then verified"


async def test_approval_survives_a_restart_of_the_bot(start_bot, bot_settings, locked):
    before = await start_bot(**bot_settings)
    message = await propose(before)
    await before.stop()
    after = await start_bot(slack=before.slack, **bot_settings)  # a new process: nothing in memory
    await click(after, message, user="U0BOB")
    assert not await locked[1].blocker_alive()
    assert "approved by @U0BOB — executed" in render_text(current(after.slack, message))


async def test_bot_database_down_at_click_time(start_bot, locked, policy_file, tmp_path):
    bot_pg = PostgresServer(tmp_path / "botpg", pg_stat_statements=False)
    bot_pg.start()
    try:
        bot_db = bot_pg.dsn("postgres")
        bot = await start_bot(bot_database_url=bot_db, erpgo_database_url=locked[0], chatops_policy_file=policy_file)
        message = await propose(bot)
        bot_pg.stop()
        result = await click(bot, message, user="U0BOB")
        assert result.within_ack_deadline
        assert any(
            "Could not reach the bot's database — nothing was done, try again" in t for t in told(bot.slack, "U0BOB")
        )
        assert await locked[1].blocker_alive(), "nothing executed"
        assert bot.slack.buttons(current(bot.slack, message)), "the message still offers the buttons"
        bot_pg.start()
        assert await state_of(bot_db, 1) == "pending", "still pending once the database is back"
        await click(bot, message, user="U0BOB")  # and it can be approved then
        assert not await locked[1].blocker_alive()
    finally:
        bot_pg.cleanup()


# --- without the bot's database, without a policy -----------------------------------------------


async def test_without_bot_database_proposals_are_text_only(start_bot, locked, policy_file):
    bot = await start_bot(erpgo_database_url=locked[0], chatops_policy_file=policy_file)
    await bot.command("db locks")
    head = bot.slack.channel_messages(CHANNEL)[0]
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert not any(bot.slack.buttons(m) for m in thread)
    text = "\n".join(render_text(m) for m in thread)
    assert (
        "Proposed:* Terminate backend" in text and "Approvals need the bot's own database: set BOT_DATABASE_URL" in text
    )
    result = await bot.command("approvals")
    assert "set BOT_DATABASE_URL" in render_text(result.json)
    # a click on an approval message from before (BOT_DATABASE_URL since removed)
    stale = {
        "ts": head["ts"],
        "channel": CHANNEL,
        "thread_ts": head["ts"],
        "blocks": [
            {
                "type": "actions",
                "block_id": "b",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approval.approve",
                        "value": "7",
                        "text": {"type": "plain_text", "text": "Approve"},
                    }
                ],
            }
        ],
    }
    await click(bot, stale, user="U0BOB")
    assert any("set BOT_DATABASE_URL" in t for t in told(bot.slack, "U0BOB"))
    assert await locked[1].blocker_alive()


async def test_without_policy_file_nothing_is_approvable(start_bot, fresh_database, locked, capsys):
    from bot.core.logs import configure_logging

    configure_logging("info")
    bot_db = fresh_database("bot")
    bot = await start_bot(bot_database_url=bot_db, erpgo_database_url=locked[0])
    assert capsys.readouterr().out.count('"event": "policy_not_configured"') == 1
    await bot.command("db locks")
    head = bot.slack.channel_messages(CHANNEL)[0]
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert not any(bot.slack.buttons(m) for m in thread), "no Approve button anyone could press"
    assert "No one may approve `db.terminate` under the default policy" in "\n".join(render_text(m) for m in thread)
    assert await fetch(bot_db, "SELECT * FROM approvals") == []


# --- /erpgo approvals and /erpgo audit -----------------------------------------------------------


async def test_approvals_lists_pending_with_links_and_audit_shows_who_did_what(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    listing = render_text((await bot.command("approvals")).json)
    assert "*Open approvals* (1)" in listing and f"#1 Terminate backend {locked[1].blocker_pid}" in listing
    assert "requested by @U0ALICE" in listing and f"/archives/{CHANNEL}/p{message['ts'].replace('.', '')}" in listing
    await click(bot, message, user="U0ALICE")  # refused: self-approval
    await click(bot, message, user="U0BOB")
    assert render_text((await bot.command("approvals")).json) == "No open approvals."
    log = render_text((await bot.command("audit 4")).json)
    lines = log.splitlines()[0:1] + log.splitlines()[2:]
    assert log.splitlines()[0] == "*Audit log* — the newest 4, newest first"
    assert "` bot verified #1 `db.terminate` → verified — pid " in log.splitlines()[1]
    assert "@U0BOB executed #1 `db.terminate` → succeeded — terminated backend" in lines[1]
    assert "@U0BOB approved #1 `db.terminate` → executing" in lines[2]
    assert "@U0ALICE was refused #1 `db.terminate` → You requested this yourself" in lines[3]
    assert bot.slack.channel_messages(CHANNEL)[-1]["ts"] == bot.slack.channel_messages(CHANNEL)[0]["ts"], (
        "listings are only for the asker"
    )
    bad = render_text((await bot.command("audit lots")).json)
    assert "one number of entries, 1 to 100" in bad


async def test_audit_log_is_append_only(start_bot, bot_settings, locked):
    bot = await start_bot(**bot_settings)
    await propose(bot)
    bot_db = bot_settings["bot_database_url"]
    for statement in ("UPDATE audit_log SET outcome = 'nothing'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await fetch(bot_db, statement)
    assert len(await audit(bot_db)) == 1


# --- the shell ------------------------------------------------------------------------------


async def test_shell_approves_as_another_user_through_the_same_engine(bot_settings, locked, fresh_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPGO_", "SLACK_", "BOT_", "CHATOPS_"))}
    env |= {
        "BOT_DATABASE_URL": bot_settings["bot_database_url"],
        "ERPGO_DATABASE_URL": locked[0],
        "CHATOPS_POLICY_FILE": bot_settings["chatops_policy_file"],
    }
    lines = "/erpgo db locks\napprove 1\n/as U0BOB approve 1\n/erpgo audit 5\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "shell",
        "--user",
        "U0ALICE",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(lines.encode()), 60)
    out = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "[ Approve ]! (approval.approve)  [ Reject ] (approval.reject)" in out
    assert "You requested this yourself" in out
    assert "approved by @U0BOB — executed: terminated backend" in out
    assert not await locked[1].blocker_alive()


async def test_expired_approval_loses_its_buttons_without_a_click(start_bot, bot_settings, locked):
    from handlers.approvals import expire_and_update

    bot = await start_bot(**bot_settings)
    message = await propose(bot)
    bot_db = bot_settings["bot_database_url"]
    await fetch(bot_db, "UPDATE approvals SET expires_at = created_at + interval '1 microsecond' WHERE id = 1")
    await expire_and_update(bot.runtime)  # what the bot's periodic sweep runs
    updated = current(bot.slack, message)
    assert bot.slack.buttons(updated) == [] and "expired at" in render_text(updated)
    assert await state_of(bot_db, 1) == "expired"
    assert any(loop.get_name() == "approvals:expiry" and not loop.done() for loop in bot.runtime.loops)
