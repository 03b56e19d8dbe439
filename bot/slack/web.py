"""The Web API client the bot's Slack calls go through: slack_sdk's, keeping its connections.

Given no session, slack_sdk's AsyncWebClient opens one for every call and closes it after: a new TCP
connection and TLS handshake per message, a few milliseconds of CPU each (and a round trip more to
Slack) in a storm that posts hundreds. This one opens a session at its first call and keeps it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse


class PooledWebClient(AsyncWebClient):
    """An AsyncWebClient whose calls share one connection pool, made in the event loop that uses it."""

    _loop: asyncio.AbstractEventLoop | None = None

    async def api_call(self, *args: Any, **kwargs: Any) -> AsyncSlackResponse:
        self._pool()
        return await super().api_call(*args, **kwargs)

    def _pool(self) -> None:
        loop = asyncio.get_running_loop()
        if self.session is None or self.session.closed or self._loop is not loop:
            # the session's timeout is the client's: slack_sdk applies its own only to sessions it makes
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._loop = loop

    async def close(self) -> None:
        """Close the connections (a later call opens new ones)."""
        if self.session is not None and not self.session.closed and self._loop is asyncio.get_running_loop():
            await self.session.close()
        self.session = None


async def close_connections(client: AsyncWebClient | None) -> None:
    """Close what a client keeps open; a client that keeps nothing (slack_sdk's own) has nothing to close."""
    if isinstance(client, PooledWebClient):
        await client.close()
