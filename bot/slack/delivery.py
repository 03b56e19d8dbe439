"""The outbox's delivery side: workers that claim due rows (FOR UPDATE SKIP LOCKED), send them to
Slack at the channel's pace, retry what failed and keep the backlog visible. See bot/slack/outbox.py
for what a row is and how producers queue them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import Backoff, describe_error
from bot.core.logs import log
from bot.core.metrics import SLACK_BACKLOG, SLACK_OUTBOX_RETRIES, SLACK_OUTBOX_SENT
from bot.core.tasks import PeopleFirst
from bot.slack.outbox import (
    BACKGROUND,
    DELIVERY_HOOKS,
    INTERACTIVE,
    RENDERERS,
    Courier,
    Delivered,
    Receipt,
    ThreadRows,
    lock_thread,
)
from bot.slack.sender import Failed, Retry, SlackSender, outbox_client, retry_after
from bot.store.pool import Store

__all__ = ["Outbox", "outbox_client", "retry_after"]

KEEP_DONE_ROWS = "7 days"
WAKE_SOON_S = 0.1  # how long wake_soon() gathers what is queued before the workers look
WAITERS_CHECK_S = 1.0  # how often rows this process waits for are looked up (another replica may send them)


# ---------------------------------------------------------------------- delivery

# What a channel's next token goes to, among the rows that head their thread: rows somebody waits for
# (priority INTERACTIVE: a report, the answer to a click), then a new thread's header and a triage
# report, then other replies, then header refreshes (coalesced: the longer they wait, the more versions
# one chat.update carries).
PRIORITY = (
    "o.priority DESC, CASE WHEN o.op = 'post' OR o.kind LIKE 'triage%' THEN 0 WHEN o.op = 'update' THEN 2 ELSE 1 END"
)

# The rows that head their thread, looked up once as an array: joined to slack_outbox instead, the planner
# (with a table's statistics from before a storm filled it) rescanned them for every pending row
_HEADS = """
    o.id = ANY(ARRAY(SELECT DISTINCT ON (thread_key) id FROM slack_outbox WHERE state = 'pending' ORDER BY thread_key, id))
"""

CLAIM = f"""
SELECT o.id, o.thread_key, o.channel, o.op, o.kind, o.message, o.data, o.attempts, o.failures, o.message_key,
       t.channel AS thread_channel, t.ts AS thread_ts, m.channel AS target_channel, m.ts AS target_ts,
       c.channel IS NOT NULL AS channel_known,
       (SELECT f.content FROM slack_outbox_files f WHERE f.outbox_id = o.id) AS file_content
FROM slack_outbox o
LEFT JOIN slack_threads t ON t.thread_key = o.thread_key
LEFT JOIN slack_threads m ON m.thread_key = o.message_key
LEFT JOIN slack_channels c ON c.channel = o.channel
WHERE {_HEADS} AND o.state = 'pending' AND o.not_before <= clock_timestamp()
  AND (c.next_at IS NULL OR c.next_at <= clock_timestamp())
  AND NOT (o.channel = ANY($1::text[])) AND o.priority >= $2
ORDER BY {PRIORITY}, o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""

NEXT_DUE = f"""
SELECT extract(epoch FROM min(greatest(o.not_before, coalesce(c.next_at, '-infinity'))) - clock_timestamp())
FROM slack_outbox o LEFT JOIN slack_channels c ON c.channel = o.channel
WHERE {_HEADS} AND NOT (o.channel = ANY($1::text[])) AND o.priority >= $2
"""

# One token of the channel's bucket spent on the message just sent ($2: seconds per token, $3: burst).
# What is left decides when the channel may be written to next: now while a token remains, else
# when the next one has trickled in.
SPEND_TOKEN = """
WITH bucket AS (
    SELECT channel, clock_timestamp() AS now,
           CASE WHEN refilled_at IS NULL OR $2::float8 <= 0 THEN $3::float8
                ELSE least($3::float8, tokens + extract(epoch FROM clock_timestamp() - refilled_at)::float8 / $2::float8)
           END - 1 AS left_over
    FROM slack_channels WHERE channel = $1)
UPDATE slack_channels c SET tokens = b.left_over, refilled_at = b.now, last_error = NULL,
       next_at = b.now + make_interval(secs => greatest(0, 1 - b.left_over) * $2::float8)
FROM bucket b WHERE c.channel = b.channel
"""

