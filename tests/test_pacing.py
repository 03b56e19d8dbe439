"""The outbox's pace per channel: a token bucket shared by replicas (a burst, then one message per
interval), triage before header refreshes, Retry-After honoured exactly without lengthening the
server-error backoff, and files shared in threads through Slack's three upload steps."""

from __future__ import annotations

import itertools

import pytest

from bot.local.slack import LocalSlack, RateLimit
from bot.slack import outbox
from bot.slack.delivery import Outbox
from bot.store.pool import Store
from tests.support import eventually


def text(message_text: str) -> dict:
    return {"text": message_text}


async def queue(store: Store, thread_key: str, channel: str, op: str, message: dict, kind: str = "") -> int:
    async with store.acquire() as conn, conn.transaction():
        await outbox.lock_thread(conn, thread_key)
        return await outbox.enqueue(conn, thread_key, channel, op, message, kind=kind)


async def drained(box: Outbox, timeout: float = 20) -> dict:
    async def empty() -> dict | None:
        backlog = await box.backlog()
        return backlog if backlog["pending"] == 0 else None

    return await eventually(empty, timeout=timeout, what="outbox drained")


def writes(slack: LocalSlack, channel: str | None = None) -> list:
    return [
        c
        for c in slack.calls
        if c.ok
        and c.method in ("chat.postMessage", "chat.update", "files.completeUploadExternal")
        and (channel is None or (c.args.get("channel") or c.args.get("channel_id")) == channel)
    ]


async def test_a_burst_goes_out_at_once_then_one_message_per_interval_without_a_429(store, slack, make_outbox):
    slack.limit_rate(RateLimit(per_second=1 / 0.25, burst=4))  # Slack's limit, as the local Slack enforces it
    for n in range(9):
        await queue(store, f"t{n}", "C0ONE", "post", text(f"head {n}"))
    box = await make_outbox(interval=0.25, burst=3)  # the bot's bucket stays inside it
    box.wake()
    await drained(box)
    times = [c.at for c in writes(slack, "C0ONE")]
    assert len(times) == 9 and slack.ratelimited == 0
    assert times[2] - times[0] < 0.2, "the first three at once"
    assert times[3] - times[0] >= 0.24, "the fourth waits for a token to trickle in"
    later = [b - a for a, b in itertools.pairwise(times[3:])]
    assert min(later) >= 0.23, later  # then the bucket's pace
    assert times[-1] - times[0] < 6 * 0.25 + 0.6


async def test_over_its_limit_the_local_slack_answers_429_and_the_outbox_waits_exactly(store, slack, make_outbox):
    slack.limit_rate(RateLimit(per_second=1.0, burst=2))
    for n in range(4):
        await queue(store, f"t{n}", "C0ONE", "post", text(f"head {n}"))
    box = await make_outbox(interval=0.05, burst=10)  # a bot bucket larger than Slack's: Slack says 429
    box.wake()
    await drained(box)
    statuses = [c.status for c in slack.calls if c.method == "chat.postMessage"]
    assert statuses[:3] == [200, 200, 429] and statuses.count(200) == 4
    limited = next(c for c in slack.calls if c.status == 429)
    after = next(c for c in slack.calls if c.at > limited.at and c.method == "chat.postMessage")
    assert 0.95 <= after.at - limited.at < 1.5, "retried after exactly Retry-After (1 s), not sooner"


async def test_429s_do_not_lengthen_the_server_error_backoff(store, slack, make_outbox):
    slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
    slack.fail("chat.postMessage", status=500, times=2)
    await queue(store, "t", "C0ONE", "post", text("through 429s and 500s"))
    box = await make_outbox(interval=0.0, max_backoff=30)
    box.wake()
    await drained(box)
    attempts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in attempts] == [429, 429, 500, 500, 200]
    gaps = [round(b.at - a.at, 1) for a, b in itertools.pairwise(attempts)]
    # Retry-After twice, then the backoff starts at its first step: at most 1 s, then 2 s (not 4 s, 8 s);
    # jittered, so anywhere below those
    assert gaps[0] == pytest.approx(1.0, abs=0.3) and gaps[1] == pytest.approx(1.0, abs=0.3), gaps
    assert gaps[2] <= 1.3 and gaps[3] <= 2.3, gaps


