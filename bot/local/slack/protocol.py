"""What the local Slack's parts share: recorded calls, Slack's error answers, and reading requests
the way Slack's Web API reads them."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ACK_DEADLINE_S = 3.0
# Error codes Slack's Web API returns with 5xx statuses.
SERVER_ERRORS = {500: "internal_error", 503: "service_unavailable", 504: "request_timeout"}
# The bot token's scopes (Slack lists them on every Web API answer; Bolt reads them after auth.test),
# and the scope each method needs: without it Slack answers missing_scope.
SCOPES = "chat:write,commands,files:write,users:read,channels:read,usergroups:read"
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
    "conversations.info": "channels:read",
}
# Keys kept on stored messages for the tests' convenience, never shown to the bot.
LOCAL_KEYS = ("channel", "history", "is_ephemeral", "source")


@dataclass
class Call:
    """One HTTP request LocalSlack answered: a Web API method, ``upload``, ``response_url`` or ``ack``."""

    method: str
    args: dict
    at: float  # time.monotonic() when the request arrived
    response: dict
    status: int = 200
    peer: tuple | None = None  # the client's address and port: which connection the call came over

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


class ApiError(Exception):
    """A Slack error answer: ``{"ok": false, "error": code, ...}``."""

    def __init__(self, error: str, status: int = 200, headers: dict | None = None, **extra: Any):
        super().__init__(error)
        self.status = status
        self.headers = headers or {}
        self.body = {"ok": False, "error": error, **extra}


@dataclass
class Origin:
    """Where a response_url came from: who ran the command, and on which message they clicked."""

    channel: str
    user: str
    message: dict | None = None


# ---------------------------------------------------------------------- request parsing


async def read_args(request: web.Request) -> tuple[dict, str | None]:
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


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def required(args: dict, name: str, error: str) -> str:
    value = args.get(name)
    if not value:
        raise ApiError(error)
    return str(value)


def json_arg(value: Any) -> Any:
    """Form-encoded requests carry lists and objects as JSON strings; JSON requests carry them as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def public(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in LOCAL_KEYS}


def maybe_json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def trigger_id() -> str:
    return f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
