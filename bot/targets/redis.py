"""Redis via redis.asyncio, with connect and socket timeouts."""

from __future__ import annotations


class Redis:
    def __init__(self, url: str, timeout: float):
        from redis.asyncio import from_url  # redis-py costs ~8 MB: loaded only when ERPGO_REDIS_URL is set

        self.client = from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False, decode_responses=True
        )

    async def close(self) -> None:
        await self.client.aclose()
