"""One delivery path: reports, approval messages, their updates and the results of clicks are rows of
the outbox, delivered in order, the approval's message recorded by whichever replica sends it; the
stored copy (redacted) is what Slack gets; interactive rows go first; without a bot database the
same rows live in the process and survive a Slack outage."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bot.approvals.engine import Approvals
from bot.core.findings import Proposal
from bot.local.slack import LocalSlack
from bot.local.text import render_text
from bot.settings import load_settings
from bot.slack.delivery import Outbox, outbox_client
from bot.slack.outbox import BACKGROUND, INTERACTIVE
from bot.store.pool import Store
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]
CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB]
verbs:
  "*": [everyone]
actions:
  "db.*":
    approvers: [oncall]
"""


# ---------------------------------------------------------------------- helpers


@asynccontextmanager
async def lock_wait(dsn: str) -> AsyncIterator[int]:
    """A real lock wait in `dsn`: an idle-in-transaction blocker (its pid is yielded) and a waiter."""
    admin = await asyncpg.connect(dsn)
    await admin.execute(
        "CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, n int); INSERT INTO accounts VALUES (1, 0)"
    )
    await admin.close()
    blocker = await asyncpg.connect(dsn, server_settings={"application_name": "billing-worker"})
    waiter = await asyncpg.connect(dsn)
    await blocker.execute("BEGIN; SELECT * FROM accounts WHERE id = 1 FOR UPDATE")
    update = asyncio.create_task(waiter.execute("UPDATE accounts SET n = n + 1 WHERE id = 1"))

    async def waiting() -> bool:
        probe = await asyncpg.connect(dsn)
        try:
            return bool(await probe.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
        finally:
            await probe.close()

    await eventually(waiting, what="the UPDATE to wait for the lock")
    try:
        yield blocker.get_server_pid()
    finally:
        update.cancel()
        blocker.terminate()
        waiter.terminate()
        await asyncio.gather(update, return_exceptions=True)


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


async def rows(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def posts(slack: LocalSlack, method: str = "chat.postMessage") -> list:
    return [c for c in slack.calls if c.method == method and c.ok]


def approval_messages(slack: LocalSlack, head_ts: str) -> list[dict]:
    return [m for m in slack.thread(CHANNEL, head_ts) if slack.buttons(m)]


@pytest.fixture
async def approval_bot(start_bot, fresh_database, policy_file):
    """(bot, bot database DSN, blocker pid): a bot with its database, a policy and a lock wait to propose on."""
    erp = fresh_database("erp")
    bot_db = fresh_database("bot")
    async with lock_wait(erp) as pid:
        bot = await start_bot(bot_database_url=bot_db, erpgo_database_url=erp, chatops_policy_file=policy_file)
        yield bot, bot_db, pid


# ---------------------------------------------------------------------- reports and approvals


async def test_report_details_and_approval_are_one_thread_of_outbox_rows(approval_bot):
    bot, bot_db, pid = approval_bot
    await bot.command("db locks", user_id="U0ALICE")
    [head] = bot.slack.channel_messages(CHANNEL)
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert len(thread) == 2 and not bot.slack.buttons(thread[0]), "the details first"
    [approval] = approval_messages(bot.slack, head["ts"])
    assert thread[-1]["ts"] == approval["ts"], "the approval message follows the details"
    assert f"Terminate backend {pid}" in render_text(approval)

    queued = await rows(bot_db, "SELECT * FROM slack_outbox ORDER BY id")
    assert [(r["op"], r["kind"], r["state"], r["message_key"]) for r in queued] == [
        ("post", "", "sent", None),
        ("reply", "", "sent", None),
        ("reply", "approval", "sent", "approval:1"),
    ]
    assert len({r["thread_key"] for r in queued}) == 1 and queued[0]["thread_key"].startswith("report:")
    assert [r["ts"] for r in queued] == [head["ts"], thread[0]["ts"], approval["ts"]]
    assert all(r["priority"] == INTERACTIVE for r in queued)
    # the stored copy is what Slack got
    sent = posts(bot.slack)
    assert [json.loads(r["message"])["text"] for r in queued] == [c.args["text"] for c in sent]
    assert [json.loads(r["message"]).get("blocks") for r in queued] == [c.args.get("blocks") for c in sent]
    # the delivery hook recorded where the approval's message is, in the worker's transaction
    [record] = await rows(bot_db, "SELECT channel, message_ts, thread_ts, thread_key, state FROM approvals")
    assert tuple(record) == (CHANNEL, approval["ts"], head["ts"], queued[0]["thread_key"], "pending")


async def test_a_click_updates_the_message_and_replies_through_the_outbox(approval_bot):
    bot, bot_db, _pid = approval_bot
    await bot.command("db locks", user_id="U0ALICE")
    [head] = bot.slack.channel_messages(CHANNEL)
    [approval] = approval_messages(bot.slack, head["ts"])
    await bot.slack.click(approval, "approval.approve", user_id="U0BOB")
    await bot.settle()

    queued = await rows(bot_db, "SELECT op, kind, state, message_key FROM slack_outbox ORDER BY id")
    assert [tuple(r) for r in queued[3:]] == [
        ("update", "approval", "sent", "approval:1"),
        ("reply", "", "sent", None),
        ("update", "approval", "sent", "approval:1"),  # then whether it worked
        ("reply", "", "sent", None),
    ]
    decided, verified = posts(bot.slack, "chat.update")
    assert (
        (decided.args["channel"], decided.args["ts"])
        == (CHANNEL, approval["ts"])
        == (
            verified.args["channel"],
            verified.args["ts"],
        )
    )
    assert bot.slack.buttons(bot.slack.messages[CHANNEL, approval["ts"]]) == []
    result, judged = bot.slack.thread(CHANNEL, head["ts"])[-2:]
    assert "approved by @U0BOB — executed" in render_text(result)
    assert "Verified" in render_text(judged)


async def test_another_replica_delivers_and_records_the_approval_message(approval_bot):
    """The replica that sends the approval's message records it; the producing process, which sends
    nothing itself here, still learns that its report is in Slack without polling for it."""
    bot, bot_db, _pid = approval_bot
    bot.runtime.outbox._busy.add(CHANNEL)  # this process's workers are taken up with that channel
    replica_store = Store(bot_db)
    replica = Outbox(replica_store, outbox_client(bot.slack.bot_token, bot.slack.api_url), interval=0.0, poll=0.2)
    replica.start()
    try:
        started = asyncio.get_running_loop().time()
        await bot.command("db locks", user_id="U0ALICE")
        assert asyncio.get_running_loop().time() - started < 10, "the report task learnt its rows were sent"
    finally:
        await replica.stop()
        await replica_store.close()
    [head] = bot.slack.channel_messages(CHANNEL)
    [approval] = approval_messages(bot.slack, head["ts"])
    [record] = await rows(bot_db, "SELECT message_ts, thread_ts FROM approvals")
    assert tuple(record) == (approval["ts"], head["ts"])


async def test_an_approval_decided_before_its_message_is_sent_is_posted_decided(approval_bot):
    bot, bot_db, _pid = approval_bot
    await bot.command("help")  # Bolt's own auth.test, before Slack fails
    bot.slack.outage(500)
    await bot.slack.slash("db locks", user_id="U0ALICE")  # acked; the report waits in the outbox
    await eventually(lambda: rows(bot_db, "SELECT 1 FROM approvals"), what="the approval proposed")
    await bot.runtime.approvals.reject(1, "U0ALICE")  # the requester withdraws it meanwhile
    bot.slack.recover()
    await bot.settle()
    [head] = bot.slack.channel_messages(CHANNEL)
    last = bot.slack.thread(CHANNEL, head["ts"])[-1]
    assert bot.slack.buttons(last) == [] and "withdrawn by @U0ALICE" in render_text(last)
    assert posts(bot.slack, "chat.update") == [], "no button was ever shown, so nothing to update"


# ---------------------------------------------------------------------- one path, redacted


def test_nothing_posts_to_channels_outside_the_outbox():
    sources = [
        path
        for folder in ("bot", "handlers", "runbooks")
        for path in (ROOT / folder).rglob("*.py")
        if "local" not in path.relative_to(ROOT).parts
    ]
    text = {path.relative_to(ROOT).as_posix(): path.read_text() for path in sources}
    assert not [name for name, body in text.items() if "wait_delivered" in body]
    posting = re.compile(r"[\"']chat\.(postMessage|update)[\"']|chat_(postMessage|update)\(")
    assert sorted(name for name, body in text.items() if posting.search(body)) == ["bot/slack/sender.py"]


async def test_what_is_stored_is_redacted_and_what_is_sent_is_the_stored_copy(fresh_database):
    slack = LocalSlack("delivery-secret")
    await slack.start()
    store = Store(fresh_database("redact"))
    await store.migrate()
    box = Outbox(store, outbox_client(slack.bot_token, slack.api_url), interval=0.0, poll=0.2)
    box.start()
    secret = "postgres://app:s3cretpass-canary@db:5432/erp password=hunter2-canary"
    settings = load_settings()
    engine = Approvals(store, None, None, settings)
    try:
        async with box.thread("t:redact", CHANNEL) as thread:
            thread.post({"text": f"head {secret}"})
            thread.reply({"text": "body", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": secret}}]})
            await engine.propose(
                Proposal(
                    "db.terminate", {"note": secret}, f"summary {secret}", f"reason {secret}", f"preview {secret}"
                ),
                requester="U0ALICE",
                target=[secret],
                thread_key="t:redact",
                conn=thread.conn,
            )
        delivered = await thread.receipt.wait(10)
        assert delivered and all(d.ok for d in delivered)
        async with store.acquire() as conn:
            stored = json.dumps(
                [
                    [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
                    for table in ("slack_outbox", "approvals", "audit_log")
                ],
                default=str,
            )
            messages = [
                json.loads(r["message"]) for r in await conn.fetch("SELECT message FROM slack_outbox ORDER BY id")
            ]
        assert "s3cretpass-canary" not in stored and "hunter2-canary" not in stored
        sent = posts(slack)
        assert [c.args["text"] for c in sent] == [m["text"] for m in messages]
        assert sent[1].args["blocks"] == messages[1]["blocks"]
    finally:
        await box.stop()
        await store.close()
        await slack.close()


# ---------------------------------------------------------------------- order and pace


@asynccontextmanager
async def outbox_to_slack(dsn: str, interval: float, burst: int) -> AsyncIterator[tuple[Outbox, LocalSlack]]:
    """A durable outbox in a new database, delivering to a local Slack; stopped and closed after."""
    slack = LocalSlack("delivery-secret")
    await slack.start()
    store = Store(dsn)
    await store.migrate()
    box = Outbox(store, outbox_client(slack.bot_token, slack.api_url), interval=interval, burst=burst, poll=0.2)
    try:
        yield box, slack
    finally:
        await box.stop()
        await store.close()
        await slack.close()


async def test_people_go_before_alert_traffic_and_the_channel_keeps_its_pace(fresh_database):
    async with outbox_to_slack(fresh_database("pace"), interval=0.2, burst=2) as (box, slack):
        for n in range(6):
            async with box.thread(f"alert:{n}", "C0BUSY", priority=BACKGROUND) as thread:
                thread.post({"text": f"alert {n}"})
        async with box.thread("report:x", "C0BUSY") as report:
            report.post({"text": "report head"})
            report.reply({"text": "report details"})
        box.start()
        delivered = await report.receipt.wait(10)
        assert delivered and all(d.ok for d in delivered)
        await eventually(lambda: len(posts(slack)) == 8, what="everything delivered")
        order = [c.args["text"] for c in posts(slack)]
        assert order[:2] == ["report head", "report details"], order
        assert order[2:] == [f"alert {n}" for n in range(6)], "alerts in their order"
        alert_times = [c.at for c in posts(slack)[2:]]
        assert min(b - a for a, b in itertools.pairwise(alert_times)) >= 0.18, "paced"
        # a burst of two, then one per interval: 8 messages take at least (8 - 2) intervals
        assert alert_times[-1] - posts(slack)[0].at >= 6 * 0.2 - 0.02


async def test_the_messages_of_a_storm_share_one_connection_to_slack(fresh_database):
    async with outbox_to_slack(fresh_database("pooled"), interval=0.01, burst=20) as (box, slack):
        async with box.thread("alert:pooled", "C0BUSY", priority=BACKGROUND) as thread:
            thread.post({"text": "header"})
            for n in range(9):
                thread.reply({"text": f"reply {n}"})
        box.start()
        await eventually(lambda: len(posts(slack)) == 10, what="everything delivered")
        peers = {c.peer for c in posts(slack)}
        assert len(peers) == 1 and None not in peers, f"a new connection (and TLS handshake) per message: {peers}"


# ---------------------------------------------------------------------- without the bot's database


async def test_without_a_bot_database_a_report_outlives_a_slack_outage(start_bot):
    bot = await start_bot(erpgo_slack_max_backoff=0.5)
    await bot.command("help")  # Bolt's own auth.test, before Slack fails
    bot.slack.outage(500)
    ack = await bot.slack.slash("health")
    assert ack.status == 200 and "Running health checks" in ack.json["text"]
    await eventually(lambda: len([c for c in bot.slack.calls if c.status == 500]) >= 3, what="Slack failing a while")
    bot.slack.recover()
    await bot.settle()
    [head] = bot.slack.channel_messages(CHANNEL)
    assert "ERPGo health" in render_text(head)
    assert len(bot.slack.thread(CHANNEL, head["ts"])) == 1, "the details once, in the thread"
    assert len(posts(bot.slack)) == 2, "each message exactly once"
