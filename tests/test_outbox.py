"""The Slack outbox: ordered per thread, paced per channel, coalesced, retried through 429s, 5xx and
outages, shared by replicas without sending anything twice."""

from __future__ import annotations

import itertools
import time

from bot.local.slack import LocalSlack
from bot.slack import outbox
from bot.slack.delivery import Outbox, retry_after
from bot.store.pool import Store
from tests.support import eventually


def text(message_text: str) -> dict:
    return {"text": message_text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": message_text}}]}


async def queue(store: Store, thread_key: str, channel: str, op: str, message_text: str, **kw) -> int:
    async with store.acquire() as conn, conn.transaction():
        await outbox.lock_thread(conn, thread_key)
        return await outbox.enqueue(conn, thread_key, channel, op, text(message_text), **kw)


async def drained(box: Outbox, timeout: float = 20) -> dict:
    """Wait until nothing is pending (the condition is re-read from the database)."""

    async def empty() -> dict | None:
        backlog = await box.backlog()
        return backlog if backlog["pending"] == 0 else None

    return await eventually(empty, timeout=timeout, what="outbox drained")


def delivered(slack: LocalSlack, method: str = "chat.postMessage") -> list:
    return [c for c in slack.calls if c.method == method and c.ok]


def thread_texts(slack: LocalSlack, channel: str, head_text: str) -> list[str]:
    head = next(m for m in slack.channel_messages(channel) if m["text"] == head_text)
    return [m["text"] for m in slack.thread(channel, head["ts"])]


# ---------------------------------------------------------------------------------------------


def test_retry_after_is_read_in_full():
    assert retry_after("12") == 12.0  # slack_sdk's own handler would wait 1 s here
    assert retry_after("120") == 120.0
    assert retry_after("0.5") == 0.5
    assert retry_after(None) == 1.0
    assert retry_after("soon") == 1.0


async def test_replies_wait_for_their_head_and_keep_their_order(store, slack, make_outbox):
    slack.fail("chat.postMessage", status=500, times=1)  # the first head post fails once
    for thread in ("a", "b"):
        await queue(store, thread, "C0ONE", "post", f"head {thread}")
        for n in range(3):
            await queue(store, thread, "C0ONE", "reply", f"{thread} reply {n}")
    box = await make_outbox()
    box.wake()
    await drained(box)
    assert thread_texts(slack, "C0ONE", "head a") == ["a reply 0", "a reply 1", "a reply 2"]
    assert thread_texts(slack, "C0ONE", "head b") == ["b reply 0", "b reply 1", "b reply 2"]
    texts = [c.args["text"] for c in delivered(slack)]
    assert len(texts) == len(set(texts)) == 8, "every message exactly once"
    failed = [c for c in slack.calls if c.status == 500]
    assert len(failed) == 1
    first_success_of_a = next(c for c in delivered(slack) if c.args["text"] == "head a")
    assert not any(
        c.args.get("thread_ts") and c.at < first_success_of_a.at
        for c in delivered(slack)
        if c.args["text"].startswith("a ")
    ), "no reply before its head"


async def test_one_message_per_interval_per_channel_channels_in_parallel(store, slack, make_outbox):
    for n in range(4):
        await queue(store, f"one-{n}", "C0ONE", "post", f"one {n}")
        await queue(store, f"two-{n}", "C0TWO", "post", f"two {n}")
    started = time.monotonic()
    box = await make_outbox(interval=0.4)
    box.wake()
    await drained(box)
    elapsed = time.monotonic() - started
    for channel in ("C0ONE", "C0TWO"):
        times = [c.at for c in delivered(slack) if c.args["channel"] == channel]
        assert len(times) == 4
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.38, gaps
    assert elapsed < 3 * 0.4 + 1.2, "two channels are paced independently, not one after the other"


async def test_429_pauses_the_channel_for_its_retry_after(store, slack, make_outbox):
    slack.fail("chat.postMessage", status=429, retry_after=2, times=1)
    await queue(store, "t", "C0ONE", "post", "rate limited once")
    box = await make_outbox(max_backoff=0.2)  # a backoff would retry much sooner than Retry-After
    box.wake()
    await drained(box)
    attempts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.95


async def test_outage_is_queued_and_delivered_in_order_once_after_recovery(store, slack, make_outbox):
    slack.outage(503)
    box = await make_outbox(max_backoff=0.5)
    for thread in ("x", "y", "z"):
        await queue(store, thread, "C0ONE", "post", f"head {thread}")
        for n in range(3):
            await queue(store, thread, "C0ONE", "reply", f"{thread} {n}")
    box.wake()
    await slack.wait_for(lambda c: c.status == 503)
    await slack.wait_for(lambda c: c.status == 503 and c.at > slack.calls[0].at + 0.4)  # retried, still down
    backlog = await box.backlog()
    assert backlog["pending"] == 12 and backlog["oldest_pending_s"] is not None
    assert delivered(slack) == []
    slack.recover()
    assert (await drained(box))["failed"] == 0
    for thread in ("x", "y", "z"):
        assert thread_texts(slack, "C0ONE", f"head {thread}") == [f"{thread} 0", f"{thread} 1", f"{thread} 2"]
    texts = [c.args["text"] for c in delivered(slack)]
    assert len(texts) == len(set(texts)) == 12


async def test_pending_header_versions_coalesce_into_one_call(store, slack, make_outbox):
    slack.outage(500)
    box = await make_outbox(max_backoff=0.3)
    await queue(store, "h", "C0ONE", "post", "header v1")
    await queue(store, "h", "C0ONE", "update", "header v2")
    await queue(store, "h", "C0ONE", "reply", "a reply")
    await queue(store, "h", "C0ONE", "update", "header v3")
    box.wake()
    await slack.wait_for(lambda c: c.status == 500)
    slack.recover()
    await drained(box)
    posts = delivered(slack)
    assert [c.args["text"] for c in posts] == ["header v3", "a reply"], "the post carries the newest header"
    assert delivered(slack, "chat.update") == []
    # once posted, several updates waiting behind an outage become one chat.update
    slack.outage(500)
    for n in (4, 5, 6):
        await queue(store, "h", "C0ONE", "update", f"header v{n}")
    box.wake()
    await slack.wait_for(lambda c: c.method == "chat.update" and c.status == 500)
    slack.recover()
    await drained(box)
    assert [c.args["text"] for c in delivered(slack, "chat.update")] == ["header v6"]
    assert slack.channel_messages("C0ONE")[0]["text"] == "header v6"
    async with store.acquire() as conn:
        states = dict(await conn.fetch("SELECT state, count(*) FROM slack_outbox GROUP BY state"))
    assert states == {"sent": 3, "superseded": 4}


async def test_producer_merges_into_unsent_rows_only(store, slack, make_outbox):
    await queue(store, "m", "C0ONE", "post", "head")
    async with store.acquire() as conn, conn.transaction():
        state = await outbox.tail(conn, "m")
        assert state.head_pending and state.header_claimed
        row = await outbox.put_header(conn, "m", "C0ONE", text("head, rewritten"), state)
        assert row == state.last_header, "an unsent head is rewritten in place"
    box = await make_outbox()
    box.wake()
    await drained(box)
    assert [c.args["text"] for c in delivered(slack)] == ["head, rewritten"]
    async with store.acquire() as conn, conn.transaction():
        row = await outbox.put_header(conn, "m", "C0ONE", text("head v3"))
    box.wake()
    await drained(box)
    assert [c.args["text"] for c in delivered(slack, "chat.update")] == ["head v3"]


async def test_bad_blocks_degrade_to_text_and_a_failed_head_does_not_block_others(store, slack, make_outbox):
    too_long = {
        "text": "fallback text survives",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3500}}],
    }
    async with store.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, "ok", "C0ONE", "post", text("fine head"))
        await outbox.enqueue(conn, "ok", "C0ONE", "reply", too_long)
        await outbox.enqueue(conn, "bad", "C0ONE", "post", {"text": ""})  # Slack: no_text
        await outbox.enqueue(conn, "bad", "C0ONE", "reply", text("orphan"))
        await outbox.enqueue(conn, "later", "C0ONE", "post", text("later head"))
    box = await make_outbox()
    box.wake()
    backlog = await drained(box)
    assert backlog["failed"] == 2  # the bad head and the reply that had nowhere to go
    assert thread_texts(slack, "C0ONE", "fine head") == ["fallback text survives"]
    assert "later head" in [m["text"] for m in slack.channel_messages("C0ONE")]
    assert "orphan" not in [c.args.get("text") for c in slack.calls]


async def test_two_replicas_share_the_outbox_without_sending_twice(store, slack, make_outbox):
    dsn = store.dsn
    for n in range(10):
        for thread, channel in (("p", "C0ONE"), ("q", "C0ONE"), ("r", "C0TWO")):
            await queue(store, thread, channel, "post" if n == 0 else "reply", f"{thread} {n}")
    first = await make_outbox(interval=0.15, dsn=dsn)
    second = await make_outbox(interval=0.15, dsn=dsn)
    first.wake()
    second.wake()
    await drained(first, timeout=30)
    texts = [c.args["text"] for c in delivered(slack)]
    assert len(texts) == len(set(texts)) == 30, "each message exactly once across both replicas"
    for thread, channel in (("p", "C0ONE"), ("q", "C0ONE"), ("r", "C0TWO")):
        assert thread_texts(slack, channel, f"{thread} 0") == [f"{thread} {n}" for n in range(1, 10)]
    for channel in ("C0ONE", "C0TWO"):
        times = [c.at for c in delivered(slack) if c.args["channel"] == channel]
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.14, "the pace holds across replicas"
