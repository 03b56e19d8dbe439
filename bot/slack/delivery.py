"""The outbox's delivery side: workers that claim due rows (FOR UPDATE SKIP LOCKED), send them to
Slack at the channel's pace, retry what failed and keep the backlog visible. See bot/slack/outbox.py
for what a row is and how producers queue them."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import Backoff, describe_error
from bot.core.logs import log
from bot.core.metrics import SLACK_API_ERRORS, SLACK_BACKLOG, SLACK_OUTBOX_RETRIES, SLACK_OUTBOX_SENT
from bot.core.redact import redact, redact_any
from bot.slack.outbox import RENDERERS
from bot.slack.render import clip

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_attachments",
        "too_many_attachments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "restricted_action",
        "thread_not_found",
        "too_many_blocks",
        "invalid_metadata_format",
        "invalid_metadata_schema",
    }
)
# What makes an upload hopeless (the rest of the thread goes on without the file).
UPLOAD_PERMANENT_ERRORS = PERMANENT_ERRORS | {
    "missing_scope",
    "not_allowed_token_type",
    "file_uploads_disabled",
    "file_uploads_except_images_disabled",
    "file_upload_size_restricted",
    "storage_limit_reached",
    "invalid_channel",
}
# Of those, the ones a plain-text version of the same message avoids.
DEGRADE_TO_TEXT = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_blocks"})
KEEP_DONE_ROWS = "7 days"


def outbox_client(token: str, base_url: str, timeout: float = 10.0) -> AsyncWebClient:
    """A Web API client without retry handlers: the outbox decides when to retry, from the database."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=int(timeout), retry_handlers=[])


# ---------------------------------------------------------------------- delivery

# What a channel's next token goes to, among the rows that head their thread: a new thread's header and
# a triage report first (what someone is waiting for), then other replies, then header refreshes
# (coalesced: the longer they wait, the more versions one chat.update carries).
PRIORITY = "CASE WHEN o.op = 'post' OR o.kind LIKE 'triage%' THEN 0 WHEN o.op = 'update' THEN 2 ELSE 1 END"

_HEADS = """
    SELECT DISTINCT ON (thread_key) id FROM slack_outbox WHERE state = 'pending' ORDER BY thread_key, id
"""

CLAIM = f"""
WITH heads AS ({_HEADS})
SELECT o.id, o.thread_key, o.channel, o.op, o.kind, o.message, o.data, o.attempts, o.failures,
       t.channel AS thread_channel, t.ts AS thread_ts, c.channel IS NOT NULL AS channel_known
FROM heads h
JOIN slack_outbox o ON o.id = h.id
LEFT JOIN slack_threads t ON t.thread_key = o.thread_key
LEFT JOIN slack_channels c ON c.channel = o.channel
WHERE o.state = 'pending' AND o.not_before <= clock_timestamp()
  AND (c.next_at IS NULL OR c.next_at <= clock_timestamp())
  AND NOT (o.channel = ANY($1::text[]))
ORDER BY {PRIORITY}, o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""

NEXT_DUE = f"""
WITH heads AS ({_HEADS})
SELECT extract(epoch FROM min(greatest(o.not_before, coalesce(c.next_at, '-infinity'))) - clock_timestamp())
FROM heads h JOIN slack_outbox o ON o.id = h.id LEFT JOIN slack_channels c ON c.channel = o.channel
WHERE NOT (o.channel = ANY($1::text[]))
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


class _Retry(Exception):
    def __init__(self, reason: str, error: str, delay: float | None = None):
        super().__init__(error)
        self.reason = reason  # ratelimited | server_error | transport | slack_error
        self.error = error
        self.delay = delay  # None: exponential backoff


