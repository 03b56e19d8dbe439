"""PostgreSQL: a fresh connection per use, so a restarted or dead server never leaves stale state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg


class Postgres:
    def __init__(self, dsn: str, timeout: float):
        self.dsn = dsn
        self.timeout = timeout

    @property
    def database(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/") or "postgres"

    @asynccontextmanager
    async def connect(self, application_name: str = "erpgo-chatops") -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.timeout,
            command_timeout=self.timeout,
            server_settings={"application_name": application_name},
        )
        try:
            yield conn
        finally:
            await conn.close(timeout=self.timeout)

    async def close(self) -> None:
        return None
