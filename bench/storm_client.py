"""The alert storm's sender, as a process of its own: it plays Alertmanager.

Alertmanager is another process (written in Go) whose HTTP client costs little per notification. Run
inside the bench's event loop with aiohttp's client, the sender used to cost about as much CPU per
request as the bot spent answering it, and its busy loop delayed what the same loop measured: the
local Slack's timestamps of `/erpgo health` reports and the webhook latencies themselves. So the
storm is sent from this separate process by a keep-alive HTTP/1.1 client over plain asyncio streams
(requests encoded once, answers read by Content-Length), and its figures are written as JSON.

    python bench/storm_client.py URL BODIES CONCURRENCY      (token in STORM_TOKEN)

BODIES is a file of (body, alerts carried) pairs, pickled. A 5xx is retried, as Alertmanager does,
a bounded number of times; a 4xx is final. Prints {"latencies": [...], "accepted": N, "failed": N,
"elapsed": S} on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sys
import time
from urllib.parse import urlsplit

RETRIES = 5
TIMEOUT_S = 30.0


class Connection:
    """One keep-alive HTTP/1.1 connection to the bot."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        """Send one request; the answer's status, or 0 when the connection failed."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(request)
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
            status, length, close = parse_head(head)
            await self.reader.readexactly(length)
            if close:
                self.close()
            return status
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, whether the server closes) of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    return status, length, close


def encode_request(url: str, token: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nUser-Agent: Alertmanager/storm\r\n\r\n"
    )
    return head.encode() + body


async def post_all(url: str, token: str, bodies: list[tuple[bytes, int]], concurrency: int) -> dict:
    """POST every body with `concurrency` requests in flight; the figures alert_storm prints."""
    parts = urlsplit(url)
    requests = [(encode_request(url, token, body), alerts) for body, alerts in bodies]
    queue = iter(requests)
    latencies: list[float] = []
    outcome = {"accepted": 0, "failed": 0}

    async def worker() -> None:
        connection = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            for request, alerts in queue:
                status = 0
                for attempt in range(RETRIES):
                    started = time.perf_counter()
                    status = await connection.post(request)
                    latencies.append(time.perf_counter() - started)
                    if 200 <= status < 300 or 400 <= status < 500:
                        break
                    await asyncio.sleep(0.2 * (attempt + 1))
                if 200 <= status < 300:
                    outcome["accepted"] += alerts
                else:
                    outcome["failed"] += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {**outcome, "latencies": latencies, "elapsed": time.perf_counter() - started}


def main() -> int:
    url, bodies_file, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(bodies_file, "rb") as file:
        bodies = pickle.load(file)
    figures = asyncio.run(post_all(url, os.environ["STORM_TOKEN"], bodies, concurrency))
    json.dump(figures, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