async def test_a_triage_report_goes_before_other_threads_header_refreshes(store, slack, make_outbox):
    box = await make_outbox(interval=0.2, burst=1)
    for name in ("a", "b", "c"):
        await queue(store, name, "C0ONE", "post", text(f"head {name}"))
    box.wake()
    await drained(box)
    slack.outage(503)  # hold everything back while the three are queued, then let them race
    await queue(store, "b", "C0ONE", "update", text("head b v2"))
    await queue(store, "c", "C0ONE", "update", text("head c v2"))
    await queue(store, "a", "C0ONE", "reply", text("Triage: a"), kind="triage")
    await slack.wait_for(lambda c: c.status == 503)
    slack.recover()
    await drained(box)
    order = [c.args.get("text") for c in writes(slack)][3:]
    assert order == ["Triage: a", "head b v2", "head c v2"], order


async def test_the_bucket_is_shared_by_replicas(store, slack, make_outbox):
    slack.limit_rate(RateLimit(per_second=1 / 0.2, burst=3))
    for n in range(10):
        await queue(store, f"t{n}", "C0ONE", "post", text(f"head {n}"))
    first = await make_outbox(interval=0.2, burst=2, dsn=store.dsn)
    second = await make_outbox(interval=0.2, burst=2, dsn=store.dsn)
    first.wake()
    second.wake()
    await drained(first)
    times = [c.at for c in writes(slack, "C0ONE")]
    assert len(times) == 10 and slack.ratelimited == 0, "two replicas, one bucket"
    texts = [c.args["text"] for c in writes(slack)]
    assert len(set(texts)) == 10


async def test_a_file_is_shared_in_the_thread_through_the_three_upload_steps(store, slack, make_outbox):
    evidence = "".join(f"row {n}\n" for n in range(1, 201))
    await queue(store, "f", "C0ONE", "post", text("head with evidence"))
    await queue(store, "f", "C0ONE", "reply", text("Triage: first lines…"), kind="triage")
    upload = {"text": "Full evidence", "file": {"filename": "evidence.txt", "title": "Evidence", "content": evidence}}
    await queue(store, "f", "C0ONE", "upload", upload, kind="triage.file")
    box = await make_outbox(interval=0.0, max_backoff=30.0)
    box.wake()
    await drained(box)
    steps = [
        c.method
        for c in slack.calls
        if c.method in ("files.getUploadURLExternal", "upload", "files.completeUploadExternal")
    ]
    assert steps == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    [head] = slack.channel_messages("C0ONE")
    thread = slack.thread("C0ONE", head["ts"])
    assert [m["text"] for m in thread] == ["Triage: first lines…", "Full evidence"]
    [shared] = thread[1]["files"]
    assert shared["title"] == "Evidence" and shared["lines"] == 200
    assert slack.files[shared["id"]]["content"] == evidence.encode()
    async with store.acquire() as conn:
        row = await conn.fetchrow("SELECT state, ts FROM slack_outbox WHERE op = 'upload'")
    assert row["state"] == "sent" and row["ts"] == thread[1]["ts"]


async def test_an_upload_that_fails_is_retried_whole_and_shared_once(store, slack, make_outbox):
    await queue(store, "g", "C0ONE", "post", text("head"))
    upload = {"text": "log", "file": {"filename": "log.txt", "title": "log", "content": "a\nb\n"}}
    await queue(store, "g", "C0ONE", "upload", upload, kind="triage.file")
    slack.fail("files.completeUploadExternal", status=500, times=1)
    box = await make_outbox(interval=0.0, max_backoff=0.5)
    box.wake()
    await drained(box)
    completes = [c.status for c in slack.calls if c.method == "files.completeUploadExternal"]
    assert completes == [500, 200]
    [head] = slack.channel_messages("C0ONE")
    assert [m["text"] for m in slack.thread("C0ONE", head["ts"])] == ["log"]


async def test_an_upload_slack_will_never_take_fails_alone_and_the_thread_goes_on(store, slack, make_outbox):
    await queue(store, "h", "C0ONE", "post", text("head"))
    upload = {"text": "log", "file": {"filename": "log.txt", "title": "log", "content": "a\n"}}
    await queue(store, "h", "C0ONE", "upload", upload, kind="triage.file")
    await queue(store, "h", "C0ONE", "reply", text("after the file"))
    slack.scopes.discard("files:write")  # an app installed without it: Slack answers missing_scope
    box = await make_outbox(interval=0.0, max_backoff=30.0)
    box.wake()
    backlog = await drained(box)
    assert backlog["failed"] == 1
    [head] = slack.channel_messages("C0ONE")
    assert [m["text"] for m in slack.thread("C0ONE", head["ts"])] == ["after the file"]
