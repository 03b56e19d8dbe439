"""The outbox of a bot without its own database (BOT_DATABASE_URL unset): the same rows, kept in this
process. Producers write to it exactly as to the durable outbox (bot/slack/delivery.py) and get the
same guarantees while the process lives — in order per thread, replies taking the thread's ts when
they are sent, paced per channel, people first, 429 and 5xx retried for as long as it takes — but
what is still queued when the process stops is lost (a warning counts it)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import Backoff
from bot.core.logs import log
from bot.core.metrics import SLACK_BACKLOG, SLACK_OUTBOX_RETRIES, SLACK_OUTBOX_SENT
from bot.slack.outbox import INTERACTIVE, Courier, Delivered, Outgoing, Receipt, ThreadRows
from bot.slack.sender import Failed, Retry, SlackSender


@dataclass
class _Row:
    seq: int
    thread_key: str
    channel: str
    priority: int
    item: Outgoing
    future: asyncio.Future
    created: float = field(default_factory=time.monotonic)
    not_before: float = 0.0
    attempts: int = 0


class MemoryOutbox(Courier):
    durable = False

    def __init__(
        self, client: AsyncWebClient | None, *, interval: float = 1.0, burst: int = 1, max_backoff: float = 30.0
    ):
        self.sender = SlackSender(client)
        self.interval = interval  # seconds per token of a channel's bucket
        self.burst = max(1, burst)  # tokens a channel's bucket holds
        self.backoff = Backoff(first=1.0, cap=max_backoff)
        self._rows: list[_Row] = []  # pending, in the order they were queued
        self._messages: dict[str, tuple[str, str]] = {}  # thread heads and named messages: key -> (channel, ts)
        self._next_at: dict[str, float] = {}  # per channel, monotonic time
        self._bucket: dict[str, tuple[float, float]] = {}  # per channel: (tokens, as of this monotonic time)
        self._seq = itertools.count(1)
        self._failed = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._worker(), name="outbox-memory")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the message being sent finish; what is still queued is lost (and said so)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.sender.close()
        if self._rows:
            log.warning("slack_messages_lost_on_stop", pending=len(self._rows), hint="set BOT_DATABASE_URL")
        for row in self._rows:
            row.future.cancel()
        self._rows.clear()

    def wake(self) -> None:
        self._wake.set()

    @asynccontextmanager
    async def thread(self, thread_key: str, channel: str, *, priority: int = INTERACTIVE) -> AsyncIterator[ThreadRows]:
        rows = ThreadRows(thread_key, channel, priority, None)
        yield rows
        loop = asyncio.get_running_loop()
        queued = [
            _Row(next(self._seq), thread_key, channel, priority, item, loop.create_future()) for item in rows.items
        ]
        self._rows.extend(queued)
        rows.receipt = Receipt([row.seq for row in queued], [row.future for row in queued])
        self.wake()

    async def health(self, timeout: float = 2.0) -> dict:
        oldest = min((row.created for row in self._rows), default=None)
        SLACK_BACKLOG.set(len(self._rows))
        return {
            "pending": len(self._rows),
            "failed": self._failed,
            "oldest_pending_s": round(time.monotonic() - oldest, 1) if oldest is not None else None,
            "durable": False,
        }

    # -- the worker

    async def _worker(self) -> None:
        while not self._stopping:
            self._wake.clear()
            row, wait = self._next_due()
            if row is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            await self._deliver(row)

    def _next_due(self) -> tuple[_Row | None, float]:
        """The row to send now (the first of its thread, its channel free, highest priority first), or
        how long until one may be due."""
        now = time.monotonic()
        seen: set[str] = set()
        best: _Row | None = None
        wait = 1.0
        for row in self._rows:
            if row.thread_key in seen:
                continue
            seen.add(row.thread_key)
            due = max(row.not_before, self._next_at.get(row.channel, 0.0))
            if due > now:
                wait = min(wait, due - now)
            elif best is None or _rank(row) < _rank(best):
                best = row
        return best, max(0.01, wait)

    async def _deliver(self, row: _Row) -> None:
        item = row.item
        thread = self._messages.get(row.thread_key, (None, None))
        target = self._messages.get(item.key or "", thread) if item.op == "update" else thread
        if item.op != "post" and thread[1] is None:
            self._fail(row, "thread head was not delivered")
            return
        if item.op == "update" and target[1] is None:
            self._fail(row, "the message to update was not delivered")
            return
        try:
            answer = await self.sender.send(item.op, row.channel, thread, target, item.message, item.kind, item.content)
        except Retry as retry:
            row.attempts += 1
            delay = retry.delay if retry.delay is not None else self.backoff.delay(row.attempts - 1)
            row.not_before = time.monotonic() + delay
            self._next_at[row.channel] = time.monotonic() + delay
            if retry.reason == "ratelimited":  # exactly Retry-After, then one token
                self._bucket[row.channel] = (1.0, time.monotonic() + delay)
            SLACK_OUTBOX_RETRIES.labels(retry.reason).inc()
            level = log.info if retry.reason == "ratelimited" else log.warning
            level("slack_delivery_retry", channel=row.channel, op=item.op, reason=retry.reason, error=retry.error)
            return
        except Failed as failed:
            self._fail(row, failed.error)
            return
        ts = answer.get("ts") if item.op != "update" else target[1]
        channel = answer.get("channel") or (row.channel if item.op == "post" else target[0])
        assert ts is not None and channel is not None
        if item.op == "post":
            self._messages.setdefault(row.thread_key, (channel, ts))
        if item.key and item.op != "update":
            self._messages.setdefault(item.key, (channel, ts))
        self._spend_token(row.channel)
        self._rows.remove(row)
        SLACK_OUTBOX_SENT.labels(item.op).inc()
        thread_ts = ts if item.op == "post" else thread[1]
        if not row.future.done():
            row.future.set_result(Delivered(True, item.op, channel, ts, thread_ts))

    def _spend_token(self, channel: str) -> None:
        """The channel's bucket as in bot.slack.delivery.SPEND_TOKEN: next_at is now while a token is left."""
        now = time.monotonic()
        tokens, since = self._bucket.get(channel, (float(self.burst), now))
        if self.interval > 0:
            tokens = min(float(self.burst), tokens + max(0.0, now - since) / self.interval)
        else:
            tokens = float(self.burst)
        left = tokens - 1
        self._bucket[channel] = (left, now)
        self._next_at[channel] = now + max(0.0, 1 - left) * self.interval

    def _fail(self, row: _Row, error: str) -> None:
        dropped = [row]
        if row.item.op == "post":  # nothing can be threaded under a message that does not exist
            dropped += [r for r in self._rows if r.thread_key == row.thread_key and r is not row]
        for lost in dropped:
            self._rows.remove(lost)
            self._failed += 1
            if not lost.future.done():
                why = error if lost is row else f"thread head was not delivered: {error}"
                lost.future.set_result(Delivered(False, lost.item.op, row.channel, error=why))
        SLACK_OUTBOX_RETRIES.labels("failed").inc()
        log.error("slack_delivery_failed", channel=row.channel, op=row.item.op, kind=row.item.kind, error=error)


def _rank(row: _Row) -> tuple[int, int, int]:
    """As bot.slack.delivery.PRIORITY: people first, then new threads and triage, replies, header refreshes."""
    op_rank = 0 if row.item.op == "post" or row.item.kind.startswith("triage") else 2 if row.item.op == "update" else 1
    return (-row.priority, op_rank, row.seq)
