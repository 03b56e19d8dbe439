"""Socket Mode kept connected: the bot's link to Slack when Slack cannot reach the bot over HTTP.

slack_sdk's client retries a failed connection forever at a fixed pace and reconnects on its own;
here one supervisor does it instead, with the bot's backoff, so that the rest of the process (the
Alertmanager webhook, /healthz, /metrics) keeps serving while Slack cannot be reached, and /healthz
can say what the link is doing: connected or not, since when, the last error, the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.core.errors import Backoff, describe_error
from bot.core.logs import RateLimitedWarning, log
from bot.core.tasks import PeopleFirst

CHECK_EVERY_S = 0.5  # how soon a dropped connection is noticed
CONNECT_TIMEOUT_S = 15.0
SEEN_ENVELOPES = 2000  # envelope ids remembered: a redelivery of one of them is acknowledged, not run again


class SlackLink:
    """How Slack reaches the bot. Over HTTP (this class) Slack's events arrive at /slack/events and
    there is no connection of the bot's to report; a SocketLink reports its own."""

    async def status(self) -> dict[str, Any] | None:
        return None


HTTP_EVENTS = SlackLink()


class SocketLink(SlackLink):
    """A Socket Mode connection for `bolt`, re-established with backoff whenever it is down."""

    def __init__(
        self,
        bolt: AsyncApp,
        app_token: str,
        *,
        backoff: Backoff = Backoff(first=1.0, cap=30.0),
        people: PeopleFirst,
        ping_interval: float = 10.0,
    ):
        quiet = logging.getLogger("erpgo.socket_mode")  # the supervisor logs failures once, structured
        quiet.setLevel(logging.CRITICAL)
        self.handler = AsyncSocketModeHandler(bolt, app_token, logger=quiet, ping_interval=ping_interval)
        client = self.handler.client
        client.auto_reconnect_enabled = client.default_auto_reconnect_enabled = False  # the supervisor does it
        # envelopes are handled here instead of by Bolt's listener: once each, and every one acknowledged
        client.socket_mode_request_listeners.clear()
        client.message_listeners.append(self._on_envelope)
        self.envelopes = Envelopes(bolt, people)
        self.backoff = backoff
        self.connected = False
        self.since: datetime | None = None  # when it last connected or went down
        self.failures = 0
        self.last_error: str | None = None
        self.next_attempt_at: float | None = None  # time.monotonic()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="slack-socket")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.handler.close_async()

    async def status(self) -> dict[str, Any]:
        """What /healthz shows about the link to Slack, as it is this moment."""
        if self.connected and not await self.handler.client.is_connected():
            self._changed(False)  # dropped since the supervisor last looked
        body: dict[str, Any] = {"mode": "socket", "connected": self.connected}
        if self.since is not None:
            body["since"] = self.since.isoformat(timespec="seconds")
        if not self.connected:
            body["failures"] = self.failures
            if self.last_error:
                body["error"] = self.last_error
            if self.next_attempt_at is not None:
                body["retry_in_s"] = round(max(0.0, self.next_attempt_at - time.monotonic()), 1)
        return body

    async def _supervise(self) -> None:
        while True:
            if await self.handler.client.is_connected():
                self._changed(True)
                await asyncio.sleep(CHECK_EVERY_S)
                continue
            self._changed(False)
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = describe_error(exc)
                delay = self.backoff.delay(self.failures - 1)
                self.next_attempt_at = time.monotonic() + delay
                if self.failures == 1 or self.failures % 10 == 0:
                    log.warning(
                        "slack_socket_unavailable", error=self.last_error, failures=self.failures, retry_in_s=delay
                    )
                await asyncio.sleep(delay)  # a backoff between attempts, not a synchronisation
                continue
            self._changed(True)

    async def _connect(self) -> None:
        client = self.handler.client
        client.wss_uri = await asyncio.wait_for(client.issue_new_wss_url(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S)
        if not await client.is_connected():
            raise ConnectionError("the Socket Mode connection closed as soon as it opened")

    async def _on_envelope(self, client: AsyncBaseSocketModeClient, message: dict, _raw: str | None) -> None:
        await self.envelopes.handle(client, message)

    def _changed(self, connected: bool) -> None:
        if connected == self.connected and self.since is not None:
            return
        first = self.since is None
        self.connected = connected
        self.since = datetime.now(UTC)
        if first and not connected:
            return  # not connected yet: the first attempt follows
        if connected:
            log.info("slack_socket_connected", after_failures=self.failures)
            self.failures, self.last_error, self.next_attempt_at = 0, None, None
        else:
            log.warning("slack_socket_disconnected")


class Envelopes:
    """What Slack sends over the socket, each envelope run once: a redelivery (the same envelope_id,
    retry_attempt 1, …) is acknowledged and not run again, and an envelope Bolt cannot take is
    acknowledged too (unacknowledged, Slack would send it again and again)."""

    def __init__(self, bolt: AsyncApp, people: PeopleFirst):
        self.bolt = bolt
        self.people = people  # what a person asks goes before alert notifications
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.refused = RateLimitedWarning("slack_envelopes_refused")

    async def handle(self, client: AsyncBaseSocketModeClient, message: dict) -> None:
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            return  # hello, disconnect: nothing to acknowledge
        if self._seen_before(envelope_id):
            log.info("slack_envelope_redelivered", retry_attempt=str(message.get("retry_attempt"))[:10])
            await acknowledge(client, envelope_id)
            return
        request = well_formed(message)
        if request is None:
            self.refused("malformed envelope")
            await acknowledge(client, envelope_id)
            return
        started = time.time()
        try:
            with self.people.serving():
                response = await run_async_bolt_app(self.bolt, request)
        except Exception as exc:  # Bolt could not take it: acknowledged all the same, never redelivered
            self.refused("not dispatchable", error=describe_error(exc))
            await acknowledge(client, envelope_id)
            return
        if response.status != 200:  # nothing listens for it (Bolt's 404): acknowledged, not redelivered
            await acknowledge(client, envelope_id)
            return
        await send_async_response(client, request, response, started)

    def _seen_before(self, envelope_id: str) -> bool:
        if envelope_id in self.seen:
            return True
        self.seen[envelope_id] = None
        if len(self.seen) > SEEN_ENVELOPES:
            self.seen.popitem(last=False)
        return False


def well_formed(message: dict) -> SocketModeRequest | None:
    """The envelope as a request Bolt takes: a string type and an object payload; None otherwise."""
    if not isinstance(message.get("type"), str) or not isinstance(message.get("payload"), dict):
        return None
    try:
        return SocketModeRequest.from_dict(message)
    except (TypeError, ValueError):
        return None


async def acknowledge(client: AsyncBaseSocketModeClient, envelope_id: str) -> None:
    try:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))
    except Exception as exc:  # the socket went down meanwhile: Slack redelivers, and it is acknowledged then
        log.info("slack_envelope_not_acknowledged", error=describe_error(exc))
