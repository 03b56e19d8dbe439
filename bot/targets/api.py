"""The ERPGo HTTP API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class HttpResult:
    status: int
    text: str
    json: Any | None  # None when the body is not JSON
    elapsed_ms: float


class ErpgoApi:
    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def request(
        self, method: str, path: str, *, json_body: Any = None, headers: dict | None = None
    ) -> HttpResult:
        started = time.perf_counter()
        async with self._client().request(method, self.base_url + path, json=json_body, headers=headers) as response:
            text = await response.text(errors="replace")
        elapsed = (time.perf_counter() - started) * 1000
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return HttpResult(response.status, text, body, elapsed)

    async def get(self, path: str) -> HttpResult:
        return await self.request("GET", path)

    async def get_bytes(self, path: str, *, timeout: float, limit: int) -> tuple[int, bytes]:
        """(status, body) of a GET that may take longer than the checks' timeout (a CPU profile samples for
        its seconds) and whose body is binary; at most `limit` bytes are read."""
        async with self._client().get(self.base_url + path, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status, await response.content.read(limit)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
