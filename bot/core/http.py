"""Reading requests that nobody vouches for: bounded in size and in time, refused cleanly when they lie.

aiohttp decodes `Content-Encoding: gzip/deflate` itself while the body is read; a body that is not
what its header says surfaces as RequestPayloadError mid-read, and, unless the stream is marked
finished, once more when aiohttp drains the rest (logged as an unhandled exception).

aiohttp bounds neither how long a client may take to send a request's headers and body nor how many
clients may be doing so: a thousand connections trickling a byte every few seconds held every file
descriptor. ReadingGuard watches the connections of a listener: a connection is *reading* from the
moment it opens (or its previous response started) until its handler has the whole request — the
route starts (GET) or read_bounded() has the body (POST). Reading lasts READ_TIMEOUT seconds at most,
and at most `limit` connections read at once: past that the oldest reader is closed, so a new
connection (a health probe, Slack with a signed request) always gets in and is answered.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from bot.core.logs import RateLimitedWarning

CHUNK = 256 * 1024
BODY_TIMEOUT = 10.0  # s a request's body may take to arrive, whatever its size
READ_TIMEOUT = 15.0  # s a connection may spend sending a request (headers and body) before it is closed
MIN_READERS, MAX_READERS = 64, 4096  # bounds of the readers allowed at once (half the open-file limit)
BODILESS = ("GET", "HEAD", "OPTIONS")


class BodyRefused(Exception):
    """The body is not read: `status` is the HTTP answer (400, 408, 413), the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def read_bounded(request: web.Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The (decoded) body; BodyRefused(413) over `limit` bytes, 408 when it takes over `timeout` seconds
    to arrive, 400 when it does not decode or the client went away."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRefused(413, f"body over {limit:,} bytes")
    try:
        async with asyncio.timeout(timeout):
            body = await _read_chunks(request, limit)
    except TimeoutError:
        request.content.feed_eof()
        raise BodyRefused(408, f"the body did not arrive within {timeout:g} s") from None
    except ConnectionError:
        raise BodyRefused(400, "the connection closed before the body arrived") from None
    guard = request.app.get(READING)
    if guard is not None:
        guard.settled(request.transport)
    return body


async def _read_chunks(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.read(CHUNK)
        except web.RequestPayloadError:
            request.content.feed_eof()  # nothing more to read: aiohttp must not drain (and log) it again
            encoding = request.headers.get("Content-Encoding", "identity")[:20]
            raise BodyRefused(400, f"the body does not decode as its Content-Encoding ({encoding}) says") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"body over {limit:,} bytes")
        chunks.append(chunk)


def readers_allowed() -> int:
    """Half the process's open-file limit (RLIMIT_NOFILE), within [MIN_READERS, MAX_READERS]: the other
    half stays for the connections being answered, the databases, Docker and Slack."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_READERS
    return max(MIN_READERS, min(MAX_READERS, soft // 2))


class ReadingGuard:
    """The connections of a listener still sending their request: each for `timeout` seconds at most,
    `limit` at once at most (over that the oldest is closed)."""

    def __init__(self, limit: int | None = None, timeout: float = READ_TIMEOUT):
        self.limit = limit or readers_allowed()
        self.timeout = timeout
        self.reading: OrderedDict[asyncio.Transport, asyncio.TimerHandle] = OrderedDict()
        self.closed = RateLimitedWarning("slow_connections_closed")

    def protocols(self, make: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_server: `make`'s protocols, watched by this guard."""
        return lambda: Watched(make(), self)

    def reading_starts(self, transport: asyncio.Transport | None) -> None:
        if transport is None or transport.is_closing():
            return
        self.settled(transport)
        loop = asyncio.get_running_loop()
        self.reading[transport] = loop.call_later(self.timeout, self._close, transport, "too slow")
        if len(self.reading) > self.limit:
            self._close(next(iter(self.reading)), "too many reading at once")

    def settled(self, transport: asyncio.Transport | None) -> None:
        """The connection's request is all there: it no longer counts, nor runs out of time."""
        deadline = self.reading.pop(transport, None) if transport is not None else None
        if deadline is not None:
            deadline.cancel()

    def _close(self, transport: asyncio.Transport, why: str) -> None:
        self.settled(transport)
        self.closed(why, reading=len(self.reading), limit=self.limit)
        transport.abort()

    def install(self, app: web.Application) -> None:
        """GET routes settle when they start; every response starts the wait for the next request."""
        app[READING] = self
        app.middlewares.append(self._bodiless_settle)
        app.on_response_prepare.append(self._response_started)

    @web.middleware
    async def _bodiless_settle(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method in BODILESS:
            self.settled(request.transport)
        return await handler(request)

    async def _response_started(self, request: web.Request, _response: web.StreamResponse) -> None:
        self.reading_starts(request.transport)  # a kept-alive connection reads its next request from now


READING = web.AppKey("reading_guard", ReadingGuard)


class Watched(asyncio.Protocol):
    """An aiohttp request handler (the protocol) whose connection the guard watches."""

    def __init__(self, inner: Any, guard: ReadingGuard):
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's
        self.guard.reading_starts(self.transport)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.settled(self.transport)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
