"""A slow-body flood: clients that open connections and trickle their requests are closed after a while
and never hold every file descriptor — /livez and a signed command are answered within 1 s while 1,100
slow connections are open against a bot limited to 1,024 open files, and the log stays quiet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.core.http import BodyRefused, ReadingGuard, read_bounded
from bot.local.slack import LocalSlack
from bot.server import ACCEPT_FAILED, GuardedSite, quiet_accept_failures
from demo.services import free_port
from tests.support import CONTRACT_ENV, eventually

ROOT = Path(__file__).resolve().parents[1]
SLOW_CONNECTIONS = 1_100
BOT_OPEN_FILES = 1_024


async def small_server(guard: ReadingGuard) -> tuple[web.AppRunner, str]:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def echo(request: web.Request) -> web.Response:
        try:
            body = await read_bounded(request, 1000, timeout=0.3)
        except BodyRefused as refused:
            return web.Response(status=refused.status, text=refused.message)
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_post("/echo", echo)
    guard.install(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    return runner, f"127.0.0.1:{site.port}"


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> float:
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(1024), within):
            pass
    return time.monotonic() - started


async def get_ok(address: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://{address}/ok") as response:
        return await response.text()


async def test_headers_and_bodies_that_take_too_long_are_cut_off():
    runner, address = await small_server(ReadingGuard(limit=50, timeout=0.5))
    host, port = address.split(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /ok HTTP/1.1\r\nHo")  # and nothing more
        assert await closed_by_server(reader, 3) < 2, "a request whose headers never end is closed"
        writer.close()

        async with aiohttp.ClientSession() as http:

            async def trickle():
                yield b"0123456789"
                await asyncio.sleep(2)
                yield b"x" * 90

            async with http.post(f"http://{address}/echo", data=trickle(), headers={"Content-Length": "100"}) as r:
                assert r.status == 408 and "did not arrive within 0.3 s" in await r.text()
        assert await get_ok(address) == "ok"
    finally:
        await runner.cleanup()


async def test_over_the_limit_the_oldest_reader_is_closed_and_a_new_request_is_answered():
    runner, address = await small_server(ReadingGuard(limit=5, timeout=30))
    host, port = address.split(":")
    try:
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(8)]
        for _reader, writer in idle:
            writer.write(b"POST /echo HTTP/1.1\r\n")
        assert await closed_by_server(idle[0][0], 3) < 2, "the oldest gave way"
        assert await get_ok(address) == "ok"
        for _reader, writer in idle:
            writer.close()
    finally:
        await runner.cleanup()


async def test_failed_accepts_are_one_log_line_per_10_s_not_one_each(capsys):
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    quiet_accept_failures(loop)
    try:
        for _ in range(1_000):
            loop.call_exception_handler({"message": ACCEPT_FAILED, "exception": OSError(24, "Too many open files")})
    finally:
        loop.set_exception_handler(previous)
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("accept_failed") == 1
    assert ACCEPT_FAILED not in logged.out + logged.err


# ---------------------------------------------------------------------- the flood, against `erpgo-bot serve`


def limit_open_files() -> None:  # in the bot's process, before it starts: as a container's default
    resource.setrlimit(resource.RLIMIT_NOFILE, (BOT_OPEN_FILES, BOT_OPEN_FILES))


@pytest.fixture
def enough_open_files():
    """This test process holds the 1,100 client sockets: raise its own limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CONNECTIONS + 1_000
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} is below the {wanted} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
async def flooded_bot(enough_open_files, tmp_path):
    slack = LocalSlack(secrets.token_hex(16))
    await slack.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)} | {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "bot.log"
    with open(log_path, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT,
            preexec_fn=limit_open_files,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    slack.bot_url = url + "/slack/events"
    try:
        await eventually(lambda: livez(url, 5), timeout=30, what="the bot answering")
        yield url, port, slack, log_path
    finally:
        proc.kill()
        await proc.wait()
        await slack.close()


async def livez(url: str, timeout: float) -> bool:
    try:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as http, http.get(url + "/livez") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def open_slow(port: int) -> asyncio.StreamWriter | None:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 4000\r\n\r\nx")
    return writer


async def test_1100_slow_connections_do_not_stop_livez_or_a_signed_command(flooded_bot):
    url, port, slack, log_path = flooded_bot
    writers = []
    for _ in range(SLOW_CONNECTIONS // 100):
        writers += await asyncio.gather(*(open_slow(port) for _ in range(100)))
    opened = [w for w in writers if w is not None]
    assert len(opened) >= SLOW_CONNECTIONS - 10
    try:
        for writer in opened:  # the trickle goes on: one more byte each
            with contextlib.suppress(ConnectionError):
                writer.write(b"x")
        started = time.monotonic()
        assert await livez(url, 1.0), "/livez answers within 1 s during the flood"
        command = await asyncio.wait_for(slack.slash("help", user_id="U0ALICE"), 1.0)
        assert command.status == 200 and "usage: `/erpgo" in str(command.json)
        assert time.monotonic() - started < 2.0
    finally:
        for writer in opened:
            writer.close()
    output = log_path.read_text(errors="replace")
    assert output.count("out of system resource") + output.count("accept_failed") <= 5, "the log stays quiet"
