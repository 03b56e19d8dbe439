"""Long-running modes: HTTP (aiohttp) and Socket Mode."""

from __future__ import annotations

import asyncio
import gc
import signal

from aiohttp import web

from bot.app import build_bolt_app, build_runtime, build_web_app
from bot.core.logs import log

SOCKET_IDENTIFY_WAIT = 2.0  # s: in Socket Mode the webhook and /healthz are served while Slack is unreachable


async def start_http(settings, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the HTTP server; returns the runner and the bound port (port 0 picks a free one)."""
    runtime = build_runtime(settings)
    await runtime.start()
    web_app = build_web_app(runtime, build_bolt_app(runtime))
    # everything built so far lives for the whole process: keep it out of the collector's scans,
    # whose pauses otherwise show up as the slowest webhook answers under load
    gc.freeze()
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)  # a TCPSite serves on one listening socket
    bound = server.sockets[0].getsockname()[1]
    return runner, bound


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings, host: str, port: int) -> int:
    runner, bound = await start_http(settings, host, port)
    log.info("listening", host=host, port=bound, routes=["POST /slack/events", "GET /healthz", "GET /metrics"])
    await wait_for_stop_signal()
    log.info("stopping")
    await runner.cleanup()  # waits for in-flight reports before closing targets
    return 0


async def start_socket_mode(settings, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Socket Mode with its HTTP side: the webhook, /healthz and /metrics on `port` (everything but
    /slack/events), serving at once, while the link to Slack is (re)established with backoff."""
    from bot.core.errors import Backoff
    from bot.settings import ConfigError
    from bot.slack.socket import SocketLink

    app_token = settings.secret("slack_app_token")
    if not app_token:
        raise ConfigError("configuration error: SLACK_APP_TOKEN is required in Socket Mode")
    runtime = build_runtime(settings)
    await runtime.start(identify_wait=SOCKET_IDENTIFY_WAIT)  # the HTTP side must not wait long for Slack
    bolt = build_bolt_app(runtime, socket_mode=True)
    runtime.slack_link = SocketLink(bolt, app_token, backoff=Backoff(first=1.0, cap=settings.erpgo_slack_max_backoff))
    web_app = build_web_app(runtime, bolt, slack_events=False)
    link = runtime.slack_link

    async def close_link(_app: web.Application) -> None:
        await link.close()

    web_app.on_shutdown.append(close_link)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    link.start()
    return runner, server.sockets[0].getsockname()[1]


async def socket_mode(settings, host: str = "0.0.0.0", port: int | None = None) -> int:
    runner, bound = await start_socket_mode(settings, host, port or settings.port)
    log.info("listening", mode="socket", host=host, port=bound, routes=["GET /healthz", "GET /metrics"])
    await wait_for_stop_signal()
    log.info("stopping")
    await runner.cleanup()
    return 0
