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
from datetime import UTC, datetime
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.core.errors import Backoff, describe_error
from bot.core.logs import log

CHECK_EVERY_S = 0.5  # how soon a dropped connection is noticed
CONNECT_TIMEOUT_S = 15.0


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
        ping_interval: float = 10.0,
    ):
        quiet = logging.getLogger("erpgo.socket_mode")  # the supervisor logs failures once, structured
        quiet.setLevel(logging.CRITICAL)
        self.handler = AsyncSocketModeHandler(bolt, app_token, logger=quiet, ping_interval=ping_interval)
        client = self.handler.client
        client.auto_reconnect_enabled = client.default_auto_reconnect_enabled = False  # the supervisor does it
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
