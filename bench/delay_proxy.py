"""A TCP or unix-socket proxy that delays a round's first exchange by a known amount (bench/health_latency)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class DelayProxy:
    """Pipes bytes between clients and one upstream; arm(delay) makes the next exchange wait.

    The gate opens `delay` seconds after the first client bytes (or connection) that arrive once
    armed; anything else sent while it is closed waits for the same moment. Answers from the
    upstream are never delayed.
    """

    def __init__(self, name: str, open_upstream: Callable[[], Awaitable[tuple]]):
        self.name = name
        self._open_upstream = open_upstream
        self._server: asyncio.AbstractServer | None = None
        self._armed: float | None = None
        self._opens_at: float | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.delayed = 0  # exchanges held by the gate (for the bench's own sanity check)

    async def start_tcp(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0)
        return self._server.sockets[0].getsockname()[1]

    async def start_unix(self, path: str) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path)

    def arm(self, delay_s: float) -> None:
        self._armed = delay_s if delay_s > 0 else None
        self._opens_at = None

    async def _gate(self) -> None:
        if self._armed is None:
            return
        loop = asyncio.get_running_loop()
        if self._opens_at is None:
            self._opens_at = loop.time() + self._armed
            self.delayed += 1
        wait = self._opens_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            self._armed = None  # this round's delay is spent

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        upstream_writer = None
        try:
            await self._gate()  # the connection setup
            upstream_reader, upstream_writer = await self._open_upstream()
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer, gated=True),
                self._pipe(upstream_reader, client_writer, gated=False),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool) -> None:
        try:
            while data := await reader.read(65536):
                if gated:
                    await self._gate()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()  # one side hung up: so does the other

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


def tcp_upstream(port: int):
    return lambda: asyncio.open_connection("127.0.0.1", port)


def unix_upstream(path: str):
    return lambda: asyncio.open_unix_connection(path)