class _Failed(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class Outbox:
    def __init__(
        self,
        store,
        client: AsyncWebClient,
        *,
        interval: float = 1.0,
        burst: int = 1,
        max_backoff: float = 30.0,
        workers: int = 2,
        poll: float = 1.0,
    ):
        self.store = store
        self.client = client
        self.interval = interval  # seconds per token of a channel's bucket
        self.burst = max(1, burst)  # tokens a channel's bucket holds: messages that may go out at once
        self.max_backoff = max_backoff
        self.backoff = Backoff(first=1.0, cap=max_backoff)
        self.workers = workers
        self.poll = poll  # how often to look for rows other replicas queued
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._claiming = asyncio.Lock()
        self._busy: set[str] = set()  # channels a worker of this process is sending to right now
        self._backlog_at = 0.0
        self._cleaned_at = 0.0

    # -- lifecycle

    def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._tasks = [asyncio.create_task(self._worker(n), name=f"outbox-{n}") for n in range(self.workers)]

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight deliveries finish (they are committed), then stop; the rest stays queued."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _done, still = await asyncio.wait(self._tasks, timeout=timeout)
            for task in still:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

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

    async def _worker(self, number: int) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self.store.ready()
                delivered = await self.deliver_one()
                failures = 0
                if number == 0:
                    await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bot database is down: wait and try again, nothing is lost
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("outbox_database_error", error=describe_error(exc), failures=failures)
                await self._sleep(self.backoff.delay(failures - 1))
                continue
            if not delivered:
                await self._idle()

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _idle(self) -> None:
        """Sleep until the next row may be due (pace, backoff), a producer wakes us, or the poll interval."""
        self._wake.clear()  # before looking: a producer's wake-up from now on is not lost
        async with self.store.acquire() as conn:
            due = await conn.fetchval(NEXT_DUE, list(self._busy))
        wait = self.poll if due is None else max(0.02, min(float(due), self.poll))
        await self._sleep(wait)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at >= 1.0:
            await self.backlog()
        if now - self._cleaned_at >= 3600:
            self._cleaned_at = now
            async with self.store.acquire() as conn:
                await conn.execute(
                    f"DELETE FROM slack_outbox WHERE state <> 'pending' AND done_at < now() - interval '{KEEP_DONE_ROWS}'"
                )

    async def deliver_one(self) -> bool:
        """Claim the next deliverable row, send it, record the outcome. False when nothing is due."""
        async with self.store.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            finished = False
            channel = None
            try:
                async with self._claiming:
                    row = await self._claim(conn)
                    if row is None:
                        await tx.rollback()
                        finished = True
                        return False
                    channel = row["channel"]
                    self._busy.add(channel)
                await self._deliver(conn, row)
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
        self._wake.set()  # the thread's next row may be due now
        return True

    async def _claim(self, conn):
        """Lock the oldest row that heads its thread and whose channel may be written to now."""
        skip = set(self._busy)
        for _ in range(5):
            row = await conn.fetchrow(CLAIM, list(skip))
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

    async def _deliver(self, conn, row) -> None:
        message, kind, data = json.loads(row["message"]), row["kind"], row["data"]
        superseded: list[int] = []
        if row["op"] in ("post", "update"):
            # the newest unsent version of the header wins; older versions are never sent
            later = await conn.fetch(
                "SELECT id, kind, message, data FROM slack_outbox WHERE thread_key = $1 AND state = 'pending'"
                " AND op = 'update' AND id > $2 ORDER BY id FOR UPDATE SKIP LOCKED",
                row["thread_key"],
                row["id"],
            )
            if later:
                message, kind, data = json.loads(later[-1]["message"]), later[-1]["kind"], later[-1]["data"]
                superseded = [r["id"] for r in later]
        if row["op"] != "post" and row["thread_ts"] is None:
            await self._fail(conn, row, "thread head was not delivered")
            return
        if kind in RENDERERS:
            try:
                async with conn.transaction():  # a savepoint: a failed render leaves the claim intact
                    message = (
                        await RENDERERS[kind](conn, json.loads(data) if data else None, row["thread_key"]) or message
                    )
            except Exception as exc:  # the stored message is the fallback
                log.error("slack_message_render_failed", kind=kind, error=describe_error(exc))
        try:
            data = await self._send(row, message)
        except _Retry as retry:
            await self._retry(conn, row, retry)
            return
        except _Failed as failed:
            await self._fail(conn, row, failed.error)
            return
        ts = data.get("ts") if row["op"] != "update" else row["thread_ts"]
        await conn.execute(
            "UPDATE slack_outbox SET state = 'sent', done_at = now(), attempts = attempts + 1, ts = $2,"
            " last_error = NULL WHERE id = $1",
            row["id"],
            ts,
        )
        if superseded:
            await conn.execute(
                "UPDATE slack_outbox SET state = 'superseded', done_at = now() WHERE id = ANY($1::bigint[])", superseded
            )
        if row["op"] == "post":
            await conn.execute(
                "INSERT INTO slack_threads (thread_key, channel, ts) VALUES ($1, $2, $3) ON CONFLICT (thread_key) DO NOTHING",
                row["thread_key"],
                data.get("channel") or row["channel"],
                ts,
            )
        await conn.execute(SPEND_TOKEN, row["channel"], self.interval, self.burst)
        SLACK_OUTBOX_SENT.labels(row["op"]).inc()

    async def _retry(self, conn, row, retry: _Retry) -> None:
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

    async def _fail(self, conn, row, error: str) -> None:
        await conn.execute(
            "UPDATE slack_outbox SET state = 'failed', done_at = now(), attempts = attempts + 1, last_error = $2"
            " WHERE id = $1",
            row["id"],
            error[:300],
        )
        dropped = 0
        if row["op"] == "post":  # nothing can be threaded under a message that does not exist
            dropped = len(
                await conn.fetch(
                    "UPDATE slack_outbox SET state = 'failed', done_at = now(), last_error = $2"
                    " WHERE thread_key = $1 AND state = 'pending' RETURNING id",
                    row["thread_key"],
                    f"thread head was not delivered: {error}"[:300],
                )
            )
        SLACK_OUTBOX_RETRIES.labels("failed").inc()
        log.error(
            "slack_delivery_failed",
            channel=row["channel"],
            op=row["op"],
            kind=row["kind"],
            error=error,
            thread_rows_dropped=dropped,
        )

    # -- one Web API call

    async def _send(self, row, message: dict) -> dict:
        if row["op"] == "upload":
            return await self._upload(row, message)
        if row["op"] == "post":
            method, args = "chat.postMessage", {"channel": row["channel"], "unfurl_links": False, "unfurl_media": False}
        elif row["op"] == "reply":
            method, args = (
                "chat.postMessage",
                {
                    "channel": row["thread_channel"],
                    "thread_ts": row["thread_ts"],
                    "unfurl_links": False,
                    "unfurl_media": False,
                },
            )
        else:
            method, args = "chat.update", {"channel": row["thread_channel"], "ts": row["thread_ts"]}
        try:
            return await self._call(method, {**args, **message})
        except _Failed as failed:
            if failed.error not in DEGRADE_TO_TEXT or not message.get("blocks"):
                raise
            log.warning("slack_message_degraded_to_text", kind=row["kind"], error=failed.error)
            text = clip(message.get("text") or "(message could not be rendered)", 3000)
            return await self._call(method, {**args, "text": text, "blocks": []})

    async def _upload(self, row, message: dict) -> dict:
        """Share a file in the thread: files_upload_v2's three steps (a failure in any of them redoes all
        three; only the last one shows anything in Slack). Returns {"ts"} of the message Slack posted."""
        file = message.get("file") or {}
        content = redact(str(file.get("content") or ""))
        try:
            response = await self.client.files_upload_v2(
                channel=row["thread_channel"],
                thread_ts=row["thread_ts"],
                content=content,
                filename=str(file.get("filename") or "output.txt"),
                title=redact(str(file.get("title") or file.get("filename") or "output")),
                initial_comment=redact(str(message.get("text") or "")),
            )
        except SlackApiError as exc:
            classified = self._classify("files.upload", exc)
            if isinstance(classified, _Retry) and classified.error in UPLOAD_PERMANENT_ERRORS:
                raise _Failed(classified.error) from None
            raise classified from None
        except (SlackRequestError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            SLACK_API_ERRORS.labels("files.upload", type(exc).__name__).inc()
            raise _Retry("transport", describe_error(exc)) from None
        return {"ts": shared_ts(response.data if isinstance(response.data, dict) else {}, row["thread_channel"])}

    async def _call(self, method: str, args: dict) -> dict:
        try:
            response = await self.client.api_call(method, json=redact_any(args))
        except SlackApiError as exc:
            raise self._classify(method, exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            SLACK_API_ERRORS.labels(method, type(exc).__name__).inc()
            raise _Retry("transport", describe_error(exc)) from None
        return response.data if isinstance(response.data, dict) else {}

    @staticmethod
    def _classify(method: str, exc: SlackApiError) -> Exception:
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
        body = getattr(response, "data", None)
        error = body.get("error") if isinstance(body, dict) else None
        error = error or f"http_{status}"
        SLACK_API_ERRORS.labels(method, error).inc()
        if status == 429 or error == "ratelimited":
            headers = getattr(response, "headers", None) or {}
            return _Retry("ratelimited", "ratelimited", retry_after(headers.get("Retry-After")))
        if status >= 500:
            return _Retry("server_error", error)
        if error in PERMANENT_ERRORS:
            return _Failed(error)
        # invalid_auth, account_inactive, unknown errors: a configuration problem or a transient one;
        # either way the message must not be lost, so keep retrying (with backoff, logged).
        return _Retry("slack_error", error)


def shared_ts(answer: dict, channel: str) -> str | None:
    """The ts of the message that shares an uploaded file in `channel` (files.completeUploadExternal's answer)."""
    for file in answer.get("files") or []:
        for share in ((file.get("shares") or {}).get("public") or {}).get(channel) or []:
            if share.get("ts"):
                return str(share["ts"])
    return None


def retry_after(value: Any, default: float = 1.0) -> float:
    """Seconds from a Retry-After header: delta-seconds (all of its digits) or an HTTP date."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return default
