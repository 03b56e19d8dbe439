"""Socket Mode: apps.connections.open (with the app-level token) hands out a WebSocket URL on this
server; Slack's side of the socket says hello, sends envelopes (slash_commands, interactive,
events_api) and waits for the bot to acknowledge each by its envelope_id. drop_sockets() cuts the
connections the way a network failure would."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from bot.local.slack.protocol import ACK_DEADLINE_S, ApiError, SlackHTTPResult
from bot.local.slack.views import Views


class SocketMode(Views):
    """Slack's side of Socket Mode; mixed into LocalSlack."""

    app_token: str
    _tickets: set[str]
    _sockets: list[web.WebSocketResponse]
    _acks: dict[str, asyncio.Future]

    def _apps_connections_open(self, args: dict) -> dict:
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/link/?ticket={ticket}&app_id={self.app_id}"}

    @property
    def sockets(self) -> int:
        """Socket Mode connections open now."""
        return sum(1 for ws in self._sockets if not ws.closed)

    async def wait_socket(self, timeout: float = 10.0) -> None:
        """Until a bot holds a Socket Mode connection."""
        deadline = time.monotonic() + timeout
        while self.sockets == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Socket Mode connection within {timeout}s")
            await asyncio.sleep(0.02)

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection, as a broken network would."""
        for ws in list(self._sockets):
            await ws.close(code=1006)
        self._sockets.clear()

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": self.sockets,
                    "debug_info": {"host": "local", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                ack = json.loads(message.data)
            except ValueError:
                continue
            future = self._acks.pop(str(ack.get("envelope_id", "")), None) if isinstance(ack, dict) else None
            if future is not None and not future.done():
                future.set_result(ack)
        if ws in self._sockets:
            self._sockets.remove(ws)
        return ws

    async def _send_envelope(
        self, kind: str, payload: dict, accepts_response: bool, envelope_id: str | None = None, retry_attempt: int = 0
    ) -> SlackHTTPResult:
        envelope = {
            "envelope_id": envelope_id or secrets.token_hex(8),
            "type": kind,
            "accepts_response_payload": accepts_response,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
            "payload": payload,
        }
        return await self.socket_send(envelope)

    async def socket_send(self, envelope: dict[str, Any], timeout: float = ACK_DEADLINE_S * 2) -> SlackHTTPResult:
        """Send `envelope` as it is (a redelivery, a malformed one) and wait for the bot to acknowledge
        its envelope_id; status 0 when no acknowledgement came within `timeout`."""
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise RuntimeError("no Socket Mode connection: the bot is not connected")
        envelope_id = str(envelope.get("envelope_id", ""))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        started = time.monotonic()
        await live[0].send_str(json.dumps(envelope))
        try:
            ack = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._acks.pop(envelope_id, None)
            return SlackHTTPResult(0, "", None, time.monotonic() - started)
        answer = ack.get("payload")
        text = json.dumps(answer) if answer else ""
        return SlackHTTPResult(200, text, answer or None, time.monotonic() - started)

    async def socket_slash(
        self,
        text: str,
        *,
        command: str = "/erpgo",
        user_id: str = "U0ALICE",
        user_name: str = "alice",
        channel_id: str = "C0OPS",
        channel_name: str = "ops",
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> SlackHTTPResult:
        """A slash command delivered over Socket Mode; its acknowledgement is shown like an HTTP ack.
        The same `envelope_id` with `retry_attempt` 1 is Slack redelivering it."""
        origin, fields = self._slash_fields(text, command, user_id, user_name, channel_id, channel_name)
        result = await self._send_envelope("slash_commands", fields, True, envelope_id, retry_attempt)
        result.response_url = fields["response_url"]
        await self._apply_ack(origin, result)
        return result

    async def socket_click(
        self, message: dict, action_id: str, *, user_id: str = "U0BOB", user_name: str = "bob"
    ) -> SlackHTTPResult:
        payload = self._click_payload(message, action_id, user_id, user_name, None)
        result = await self._send_envelope("interactive", payload, accepts_response=False)
        result.response_url = payload["response_url"]
        return result

    async def socket_event(self, event: dict[str, Any]) -> SlackHTTPResult:
        return await self._send_envelope("events_api", self.event_callback(event), accepts_response=False)

    def _check_token(self, method: str, token: str | None) -> None:
        """Bot methods take the bot token; apps.connections.open only the app-level token."""
        if not token:
            raise ApiError("not_authed")
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return
        if token in (self.app_token, self.bot_token):
            raise ApiError("not_allowed_token_type")
        raise ApiError("invalid_auth")
