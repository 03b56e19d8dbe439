"""A local Slack: the Web API the bot calls, and the signed requests Slack sends to the bot.

Slack is the one component that cannot be reached from a test machine, so this module stands in
for it, speaking Slack's real HTTP protocol both ways so that the bot's unmodified Bolt and
slack_sdk code talks to it:

* **Web API** (an aiohttp server): ``auth.test``, ``chat.postMessage``, ``chat.update``,
  ``chat.postEphemeral``, ``chat.getPermalink``, ``conversations.info``, ``users.info``,
  ``usergroups.users.list``, ``views.publish`` and the three steps of ``files_upload_v2``
  (``files.getUploadURLExternal``, the POST to the upload URL, ``files.completeUploadExternal``).
  Point the bot's ``AsyncWebClient(base_url=...)`` at :attr:`LocalSlack.api_url`. Every call is
  recorded in :attr:`LocalSlack.calls`, messages are kept in :attr:`LocalSlack.messages`, uploaded
  files in :attr:`LocalSlack.files`, App Home views in :attr:`LocalSlack.home_views`, and faults
  (429, 5xx, slowness) can be injected.
* **Rate limits** (off unless asked for): :class:`RateLimit` gives each channel a token bucket
  for ``chat.postMessage`` the way Slack documents its limit (about one message a second per
  channel, short bursts allowed); over it the answer is HTTP 429 with ``Retry-After``.
* **response_url sinks**: :meth:`LocalSlack.response_url` makes a URL whose POSTs are applied
  the way Slack applies them (ephemeral, in_channel, replace_original, delete_original).
* **Sender**: :meth:`LocalSlack.slash` and :meth:`LocalSlack.click` POST slash commands and
  ``block_actions`` payloads to :attr:`LocalSlack.bot_url`, signed with the v0 scheme.

Usage::

    async with LocalSlack(signing_secret="s3cr3t") as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.bot_url = "http://127.0.0.1:3000/slack/events"
        await slack.slash("status")
        call = await slack.wait_for(lambda c: c.method == "chat.postMessage")
        print(render_text(slack.messages[call.args["channel"], call.response["ts"]]))
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientSession, ClientTimeout, web
from slack_sdk.signature import SignatureVerifier

from bot.local.text import render_text

__all__ = ["Call", "LocalSlack", "RateLimit", "SlackHTTPResult", "block_errors", "render_text"]

# Limits Slack enforces on messages (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # modals and App Home
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_URL = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40000
ACK_DEADLINE_S = 3.0
# Lines of a text file Slack shows in the message before "N more lines" (the file's `preview`).
FILE_PREVIEW_LINES = 5

# Error codes Slack's Web API returns with 5xx statuses.
_SERVER_ERRORS = {500: "internal_error", 503: "service_unavailable", 504: "request_timeout"}
# Slack lists the token's scopes on every Web API answer; Bolt reads them after auth.test.
_SCOPES = "chat:write,commands,files:write,users:read,channels:read,usergroups:read"
# Keys kept on stored messages for the tests' convenience, never shown to the bot.
_LOCAL_KEYS = ("channel", "history", "is_ephemeral", "source")
# Keys kept on recorded files for the tests' convenience; Slack's file objects do not carry them.
_LOCAL_FILE_KEYS = ("content", "length", "channel", "thread_ts", "message_ts", "initial_comment")


@dataclass
class Call:
    """One HTTP request LocalSlack answered: a Web API method, ``upload``, ``response_url`` or ``ack``."""

    method: str
    args: dict
    at: float  # time.monotonic() when the request arrived
    response: dict
    status: int = 200

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class SlackHTTPResult:
    """What the bot answered to a request LocalSlack sent it."""

    status: int
    body_text: str
    json: Any
    elapsed_s: float
    response_url: str | None = None
    request_body: str = ""  # resend it with raw_post() to imitate a retry

    @property
    def within_ack_deadline(self) -> bool:
        return self.elapsed_s <= ACK_DEADLINE_S


class _ApiError(Exception):
    """A Slack error answer: ``{"ok": false, "error": code, ...}``."""

    def __init__(self, error: str, status: int = 200, headers: dict | None = None, **extra: Any):
        super().__init__(error)
        self.status = status
        self.headers = headers or {}
        self.body = {"ok": False, "error": error, **extra}


@dataclass(frozen=True)
class RateLimit:
    """Slack's per-channel limit on posting, as a token bucket per channel.

    Each channel's bucket holds at most `burst` tokens and gains `per_second` tokens a second
    (continuously); every call of one of `methods` to that channel takes a token, and a call that
    finds less than one token is answered HTTP 429 ``{"ok": false, "error": "ratelimited"}`` with
    ``Retry-After`` = the whole seconds until a token is back (at least 1). A refused call takes
    nothing. Slack documents "1 per second, short bursts >1 allowed" but not the burst size; 5 is
    this fake's choice, configurable.
    """

    per_second: float = 1.0
    burst: int = 5
    methods: frozenset[str] = frozenset({"chat.postMessage"})


@dataclass
class _Bucket:
    tokens: float
    updated: float  # time.monotonic() of the last refill


@dataclass
class _Fault:
    method: str | None
    status: int
    retry_after: int | None
    times: int


@dataclass
class _Origin:
    """Where a response_url came from: who ran the command, and on which message they clicked."""

    channel: str
    user: str
    message: dict | None = None


class LocalSlack:
    def __init__(
        self,
        signing_secret: str,
        bot_token: str = "xoxb-local-token",
        team_id: str = "T0LOCAL",
        bot_user_id: str = "U0BOT",
        *,
        team_domain: str = "local",
        bot_id: str = "B0BOT",
        app_id: str = "A0LOCAL",
        rate_limit: RateLimit | None = None,
    ):
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.verification_token = "local-verification-token"  # the deprecated `token` field
        self.api_url = ""
        self.base_url = ""
        self.bot_url: str | None = None

        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict] = {}
        self.ephemerals: list[dict] = []
        self.responses: list[dict] = []
        # file id → Slack's file object plus the upload's content (bytes), channel, thread_ts, message_ts.
        self.files: dict[str, dict] = {}
        # user id → the App Home view last published with views.publish.
        self.home_views: dict[str, dict] = {}
        # Known users and channel names; slash() and click() add theirs, tests may add more.
        self.users: dict[str, dict] = {bot_user_id: {"name": "erpgo", "is_bot": True}}
        self.channel_names: dict[str, str] = {}
        # User group id (S…) → member user ids, for usergroups.users.list; tests fill it.
        self.usergroups: dict[str, list[str]] = {}
        # Per-channel posting limit (None = unlimited) and how many HTTP 429s were answered, for any reason.
        self.rate_limit = rate_limit
        self.ratelimited = 0
        self._buckets: dict[str, _Bucket] = {}

        self._faults: list[_Fault] = []
        self._outage_status: int | None = None
        self._delays: dict[str | None, float] = {}
        self._hooks: dict[str, _Origin] = {}
        self._listeners: list[Callable[[Call], Any]] = []
        self._changed = asyncio.Condition()
        self._last_ts_us = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "usergroups.users.list": self._usergroups_users_list,
            "views.publish": self._views_publish,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/hooks/{kind}/{key}", self._handle_hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        # slack_sdk joins base_url and the method with urljoin, so the trailing slash matters.
        self.api_url = f"{self.base_url}/api/"
        self._session = ClientSession(timeout=ClientTimeout(total=60))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def reset(self) -> None:
        """Forget recorded traffic, messages and faults (for a server shared by several tests)."""
        self.calls.clear()
        self.messages.clear()
        self.ephemerals.clear()
        self.responses.clear()
        self.files.clear()
        self.home_views.clear()
        self._hooks.clear()
        self._buckets.clear()
        self.ratelimited = 0
        self.recover()

    # ------------------------------------------------------------------ fault injection

    def fail(self, method: str | None = None, status: int = 429, retry_after: int | None = 1, times: int = 1) -> None:
        """Make the next `times` calls of `method` (None = any) fail with `status`."""
        self._faults.append(_Fault(method, status, retry_after, times))

    def outage(self, status: int = 500) -> None:
        """Fail every call with `status` until recover()."""
        self._outage_status = status

    def recover(self) -> None:
        """End an outage, drop pending failures and delays."""
        self._outage_status = None
        self._faults.clear()
        self._delays.clear()

    def delay(self, seconds: float, method: str | None = None) -> None:
        """Answer every call of `method` (None = any) `seconds` late; delay(0) undoes it."""
        self._delays[method] = seconds

    def limit_rate(self, limit: RateLimit | None = RateLimit()) -> None:
        """Enforce `limit` from now on with full buckets; limit_rate(None) turns limiting off."""
        self.rate_limit = limit
        self._buckets.clear()

    def _take_token(self, method: str, args: dict) -> None:
        """Spend one of the channel's tokens on this call, or refuse it with 429 and Retry-After."""
        limit = self.rate_limit
        if limit is None or method not in limit.methods:
            return
        channel = str(args.get("channel") or args.get("channel_id") or "")
        now = time.monotonic()
        bucket = self._buckets.setdefault(channel, _Bucket(float(limit.burst), now))
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))
        raise _ApiError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    def _take_fault(self, method: str) -> tuple[int, dict, dict] | None:
        if self._outage_status is not None:
            return self._fault_answer(self._outage_status, None)
        for fault in self._faults:
            if fault.method in (None, method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return self._fault_answer(fault.status, fault.retry_after)
        return None

    @staticmethod
    def _fault_answer(status: int, retry_after: int | None) -> tuple[int, dict, dict]:
        if status == 429:
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return status, {"ok": False, "error": "ratelimited"}, headers
        return status, {"ok": False, "error": _SERVER_ERRORS.get(status, "fatal_error")}, {}

    # ------------------------------------------------------------------ observing

    def on_call(self, callback: Callable[[Call], Any]) -> None:
        """Call `callback(call)` for every recorded call (e.g. the shell prints new messages)."""
        self._listeners.append(callback)

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """Return the first call, past or future, matching `predicate`."""

        async def first_match() -> Call:
            async with self._changed:
                checked = 0
                while True:
                    for call in self.calls[checked:]:
                        if predicate(call):
                            return call
                    checked = len(self.calls)
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(first_match(), timeout)
        except TimeoutError:
            seen = ", ".join(f"{c.method}→{c.status}/{c.response.get('error', 'ok')}" for c in self.calls)
            raise TimeoutError(f"no matching Slack call within {timeout}s; calls seen: [{seen}]") from None

    def thread(self, channel: str, ts: str) -> list[dict]:
        """Replies in the thread of message `ts`, oldest first (the parent itself excluded)."""
        replies = [
            m for (ch, mts), m in self.messages.items() if ch == channel and m.get("thread_ts") == ts and mts != ts
        ]
        return sorted(replies, key=lambda m: m["ts"])

    def channel_messages(self, channel: str) -> list[dict]:
        """Top-level messages of `channel`, oldest first."""
        top = [m for (ch, ts), m in self.messages.items() if ch == channel and m.get("thread_ts", ts) == ts]
        return sorted(top, key=lambda m: m["ts"])

    def buttons(self, message: dict) -> list[dict]:
        """All buttons of a message: action_id, block_id, text, value, style, confirm, url."""
        return [
            {
                "action_id": element.get("action_id"),
                "block_id": block.get("block_id"),
                "text": (element.get("text") or {}).get("text"),
                "value": element.get("value"),
                "style": element.get("style"),
                "confirm": element.get("confirm"),
                "url": element.get("url"),
            }
            for block, element in _iter_buttons(message)
        ]

    # ------------------------------------------------------------------ HTTP plumbing

    async def _serve(
        self,
        method: str,
        args: dict,
        answer: Callable[[], dict],
        as_text: Callable[[dict], str] | None = None,
        headers: dict | None = None,
    ) -> web.Response:
        """Delay, inject a fault or compute the answer, record the call, and reply."""
        arrived = time.monotonic()
        seconds = self._delays.get(method, self._delays.get(None, 0))
        if seconds:
            await asyncio.sleep(seconds)
        fault = self._take_fault(method)
        if fault is not None:
            status, body, headers = fault
        else:
            try:
                status, body = 200, answer()
            except _ApiError as error:
                status, body = error.status, error.body
                if error.headers:
                    headers = {**(headers or {}), **error.headers}
        if status == 429:
            self.ratelimited += 1
        await self._record(Call(method, args, arrived, body, status))
        if as_text is not None and status == 200:
            return web.Response(text=as_text(body), status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        for listener in self._listeners:
            listener(call)
        async with self._changed:
            self._changed.notify_all()

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, parse_error = await _read_args(request)
        form_token = args.pop("token", None)  # Slack also takes the token as a form/query field
        token = _bearer_token(request) or form_token

        def answer() -> dict:
            if parse_error:
                raise _ApiError(parse_error)
            handler = self._methods.get(method)
            if handler is None:
                raise _ApiError("unknown_method", req_method=method)
            if not token:
                raise _ApiError("not_authed")
            if token != self.bot_token:
                raise _ApiError("invalid_auth")
            self._take_token(method, args)
            return handler(args)

        return await self._serve(method, args, answer, headers={"X-OAuth-Scopes": _SCOPES})

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        # Slack takes the bytes raw (as slack_sdk sends them) or as a multipart form's file part.
        content = await _upload_content(request)

        def answer() -> dict:
            file = self.files.get(file_id)
            if file is None:
                raise _ApiError("file_not_found", status=404)
            if content is None:
                raise _ApiError("no_file_data", status=400)
            file.update(content=content, size=len(content))
            return {"ok": True, "file_id": file_id, "size": len(content)}

        # The real upload URL answers text/plain "OK - <bytes>", which slack_sdk reads as text.
        args = {"file_id": file_id, "size": len(content or b"")}
        return await self._serve("upload", args, answer, as_text=lambda body: f"OK - {body['size']}")

    async def _handle_hook(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        raw = await request.text()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None

        def answer() -> dict:
            origin = self._hooks.get(key)
            if origin is None:
                raise _ApiError("expired_url", status=404)
            if not isinstance(payload, dict):
                raise _ApiError("invalid_payload", status=400)
            try:
                self._apply_response(origin, payload, via="response_url")
            except _ApiError as error:  # like incoming webhooks, a rejected message is a 400
                raise _ApiError(error.body["error"], status=400) from None
            return {"ok": True}

        return await self._serve("response_url", payload if isinstance(payload, dict) else {"raw": raw}, answer)

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, args: dict) -> dict:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "ERPGo Local",
            "user": self.users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict) -> dict:
        channel = _required(args, "channel", "channel_not_found")
        text, blocks = _message_content(args)
        message = self._new_message(channel, text, blocks, args)
        self._store(message, args.get("thread_ts"))
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": _public(message)}

    def _chat_update(self, args: dict) -> dict:
        channel = _required(args, "channel", "channel_not_found")
        message = self.messages.get((channel, str(args.get("ts") or "")))
        if message is None:
            raise _ApiError("message_not_found")
        text, blocks = _message_content(args)
        self._edit(message, text if "text" in args else None, blocks if "blocks" in args else None)
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": _public(message),
        }

    def _chat_post_ephemeral(self, args: dict) -> dict:
        channel = _required(args, "channel", "channel_not_found")
        user = _required(args, "user", "user_not_found")
        text, blocks = _message_content(args)
        ephemeral = self._new_ephemeral(channel, user, text, blocks, args.get("thread_ts"), "chat.postEphemeral")
        return {"ok": True, "message_ts": ephemeral["ts"]}

    def _chat_get_permalink(self, args: dict) -> dict:
        channel = _required(args, "channel", "channel_not_found")
        message = self.messages.get((channel, str(args.get("message_ts") or "")))
        if message is None:
            raise _ApiError("message_not_found")
        permalink = f"https://{self.team_domain}.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _conversations_info(self, args: dict) -> dict:
        channel = _required(args, "channel", "channel_not_found")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, channel.lower()),
                "is_channel": channel.startswith("C"),
                "is_private": channel.startswith("G"),
                "is_im": channel.startswith("D"),
                "is_archived": False,
                "is_member": True,
                "created": 1700000000,
                "topic": {"value": ""},
                "purpose": {"value": ""},
            },
        }

    def _users_info(self, args: dict) -> dict:
        user_id = _required(args, "user", "user_not_found")
        known = self.users.get(user_id, {})
        name = known.get("name", user_id.lower())
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": known.get("real_name", name),
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": known.get("real_name", name), **known.get("profile", {})},
        }
        user.update({k: v for k, v in known.items() if k != "profile"})
        return {"ok": True, "user": user}

    def _files_get_upload_url(self, args: dict) -> dict:
        filename = args.get("filename")
        try:
            length = int(args.get("length") or "")
        except (TypeError, ValueError):
            length = None
        if not filename or length is None:
            raise _ApiError("invalid_arguments")
        file_id = "F" + secrets.token_hex(5).upper()
        self.files[file_id] = {"id": file_id, "name": filename, "length": length, "content": None}
        if args.get("snippet_type"):
            self.files[file_id]["snippet_type"] = args["snippet_type"]
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict) -> dict:
        items = _json_arg(args.get("files"))
        if not isinstance(items, list) or not items:
            raise _ApiError("invalid_arguments")
        records = [self._uploaded_file(item) for item in items]  # all checked before any is completed
        for record, item in zip(records, items, strict=False):
            self._complete_file(record, item)
        channel = args.get("channel_id") or (args.get("channels") or "").split(",")[0]
        if channel:
            self._share_files(channel, records, args.get("initial_comment") or "", args.get("thread_ts"))
        return {"ok": True, "files": [_file_object(record) for record in records]}

    def _uploaded_file(self, item: Any) -> dict:
        file = self.files.get(item.get("id", "")) if isinstance(item, dict) else None
        if file is None or file["content"] is None:
            raise _ApiError("file_not_found")
        return file

    def _complete_file(self, file: dict, item: dict) -> None:
        content: bytes = file["content"]
        text = _as_text(content)
        now = int(time.time())
        fallback_type = "text/plain" if text is not None else "application/octet-stream"
        file.update(
            title=item.get("title") or file["name"],
            user=self.bot_user_id,
            created=now,
            timestamp=now,
            mimetype=mimetypes.guess_type(file["name"])[0] or fallback_type,
            filetype=file.get("snippet_type") or ("text" if text is not None else "binary"),
            mode="snippet" if text is not None else "hosted",
            is_external=False,
            size=len(content),
            url_private=f"{self.base_url}/files-pri/{self.team_id}-{file['id']}/{file['name']}",
            permalink=f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{file['id']}/{file['name']}",
        )
        file["url_private_download"] = file["url_private"] + "?download=1"
        if text is not None:
            lines = text.splitlines()
            preview = lines[:FILE_PREVIEW_LINES]
            file.update(
                preview="\n".join(preview),
                lines=len(lines),
                lines_more=len(lines) - len(preview),
                preview_is_truncated=len(lines) > len(preview),
            )

    def _share_files(self, channel: str, files: list[dict], comment: str, thread_ts: str | None) -> None:
        """Post the message Slack posts for shared files: the initial comment, carrying the file objects."""
        message = self._new_message(channel, comment, None, {})
        self._store(message, thread_ts)
        root = message.get("thread_ts")
        for file in files:
            share = {"ts": message["ts"], "channel_name": self.channel_names.get(channel, channel.lower())}
            if root:
                share["thread_ts"] = root
            file.update(channels=[channel], shares={"public": {channel: [share]}})
            file.update(channel=channel, thread_ts=root, message_ts=message["ts"], initial_comment=comment)
        message.update(files=[_file_object(file) for file in files], upload=True, display_as_bot=False)

    def _usergroups_users_list(self, args: dict) -> dict:
        usergroup = _required(args, "usergroup", "invalid_arguments")
        members = self.usergroups.get(usergroup)
        if members is None:
            raise _ApiError("no_such_subteam")
        return {"ok": True, "users": list(members)}

    def _views_publish(self, args: dict) -> dict:
        user_id = _required(args, "user_id", "invalid_arguments")
        view = _json_arg(args.get("view"))
        if not isinstance(view, dict) or view.get("type") != "home" or not isinstance(view.get("blocks"), list):
            raise _view_error("must provide a home view with blocks [json-pointer:/view]")
        errors = block_errors(view["blocks"], max_blocks=MAX_VIEW_BLOCKS)
        if errors:
            raise _view_error(*errors)
        current = self.home_views.get(user_id)
        if args.get("hash") and (current is None or args["hash"] != current["hash"]):
            raise _ApiError("hash_conflict")
        published = {
            **{k: view[k] for k in ("private_metadata", "callback_id", "external_id", "title") if k in view},
            "id": current["id"] if current else "V" + secrets.token_hex(5).upper(),
            "team_id": self.team_id,
            "type": "home",
            "blocks": _with_ids(view["blocks"]),
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "user": user_id,
        }
        self.home_views[user_id] = published
        return {"ok": True, "view": published}

    # ------------------------------------------------------------------ message store

    def _next_ts(self) -> str:
        now_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = now_us
        return f"{now_us // 1_000_000}.{now_us % 1_000_000:06d}"

    def _new_message(self, channel: str, text: str, blocks: list | None, args: dict) -> dict:
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text,
            "ts": self._next_ts(),
            "channel": channel,
            "history": [],
        }
        if blocks is not None:
            message["blocks"] = blocks
        for key in ("attachments", "metadata"):
            if args.get(key):
                message[key] = _json_arg(args[key])
        return message

    def _store(self, message: dict, thread_ts: str | None = None) -> None:
        channel = message["channel"]
        if thread_ts:
            parent = self.messages.get((channel, str(thread_ts)))
            # Slack files a reply to a reply under the thread's original parent.
            root = parent.get("thread_ts", parent["ts"]) if parent else str(thread_ts)
            self._attach_reply(channel, root, message)
        self.messages[channel, message["ts"]] = message

    def _attach_reply(self, channel: str, root: str, reply: dict) -> None:
        reply["thread_ts"] = root
        reply["parent_user_id"] = self.bot_user_id
        parent = self.messages.get((channel, root))
        if parent is not None:
            parent.update(thread_ts=root, latest_reply=reply["ts"], reply_count=parent.get("reply_count", 0) + 1)

    def _edit(self, message: dict, text: str | None, blocks: list | None) -> None:
        message["history"].append({"text": message["text"], "blocks": message.get("blocks"), "at": time.time()})
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}

    def _new_ephemeral(
        self, channel: str, user: str, text: str, blocks: list | None, thread_ts: str | None, source: str
    ) -> dict:
        # `user` is the one person who sees it, as in chat.postEphemeral.
        ephemeral = {
            "type": "message",
            "is_ephemeral": True,
            "source": source,
            "channel": channel,
            "user": user,
            "text": text,
            "ts": self._next_ts(),
        }
        if blocks is not None:
            ephemeral["blocks"] = blocks
        if thread_ts:
            ephemeral["thread_ts"] = str(thread_ts)
        self.ephemerals.append(ephemeral)
        return ephemeral

    # ------------------------------------------------------------------ response_url and acks

    def response_url(self, *, channel: str = "C0OPS", user: str = "U0ALICE", message: dict | None = None) -> str:
        """A fresh response_url on this server; `message` is the one a button was clicked on."""
        return self._new_hook(_Origin(channel, user, message))

    def _new_hook(self, origin: _Origin) -> str:
        key = secrets.token_urlsafe(12)
        self._hooks[key] = origin
        kind = "actions" if origin.message is not None else "commands"
        return f"{self.base_url}/hooks/{kind}/{key}"

    def _apply_response(self, origin: _Origin, payload: dict, via: str) -> None:
        """Do what Slack does with a message sent to a response_url (or in a slash command's ack)."""
        delete = bool(payload.get("delete_original"))
        replace = bool(payload.get("replace_original"))
        text, blocks = ("", None) if delete else _message_content(payload)
        if via == "response_url":
            self.responses.append(
                {
                    "channel": origin.channel,
                    "user": origin.user,
                    "response_type": payload.get("response_type", "ephemeral"),
                    "replace_original": replace,
                    "delete_original": delete,
                    "text": payload.get("text"),
                    "blocks": blocks,
                    "thread_ts": payload.get("thread_ts"),
                }
            )
        if origin.message is not None and (delete or replace):
            self._change_original(origin, delete, text, blocks)
        elif payload.get("response_type") == "in_channel":
            message = self._new_message(origin.channel, text, blocks, payload)
            self._store(message, payload.get("thread_ts"))
        else:
            self._new_ephemeral(origin.channel, origin.user, text, blocks, payload.get("thread_ts"), via)

    def _change_original(self, origin: _Origin, delete: bool, text: str, blocks: list | None) -> None:
        original = origin.message
        if original is None:
            return
        if original.get("is_ephemeral"):
            target = next((e for e in self.ephemerals if e["ts"] == original["ts"]), None)
            if target is not None and delete:
                self.ephemerals.remove(target)
            elif target is not None:
                target.update(text=text, blocks=blocks)
            return
        key = (origin.channel, original["ts"])
        if delete:
            self.messages.pop(key, None)
        elif key in self.messages:
            self._edit(self.messages[key], text, blocks if blocks is not None else [])

    async def _apply_ack(self, origin: _Origin, result: SlackHTTPResult) -> None:
        """A slash command's HTTP answer, if it carries a message, is shown like a response_url post."""
        if result.status != 200 or not result.body_text.strip() or not result.within_ack_deadline:
            return
        payload = result.json if isinstance(result.json, dict) else {"text": result.body_text}
        arrived = time.monotonic()
        try:
            self._apply_response(origin, payload, via="ack")
            response: dict = {"ok": True}
        except _ApiError as error:
            response = error.body
        await self._record(Call("ack", payload, arrived, response))

    # ------------------------------------------------------------------ sender (Slack → bot)

    def signed_headers(self, body: str | bytes, *, timestamp: int | None = None, secret: str | None = None) -> dict:
        """Headers Slack sends with a request body, signed with the v0 scheme."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(timestamp=ts, body=body)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }

    async def raw_post(self, body: bytes | str, headers: dict) -> SlackHTTPResult:
        """POST arbitrary bytes to the bot (e.g. a badly signed or replayed request)."""
        return await self._post_to_bot(body if isinstance(body, str) else body.decode(), headers)

    async def slash(
        self,
        text: str,
        *,
        command: str = "/erpgo",
        user_id: str = "U0ALICE",
        user_name: str = "alice",
        channel_id: str = "C0OPS",
        channel_name: str = "ops",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> SlackHTTPResult:
        """Send a slash command to the bot as Slack does, and show its ack like Slack would."""
        self._remember(user_id, user_name, channel_id, channel_name)
        origin = _Origin(channel_id, user_id)
        response_url = self._new_hook(origin)
        body = urlencode(
            {
                "token": self.verification_token,
                "team_id": self.team_id,
                "team_domain": self.team_domain,
                "channel_id": channel_id,
                "channel_name": channel_name,
                "user_id": user_id,
                "user_name": user_name,
                "command": command,
                "text": text,
                "api_app_id": self.app_id,
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": _trigger_id(),
            }
        )
        result = await self._post_to_bot(body, self.signed_headers(body, timestamp=timestamp, secret=secret))
        result.response_url = response_url
        await self._apply_ack(origin, result)
        return result

    async def click(
        self,
        message: dict,
        action_id: str,
        *,
        user_id: str = "U0BOB",
        user_name: str = "bob",
        channel_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> SlackHTTPResult:
        """Click the button `action_id` of `message` (as the caller last saw it) and send block_actions."""
        block, button = self._find_button(message, action_id)
        channel_id = channel_id or message.get("channel") or self._channel_of(message["ts"])
        self._remember(user_id, user_name, channel_id, None)
        response_url = self.response_url(channel=channel_id, user=user_id, message=message)
        payload = self._block_actions_payload(message, block, button, user_id, user_name, channel_id, response_url)
        body = urlencode({"payload": json.dumps(payload)})
        headers = self.signed_headers(body, timestamp=timestamp, secret=secret)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
        if retry_reason is not None:
            headers["X-Slack-Retry-Reason"] = retry_reason
        result = await self._post_to_bot(body, headers)
        result.response_url = response_url
        return result

    def _block_actions_payload(
        self, message: dict, block: dict, button: dict, user_id: str, user_name: str, channel_id: str, response_url: str
    ) -> dict:
        ephemeral = bool(message.get("is_ephemeral"))
        container = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": ephemeral,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        action = {"action_id": button["action_id"], "block_id": block["block_id"], "text": button["text"]}
        action.update({k: button[k] for k in ("value", "style") if k in button})
        action.update(type="button", action_ts=f"{time.time():.6f}")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": _trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self.channel_names.get(channel_id, channel_id.lower())},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if not ephemeral:  # Slack does not send the content of ephemeral messages back
            payload["message"] = _public(message)
        return payload

    def _find_button(self, message: dict, action_id: str) -> tuple[dict, dict]:
        for block, element in _iter_buttons(message):
            if element.get("action_id") == action_id:
                return block, element
        available = [b["action_id"] for b in self.buttons(message)]
        raise LookupError(f"no button with action_id {action_id!r} in message; buttons: {available}")

    def _channel_of(self, ts: str) -> str:
        for channel, message_ts in self.messages:
            if message_ts == ts:
                return channel
        raise LookupError(f"unknown message ts {ts}; pass channel_id")

    def _remember(self, user_id: str, user_name: str, channel_id: str, channel_name: str | None) -> None:
        self.users.setdefault(user_id, {})["name"] = user_name
        if channel_name:
            self.channel_names[channel_id] = channel_name

    async def _post_to_bot(self, body: str, headers: dict) -> SlackHTTPResult:
        if not self.bot_url:
            raise RuntimeError("LocalSlack.bot_url is not set (the bot's /slack/events URL)")
        if self._session is None:
            raise RuntimeError("LocalSlack is not started")
        started = time.monotonic()
        async with self._session.post(self.bot_url, data=body.encode(), headers=headers) as response:
            text = await response.text()
        return SlackHTTPResult(response.status, text, _maybe_json(text), time.monotonic() - started, None, body)


# ---------------------------------------------------------------------- request parsing


async def _read_args(request: web.Request) -> tuple[dict, str | None]:
    """Arguments as Slack reads them: query string plus a form or JSON body. Returns (args, error)."""
    args: dict = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return args, "invalid_json"
        if not isinstance(body, dict):
            return args, "invalid_json"
        args.update(body)
    elif request.method == "POST" and request.can_read_body:
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
    return args, None


async def _upload_content(request: web.Request) -> bytes | None:
    """The uploaded bytes: the first file part of a multipart form, else the raw body."""
    if request.content_type != "multipart/form-data":
        return await request.read()
    form = await request.post()
    for value in form.values():
        if isinstance(value, web.FileField):
            data: bytes = value.file.read()
            return data
    return None


def _as_text(content: bytes) -> str | None:
    """The content as text when it is UTF-8 without NULs (what Slack shows as a snippet), else None."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _file_object(file: dict) -> dict:
    return {k: v for k, v in file.items() if k not in _LOCAL_FILE_KEYS}


