"""Redis via redis.asyncio, with connect and socket timeouts."""

from __future__ import annotations

import redis.asyncio as aioredis


class Redis:
    def __init__(self, url: str, timeout: float):
        self.client = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False, decode_responses=True
        )

    async def close(self) -> None:
        await self.client.aclose()
