"""The door of POST /slack/events: nothing reaches Bolt that Slack did not sign and that Bolt cannot parse.

Bolt parses the body (and builds its context from it) before it checks the signature, so an unsigned
`payload=[]` or a timestamp header of `abc` became an HTTP 500 with an error line per request. Here,
in this order, on the raw bytes:

1. the body is at most MAX_BODY bytes (413) and decodes as its Content-Encoding says (400);
2. `X-Slack-Request-Timestamp` is 1–12 ASCII digits within 5 minutes of now, `X-Slack-Signature`
   is `v0=` and 64 hex digits, and the HMAC-SHA256 of the raw bytes matches (401 otherwise). This is
   slack_sdk's SignatureVerifier scheme, computed on bytes: SignatureVerifier decodes the body as
   UTF-8 first and raises on a body that is not;
3. only then is the body parsed, the way Bolt will parse it, and its envelope checked for the
   shapes Bolt reads (400 when it is not UTF-8, not a form or a JSON object, or mis-shaped).

Refusals are answered quietly: one rate-limited warning (at most every 10 s, with a count).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

from bot.core.http import BodyRefused, read_bounded
from bot.core.logs import RateLimitedWarning

MAX_BODY = 1024 * 1024  # a block_actions payload carries the clicked message: up to 50 blocks of 3,000 characters
MAX_SKEW_S = 300  # Slack's own replay window
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")

# Where Bolt looks in a body when it builds a request's context (slack_bolt.request.internals), and
# what it expects there: an id-ish field is a string or an object with string ids; the others are
# objects, lists of objects or strings. Anything else made Bolt raise while building the request.
ID_FIELDS = ("team", "user", "channel", "enterprise")
ID_KEYS = ("id", "team_id", "enterprise_id")
OBJECT_FIELDS = (
    *("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data", "container"),
    "state",
)
LIST_FIELDS = ("actions", "authorizations", "response_urls")
TEXT_FIELDS = (
    *("type", "team_id", "user_id", "channel_id", "enterprise_id", "thread_ts", "response_url", "trigger_id"),
    *("user_team", "context_team_id", "context_enterprise_id", "function_execution_id", "bot_access_token"),
    *("api_app_id", "callback_id", "command", "token", "app_installed_team_id"),
)
NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "view", "user", "container")
MAX_DEPTH = 3
UNDECODABLE = "undecodable body"


class Refusal(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Guard:
    def __init__(self, signing_secret: str):
        self.secret = signing_secret.encode("utf-8")
        self.rejected = RateLimitedWarning("slack_requests_rejected")

    async def admit(self, request: web.Request) -> AsyncBoltRequest | web.Response:
        """The request as Bolt takes it, or the answer that refuses it."""
        try:
            raw = await self._signed_body(request)
            return self._bolt_request(raw, request)
        except Refusal as refusal:
            self.rejected(refusal.reason, status=refusal.status)
            response = web.json_response({"error": refusal.reason}, status=refusal.status)
            if refusal.reason == UNDECODABLE:
                response.force_close()  # the connection's framing is no longer trusted
            return response

    async def _signed_body(self, request: web.Request) -> bytes:
        try:
            raw = await read_bounded(request, MAX_BODY)
        except BodyRefused as exc:
            raise Refusal(exc.status, "body too large" if exc.status == 413 else UNDECODABLE) from None
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not TIMESTAMP.fullmatch(timestamp) or not SIGNATURE.fullmatch(signature):
            raise Refusal(401, "missing or malformed signature headers")
        if abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            raise Refusal(401, "stale timestamp")
        if not hmac.compare_digest(self.signature(timestamp, raw), signature):
            raise Refusal(401, "bad signature")
        return raw

    def signature(self, timestamp: str, raw: bytes) -> str:
        """Slack's v0 signature of the raw bytes (SignatureVerifier's, without its UTF-8 decoding first)."""
        base = b"v0:" + timestamp.encode("ascii") + b":" + raw
        return "v0=" + hmac.new(self.secret, base, hashlib.sha256).hexdigest()

    def _bolt_request(self, raw: bytes, request: web.Request) -> AsyncBoltRequest:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "body is not UTF-8") from None
        # exactly as Bolt will parse it (slack_bolt.request.internals)
        content_type = request.headers.get("Content-Type", "").split(";")[0] or None
        try:
            body = parse_body(text, content_type)
        except (ValueError, RecursionError):
            raise Refusal(400, "malformed body") from None
        if not isinstance(body, dict):
            raise Refusal(400, "the body is not an object")
        problem = envelope_problem(body)
        if problem is not None:
            raise Refusal(400, problem)
        try:
            return AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
        except Exception:  # whatever else Bolt cannot build a request from
            raise Refusal(400, "malformed body") from None


def envelope_problem(body: dict[str, Any], depth: int = 0) -> str | None:
    """What in the body's envelope Bolt would trip over, or None."""
    for name in ID_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str | dict):
            return f"`{name}` is neither a string nor an object"
        if isinstance(value, dict) and any(not isinstance(value.get(key), str | None) for key in ID_KEYS):
            return f"`{name}` has an id that is not a string"
    for name in OBJECT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"`{name}` is not an object"
    for name in LIST_FIELDS:
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
            return f"`{name}` is not a list of objects"
    for name in TEXT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"`{name}` is not a string"
    if depth == 0 and body.get("type") == "block_actions" and "actions" in body:
        problem = actions_problem(body["actions"])
        if problem is not None:
            return problem
    if depth >= MAX_DEPTH:
        return None
    nested = [body[name] for name in NESTED if isinstance(body.get(name), dict)]
    nested += [items[0] for items in (body.get("authorizations"), body.get("response_urls")) if items]
    for inner in nested:
        problem = envelope_problem(inner, depth + 1)
        if problem is not None:
            return problem
    return None


def actions_problem(actions: list[dict[str, Any]]) -> str | None:
    if not actions:
        return "`actions` is empty"
    for action in actions:
        if not isinstance(action.get("action_id"), str):
            return "an action has no action_id"
        if any(not isinstance(action.get(key), str | None) for key in ("block_id", "value", "type")):
            return "an action's block_id, value or type is not a string"
    return None