def _view_error(*messages: str) -> _ApiError:
    return _ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]})


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _required(args: dict, name: str, error: str) -> str:
    value = args.get(name)
    if not value:
        raise _ApiError(error)
    return str(value)


def _json_arg(value: Any) -> Any:
    """Form-encoded requests carry lists and objects as JSON strings; JSON requests carry them as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message_content(args: dict) -> tuple[str, list | None]:
    """Validate text/blocks like chat.postMessage does; return (text, blocks or None)."""
    text = args.get("text") or ""
    if not isinstance(text, str):
        raise _ApiError("invalid_arguments")
    blocks = None
    if "blocks" in args and args["blocks"] not in (None, ""):
        blocks = _json_arg(args["blocks"])
        if not isinstance(blocks, list):
            raise _ApiError("invalid_blocks_format")
        errors = block_errors(blocks)
        if errors:
            metadata = {"messages": [f"[ERROR] {e}" for e in errors]}
            raise _ApiError("invalid_blocks", errors=errors, response_metadata=metadata)
        blocks = _with_ids(blocks)
    if not text.strip() and not blocks and not args.get("attachments"):
        raise _ApiError("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        raise _ApiError("msg_too_long")
    return text, blocks


def _with_ids(blocks: list) -> list:
    """Slack gives every block a block_id and every interactive element an action_id it lacks."""
    blocks = copy.deepcopy(blocks)
    for block in blocks:
        block.setdefault("block_id", secrets.token_urlsafe(4))
        for element in _interactive_elements(block):
            element.setdefault("action_id", secrets.token_urlsafe(4))
    return blocks


def _interactive_elements(block: dict) -> list[dict]:
    if block.get("type") == "actions":
        return [e for e in block.get("elements") or [] if isinstance(e, dict)]
    accessory = block.get("accessory")
    return [accessory] if isinstance(accessory, dict) and accessory.get("type") not in ("image", None) else []


def _iter_buttons(message: dict):
    for block in message.get("blocks") or []:
        for element in _interactive_elements(block):
            if element.get("type") == "button":
                yield block, element


def _public(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in _LOCAL_KEYS}


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _trigger_id() -> str:
    return f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


# ---------------------------------------------------------------------- Block Kit validation


def block_errors(blocks: list, *, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """The limits Slack enforces on message (or, with max_blocks=100, view) blocks, as Slack-style
    messages with a json-pointer."""
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
            errors += _length_error(block_id, MAX_ID, f"{where}/block_id")
        checker = _BLOCK_CHECKS.get(block["type"])
        if checker is not None:
            errors += checker(block, where)
    return errors


def _length_error(value: Any, limit: int, where: str) -> list[str]:
    if isinstance(value, str) and len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _text_errors(obj: Any, limit: int, where: str, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must provide an object with type plain_text or mrkdwn [json-pointer:{where}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be a plain_text object [json-pointer:{where}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    return _length_error(text, limit, f"{where}/text")


def _check_section(block: dict, where: str) -> list[str]:
    errors: list[str] = []
    fields = block.get("fields")
    if "text" not in block and not fields:
        errors.append(f"must provide either text or fields [json-pointer:{where}]")
    if "text" in block:
        errors += _text_errors(block["text"], MAX_SECTION_TEXT, f"{where}/text")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            errors.append(f"no more than {MAX_FIELDS} items allowed [json-pointer:{where}/fields]")
        else:
            for j, field in enumerate(fields):
                errors += _text_errors(field, MAX_FIELD_TEXT, f"{where}/fields/{j}")
    if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") == "button":
        errors += _button_errors(block["accessory"], f"{where}/accessory")
    return errors


def _check_header(block: dict, where: str) -> list[str]:
    return _text_errors(block.get("text"), MAX_HEADER_TEXT, f"{where}/text", plain_only=True)


def _check_actions(block: dict, where: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
        return [f"must provide 1 to {MAX_ACTIONS_ELEMENTS} elements [json-pointer:{where}/elements]"]
    errors: list[str] = []
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is not None and action_id in action_ids:
            errors.append(f"duplicate action_id [json-pointer:{where}/elements/{j}/action_id]")
        if action_id is not None:
            action_ids.add(action_id)
        if isinstance(element, dict) and element.get("type") == "button":
            errors += _button_errors(element, f"{where}/elements/{j}")
    return errors


def _check_context(block: dict, where: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
        return [f"must provide 1 to {MAX_CONTEXT_ELEMENTS} elements [json-pointer:{where}/elements]"]
    return []


def _button_errors(button: dict, where: str) -> list[str]:
    errors = _text_errors(button.get("text"), MAX_BUTTON_TEXT, f"{where}/text", plain_only=True)
    errors += _length_error(button.get("value"), MAX_BUTTON_VALUE, f"{where}/value")
    errors += _length_error(button.get("action_id"), MAX_ID, f"{where}/action_id")
    errors += _length_error(button.get("url"), MAX_URL, f"{where}/url")
    if button.get("style") not in (None, "primary", "danger"):
        errors.append(f"must be one of primary, danger [json-pointer:{where}/style]")
    return errors


_BLOCK_CHECKS: dict[str, Callable[[dict, str], list[str]]] = {
    "section": _check_section,
    "header": _check_header,
    "actions": _check_actions,
    "context": _check_context,
}