# Slack said 429: nothing goes to the channel for exactly Retry-After ($2), then one token is there.
RATE_LIMITED = """
UPDATE slack_channels SET tokens = 1, last_error = $3,
       refilled_at = clock_timestamp() + make_interval(secs => $2), next_at = clock_timestamp() + make_interval(secs => $2)
WHERE channel = $1
"""


class Outbox(Courier):
    durable = True

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient | None,
        *,
        interval: float = 1.0,
        burst: int = 1,
        max_backoff: float = 30.0,
        workers: int = 2,
        poll: float = 1.0,
        people: PeopleFirst | None = None,
    ):
        self.store = store
        self.client = client
        self.sender = SlackSender(client)
        self.interval = interval  # seconds per token of a channel's bucket
        self.burst = max(1, burst)  # tokens a channel's bucket holds: messages that may go out at once
        self.max_backoff = max_backoff
        self.backoff = Backoff(first=1.0, cap=max_backoff)
        self.workers = workers
        self.poll = poll  # how often to look for rows other replicas queued
        self.people = people or PeopleFirst()  # alert traffic waits while a person's request goes first
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._people = asyncio.Event()  # wakes the worker kept for rows somebody waits for
        self._waking: asyncio.TimerHandle | None = None  # a wake_soon() due
        self._stopping = False
        self._claiming = asyncio.Lock()
        self._busy: set[str] = set()  # channels a worker of this process is sending to right now
        self._waiters: dict[int, list[asyncio.Future]] = {}  # rows someone in this process waits for
        self._backlog_at = 0.0
        self._cleaned_at = 0.0
        self._waiters_at = 0.0

    # -- lifecycle

    def start(self) -> None:
        if self._tasks or self.client is None:
            return
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(n), name=f"outbox-{n}") for n in range(self.workers)]
        # one more worker for rows somebody waits for alone: during an alert storm a report never
        # waits for the others to finish sending alert traffic
        people = asyncio.create_task(self._worker(self.workers, INTERACTIVE), name="outbox-people")
        self._tasks.append(people)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight deliveries finish (they are committed), then stop; the rest stays queued."""
        self._stopping = True
        if self._waking is not None:
            self._waking.cancel()
            self._waking = None
        self._wake.set()
        self._people.set()
        if self._tasks:
            _done, still = await asyncio.wait(self._tasks, timeout=timeout)
            for task in still:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        await self.sender.close()

    def wake(self, *, people: bool = False) -> None:
        """Something was queued: look now instead of at the next poll (`people`: somebody waits for it)."""
        self._wake.set()
        if people:
            self._people.set()

    def wake_soon(self) -> None:
        """Under a storm every notification queues something: one look every WAKE_SOON_S is enough (each
        look costs both workers a claim and a query), and a message a person waits for still wakes at once."""
        if self._waking is None:
            self._waking = asyncio.get_running_loop().call_later(WAKE_SOON_S, self._woken)

    def _woken(self) -> None:
        self._waking = None
        self._wake.set()

    # -- producing

    @asynccontextmanager
    async def thread(self, thread_key: str, channel: str, *, priority: int = INTERACTIVE) -> AsyncIterator[ThreadRows]:
        """A transaction holding the thread's lock; the rows added to it are queued when it commits.

        Unreachable database errors pass through: the caller decides what to do without it."""
        await self.store.ready()
        async with self.store.acquire() as conn:
            async with conn.transaction():
                await lock_thread(conn, thread_key)
                rows = ThreadRows(thread_key, channel, priority, conn)
                yield rows
                ids = await rows.write(conn)
                futures = self._expect(ids)  # before the commit: a worker may send them right after it
            rows.receipt = Receipt(ids, futures)
        if ids:
            self.wake(people=priority >= INTERACTIVE)

    def _expect(self, ids: list[int]) -> list[asyncio.Future]:
        if self.client is None:  # nobody here will deliver them (erpgo-bot check): nothing to wait for
            return []
        loop = asyncio.get_running_loop()
        futures = []
        for row_id in ids:
            future = loop.create_future()
            self._waiters.setdefault(row_id, []).append(future)
            futures.append(future)
        return futures

    def _resolve(self, outcomes: list[tuple[int, Delivered]]) -> None:
        for row_id, outcome in outcomes:
            for future in self._waiters.pop(row_id, []):
                if not future.done():
                    future.set_result(outcome)

    async def _check_waiters(self, conn: Any) -> None:
        """Rows this process waits for that another replica delivered (or gave up on)."""
        for row_id in [i for i, futures in self._waiters.items() if all(f.done() for f in futures)]:
            del self._waiters[row_id]  # the waiter gave up waiting
        if not self._waiters:
            return
        rows = await conn.fetch(
            "SELECT o.id, o.state, o.op, o.ts, o.last_error, t.channel, t.ts AS thread_ts FROM slack_outbox o"
            " LEFT JOIN slack_threads t ON t.thread_key = o.thread_key"
            " WHERE o.id = ANY($1::bigint[]) AND o.state <> 'pending'",
            list(self._waiters),
        )
        self._resolve(
            [
                (
                    r["id"],
                    Delivered(r["state"] != "failed", r["op"], r["channel"], r["ts"], r["thread_ts"], r["last_error"]),
                )
                for r in rows
            ]
        )

    # -- observing

    async def backlog(self) -> dict:
        """Messages waiting, messages given up on, and how long the oldest has waited."""
        async with self.store.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
                          count(*) FILTER (WHERE state = 'failed') AS failed,
                          extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')) AS oldest
                   FROM slack_outbox WHERE state IN ('pending', 'failed')"""
            )
        SLACK_BACKLOG.set(row["pending"])
        self._backlog_at = time.monotonic()
        return {
            "pending": row["pending"],
            "failed": row["failed"],
            "oldest_pending_s": round(float(row["oldest"]), 1) if row["oldest"] is not None else None,
        }

    async def health(self, timeout: float = 2.0) -> dict:
        try:
            await asyncio.wait_for(self.store.ready(), timeout)
            return await asyncio.wait_for(self.backlog(), timeout)
        except Exception as exc:
            return {"pending": None, "error": describe_error(exc)}

    # -- the workers

    async def _worker(self, number: int, least: int = BACKGROUND) -> None:
        """Deliver rows of priority `least` and above, one at a time, for as long as the outbox runs."""
        wake = self._people if least >= INTERACTIVE else self._wake
        failures = 0
        while not self._stopping:
            try:
                await self.store.ready()
                if least < INTERACTIVE:
                    await self.people.after_people()
                delivered = await self.deliver_one(least)
                failures = 0
                if number == 0:
                    await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bot database is down: wait and try again, nothing is lost
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("outbox_database_error", error=describe_error(exc), failures=failures)
                await self._sleep(self.backoff.delay(failures - 1), wake)
                continue
            if not delivered:
                await self._idle(least, wake)

    async def _sleep(self, seconds: float, wake: asyncio.Event) -> None:
        if self._stopping:
            return
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _idle(self, least: int, wake: asyncio.Event) -> None:
        """Sleep until the next row may be due (pace, backoff), a producer wakes us, or the poll interval."""
        wake.clear()  # before looking: a producer's wake-up from now on is not lost
        async with self.store.acquire() as conn:
            due = await conn.fetchval(NEXT_DUE, list(self._busy), least)
        wait = self.poll if due is None else max(0.02, min(float(due), self.poll))
        if self._waiters:
            wait = min(wait, WAITERS_CHECK_S)
        await self._sleep(wait, wake)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at >= 1.0:
            await self.backlog()
        if self._waiters and now - self._waiters_at >= WAITERS_CHECK_S:
            self._waiters_at = now
            async with self.store.acquire() as conn:
                await self._check_waiters(conn)
        if now - self._cleaned_at >= 3600:
            self._cleaned_at = now
            async with self.store.acquire() as conn:
                await conn.execute(
                    f"DELETE FROM slack_outbox WHERE state <> 'pending' AND done_at < now() - interval '{KEEP_DONE_ROWS}'"
                )

    async def deliver_one(self, least: int = BACKGROUND) -> bool:
        """Claim the next deliverable row of priority `least` or above, send it, record the outcome.
        False when nothing is due."""
        outcomes: list[tuple[int, Delivered]] = []
        async with self.store.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            finished = False
            channel = None
            try:
                async with self._claiming:
                    row = await self._claim(conn, least)
                    if row is None:
                        await tx.rollback()
                        finished = True
                        return False
                    channel = row["channel"]
                    self._busy.add(channel)
                outcomes = await self._deliver(conn, row)
                await tx.commit()
                finished = True
            finally:
                if not finished:
                    try:
                        await tx.rollback()
                    except Exception:
                        pass
                if channel is not None:
                    self._busy.discard(channel)
        self._resolve(outcomes)
        self._wake.set()  # the thread's next row may be due now
        self._people.set()
        return True

    async def _claim(self, conn: Any, least: int) -> Any:
        """Lock the oldest row that heads its thread and whose channel may be written to now."""
        skip = set(self._busy)
        for _ in range(5):
            row = await conn.fetchrow(CLAIM, list(skip), least)
            if row is None:
                return None
            if not row["channel_known"]:
                await conn.execute(
                    "INSERT INTO slack_channels (channel) VALUES ($1) ON CONFLICT DO NOTHING", row["channel"]
                )
            ready = await conn.fetchval(
                "SELECT next_at <= clock_timestamp() FROM slack_channels WHERE channel = $1 FOR UPDATE SKIP LOCKED",
                row["channel"],
            )
            if ready:
                return row
            # another replica is sending to that channel right now (or its pace just moved): try another.
            # The skipped row stays locked until this transaction ends, which only delays it.
            skip.add(row["channel"])
        return None

    async def _deliver(self, conn: Any, row: Any) -> list[tuple[int, Delivered]]:
        """Send one claimed row; what became of it (and of the rows it settled) for this process's waiters."""
        message, kind, data, superseded = await self._newest_version(conn, row)
        if row["op"] != "post" and row["thread_ts"] is None:
            return await self._fail(conn, row, "thread head was not delivered")
        target = (row["thread_channel"], row["thread_ts"])
        if row["op"] == "update" and row["message_key"]:
            target = (row["target_channel"], row["target_ts"])
            if target[1] is None:
                return await self._fail(conn, row, "the message to update was not delivered")
        if kind in RENDERERS:
            try:
                async with conn.transaction():  # a savepoint: a failed render leaves the claim intact
                    message = (
                        await RENDERERS[kind](conn, json.loads(data) if data else None, row["thread_key"]) or message
                    )
            except Exception as exc:  # the stored message is the fallback
                log.error("slack_message_render_failed", kind=kind, error=describe_error(exc))
        try:
            answer = await self.sender.send(
                row["op"],
                row["channel"],
                (row["thread_channel"], row["thread_ts"]),
                target,
                message,
                row["kind"],
                row["file_content"],
            )
        except Retry as retry:
            await self._retry(conn, row, retry)
            return []
        except Failed as failed:
            return await self._fail(conn, row, failed.error)
        ts = answer.get("ts") if row["op"] != "update" else target[1]
        channel = answer.get("channel") or (row["channel"] if row["op"] == "post" else target[0])
        await self._record_sent(conn, row, channel, ts, superseded)
        thread_ts = ts if row["op"] == "post" else row["thread_ts"]
        outcome = Delivered(True, row["op"], channel, ts, thread_ts)
        await self._hook(conn, row["kind"], row["data"], outcome)
        return [(row["id"], outcome), *((i, outcome) for i in superseded)]

    @staticmethod
    async def _newest_version(conn: Any, row: Any) -> tuple[Any, str, str | None, list[int]]:
        """(message, kind, data, superseded ids): the newest unsent version of the same message wins;
        older versions are never sent."""
        message, kind, data = json.loads(row["message"]), row["kind"], row["data"]
        if row["op"] not in ("post", "update"):
            return message, kind, data, []
        later = await conn.fetch(
            "SELECT id, kind, message, data FROM slack_outbox WHERE thread_key = $1 AND state = 'pending'"
            " AND op = 'update' AND id > $2 AND message_key IS NOT DISTINCT FROM $3 ORDER BY id"
            " FOR UPDATE SKIP LOCKED",
            row["thread_key"],
            row["id"],
            row["message_key"] if row["op"] == "update" else None,
        )
        if not later:
            return message, kind, data, []
        return json.loads(later[-1]["message"]), later[-1]["kind"], later[-1]["data"], [r["id"] for r in later]

    async def _record_sent(self, conn: Any, row: Any, channel: str, ts: str | None, superseded: list[int]) -> None:
        """The row sent (and the versions it superseded), where its thread and named message are, the
        channel's token spent."""
        await conn.execute(
            "UPDATE slack_outbox SET state = 'sent', done_at = now(), attempts = attempts + 1, ts = $2,"
            " last_error = NULL WHERE id = $1",
            row["id"],
            ts,
        )
        if row["file_content"] is not None:  # Slack has the file: its bytes need not wait for the row's cleanup
            await conn.execute("DELETE FROM slack_outbox_files WHERE outbox_id = $1", row["id"])
        if superseded:
            await conn.execute(
                "UPDATE slack_outbox SET state = 'superseded', done_at = now() WHERE id = ANY($1::bigint[])", superseded
            )
        names = ([row["thread_key"]] if row["op"] == "post" else []) + (
            [row["message_key"]] if row["message_key"] and row["op"] != "update" else []
        )
        for name in names:
            await conn.execute(
                "INSERT INTO slack_threads (thread_key, channel, ts) VALUES ($1, $2, $3) ON CONFLICT (thread_key) DO NOTHING",
                name,
                channel,
                ts,
            )
        await conn.execute(SPEND_TOKEN, row["channel"], self.interval, self.burst)
        SLACK_OUTBOX_SENT.labels(row["op"]).inc()

    async def _hook(self, conn: Any, kind: str, data: str | None, outcome: Delivered) -> None:
        hook = DELIVERY_HOOKS.get(kind)
        if hook is None:
            return
        try:
            async with conn.transaction():  # a savepoint: the message is sent whatever the hook does
                await hook(conn, json.loads(data) if data else None, outcome)
        except Exception as exc:
            log.error("slack_delivery_hook_failed", kind=kind, error=describe_error(exc))

    async def _retry(self, conn: Any, row: Any, retry: Retry) -> None:
        """Try the row again later: after exactly Retry-After for a 429 (not a failure: it does not
        lengthen the backoff), after the backoff of its failures for anything else."""
        attempts = row["attempts"] + 1
        failures = row["failures"] + (retry.delay is None)
        delay = retry.delay if retry.delay is not None else self.backoff.delay(failures - 1)
        SLACK_OUTBOX_RETRIES.labels(retry.reason).inc()
        await conn.execute(
            "UPDATE slack_outbox SET attempts = $2, failures = $3, last_error = $4,"
            " not_before = clock_timestamp() + make_interval(secs => $5) WHERE id = $1",
            row["id"],
            attempts,
            failures,
            retry.error[:300],
            delay,
        )
        if retry.reason == "ratelimited":
            await conn.execute(RATE_LIMITED, row["channel"], delay, retry.error[:300])
        else:
            await conn.execute(
                "UPDATE slack_channels SET next_at = clock_timestamp() + make_interval(secs => $2), last_error = $3"
                " WHERE channel = $1",
                row["channel"],
                delay,
                retry.error[:300],
            )
        level = log.info if retry.reason == "ratelimited" else log.warning
        level(
            "slack_delivery_retry",
            channel=row["channel"],
            op=row["op"],
            kind=row["kind"],
            reason=retry.reason,
            error=retry.error,
            attempts=attempts,
            failures=failures,
            retry_in_s=round(delay, 2),
        )

    async def _fail(self, conn: Any, row: Any, error: str) -> list[tuple[int, Delivered]]:
        await conn.execute(
            "UPDATE slack_outbox SET state = 'failed', done_at = now(), attempts = attempts + 1, last_error = $2"
            " WHERE id = $1",
            row["id"],
            error[:300],
        )
        failed = Delivered(False, row["op"], row["channel"], error=error)
        await self._hook(conn, row["kind"], row["data"], failed)
        outcomes = [(row["id"], failed)]
        if row["op"] == "post":  # nothing can be threaded under a message that does not exist
            dropped = await conn.fetch(
                "UPDATE slack_outbox SET state = 'failed', done_at = now(), last_error = $2"
                " WHERE thread_key = $1 AND state = 'pending' RETURNING id, op, kind, data",
                row["thread_key"],
                f"thread head was not delivered: {error}"[:300],
            )
            for other in dropped:
                lost = Delivered(False, other["op"], row["channel"], error=f"thread head was not delivered: {error}")
                await self._hook(conn, other["kind"], other["data"], lost)
                outcomes.append((other["id"], lost))
        SLACK_OUTBOX_RETRIES.labels("failed").inc()
        log.error(
            "slack_delivery_failed",
            channel=row["channel"],
            op=row["op"],
            kind=row["kind"],
            error=error,
            thread_rows_dropped=len(outcomes) - 1,
        )
        return outcomes
