"""Reading a request body that nobody vouches for: bounded, and refused cleanly when it lies.

aiohttp decodes `Content-Encoding: gzip/deflate` itself while the body is read; a body that is not
what its header says surfaces as RequestPayloadError mid-read, and, unless the stream is marked
finished, once more when aiohttp drains the rest (logged as an unhandled exception).
"""

from __future__ import annotations

from aiohttp import web

CHUNK = 256 * 1024


class BodyRefused(Exception):
    """The body is not read: `status` is the HTTP answer (400, 413), the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The (decoded) body; BodyRefused(413) over `limit` bytes, BodyRefused(400) when it does not decode."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRefused(413, f"body over {limit:,} bytes")
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
