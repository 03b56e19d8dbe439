"""One Web API call per outbox row, and what its answer means: sent, retry later (how much later), or
never (a permanent error). Shared by the durable outbox and the in-process one."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.metrics import SLACK_API_ERRORS
from bot.core.redact import redact, redact_any
from bot.slack.render import clip
from bot.slack.web import PooledWebClient, close_connections

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


def outbox_client(token: str, base_url: str, timeout: float = 10.0) -> AsyncWebClient:
    """A Web API client without retry handlers: the outbox decides when to retry, from the database."""
    return PooledWebClient(token=token, base_url=base_url, timeout=int(timeout), retry_handlers=[])


class Retry(Exception):
    """Slack did not take the message now; try again (after `delay`, or the backoff's)."""

    def __init__(self, reason: str, error: str, delay: float | None = None):
        super().__init__(error)
        self.reason = reason  # ratelimited | server_error | transport | slack_error
        self.error = error
        self.delay = delay  # None: exponential backoff


class Failed(Exception):
    """Slack will never take this message (a permanent error)."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class SlackSender:
    """One Web API call per message, its outcome classified as sent, Retry or Failed."""

    def __init__(self, client: AsyncWebClient | None):
        self.client = client

    async def close(self) -> None:
        """Close the client's connections (its next call opens new ones)."""
        await close_connections(self.client)

    async def send(
        self,
        op: str,
        channel: str,
        thread: tuple[str | None, str | None],
        target: tuple[str | None, str | None],
        message: dict,
        kind: str = "",
        content: bytes | None = None,
    ) -> dict:
        """Post (op post), reply in `thread` (channel, ts), share a file there (upload; `content`: a binary
        file's bytes) or update `target` (channel, ts); Slack's answer."""
        if op == "upload":
            return await self.upload(thread, message, content)
        if op == "post":
            method, args = "chat.postMessage", {"channel": channel, "unfurl_links": False, "unfurl_media": False}
        elif op == "reply":
            method = "chat.postMessage"
            args = {"channel": thread[0], "thread_ts": thread[1], "unfurl_links": False, "unfurl_media": False}
        else:
            method, args = "chat.update", {"channel": target[0], "ts": target[1]}
        try:
            return await self.call(method, {**args, **message})
        except Failed as failed:
            if failed.error not in DEGRADE_TO_TEXT or not message.get("blocks"):
                raise
            log.warning("slack_message_degraded_to_text", kind=kind, error=failed.error)
            text = clip(message.get("text") or "(message could not be rendered)", 3000)
            return await self.call(method, {**args, "text": text, "blocks": []})

    async def upload(self, thread: tuple[str | None, str | None], message: dict, content: bytes | None = None) -> dict:
        """Share a file in the thread: files_upload_v2's three steps (a failure in any of them redoes all
        three; only the last one shows anything in Slack). A text file's content is redacted; a binary
        one (`content`) goes as it is. Returns {"ts"} of the message Slack posted."""
        if self.client is None:
            raise Retry("transport", "no Slack client in this process")
        file = message.get("file") or {}
        body: dict[str, Any] = (
            {"file": content} if content is not None else {"content": redact(str(file.get("content") or ""))}
        )
        try:
            response = await self.client.files_upload_v2(
                channel=thread[0],
                thread_ts=thread[1],
                **body,
                filename=str(file.get("filename") or "output.txt"),
                title=redact(str(file.get("title") or file.get("filename") or "output")),
                initial_comment=redact(str(message.get("text") or "")),
            )
        except SlackApiError as exc:
            classified = classify("files.upload", exc)
            if isinstance(classified, Retry) and classified.error in UPLOAD_PERMANENT_ERRORS:
                raise Failed(classified.error) from None
            raise classified from None
        except (SlackRequestError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            SLACK_API_ERRORS.labels("files.upload", type(exc).__name__).inc()
            raise Retry("transport", describe_error(exc)) from None
        answer = response.data if isinstance(response.data, dict) else {}
        return {"ts": shared_ts(answer, thread[0] or ""), "channel": thread[0]}

    async def call(self, method: str, args: dict) -> dict:
        if self.client is None:
            raise Retry("transport", "no Slack client in this process")
        try:
            # stored redacted already; redacting again is idempotent and covers what renderers produced
            response = await self.client.api_call(method, json=redact_any(args))
        except SlackApiError as exc:
            raise classify(method, exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            SLACK_API_ERRORS.labels(method, type(exc).__name__).inc()
            raise Retry("transport", describe_error(exc)) from None
        return response.data if isinstance(response.data, dict) else {}


def classify(method: str, exc: SlackApiError) -> Exception:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
    body = getattr(response, "data", None)
    error = body.get("error") if isinstance(body, dict) else None
    error = error or f"http_{status}"
    SLACK_API_ERRORS.labels(method, error).inc()
    if status == 429 or error == "ratelimited":
        headers = getattr(response, "headers", None) or {}
        return Retry("ratelimited", "ratelimited", retry_after(headers.get("Retry-After")))
    if status >= 500:
        return Retry("server_error", error)
    if error in PERMANENT_ERRORS:
        return Failed(error)
    # invalid_auth, account_inactive, unknown errors: a configuration problem or a transient one;
    # either way the message must not be lost, so keep retrying (with backoff, logged).
    return Retry("slack_error", error)


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
