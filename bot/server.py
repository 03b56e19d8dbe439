"""Long-running modes: HTTP (aiohttp) and Socket Mode, and how they stop.

On SIGTERM (or SIGINT) the bot drains: it stops taking new work — webhooks get 503 so Alertmanager
retries elsewhere or after the restart, /healthz says "stopping", new commands and clicks are told to
try again — while running work finishes for up to ERPGO_SHUTDOWN_GRACE seconds. What is still running
then is cancelled and records what it was doing (a triage gives its claim back, a report says it was
interrupted, an approval being executed is recorded as interrupted). Then the outbox, targets and the
bot's database are closed and the process exits 0. A second signal during the drain skips the rest of
the grace.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import Any

from aiohttp import web

from bot.app import RUNTIME, build_bolt_app, build_runtime, build_web_app
from bot.core.http import ReadingGuard
from bot.core.logs import RateLimitedWarning, log
from bot.runtime import Runtime
from bot.settings import Settings

SOCKET_IDENTIFY_WAIT = 2.0  # s: in Socket Mode the webhook and /healthz are served while Slack is unreachable
BACKLOG = 512  # connections the kernel holds for accept() while the bot is busy
ACCEPT_FAILED = "socket.accept() out of system resource"


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections a ReadingGuard watches (bot/core/http.py): slow or too many
    clients still sending their request are closed instead of holding every file descriptor."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ReadingGuard):
        super().__init__(runner, backlog=BACKLOG)
        self.host, self.requested_port, self.guard = host, port, guard
        self.port = port

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        handlers = self._runner.server
        assert handlers is not None  # the runner is set up
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            self.guard.protocols(handlers), self.host, self.requested_port, backlog=BACKLOG, reuse_address=True
        )
        self._server = server
        self.port = server.sockets[0].getsockname()[1]


async def listen(web_app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `web_app` on host:port behind a ReadingGuard; the runner and the bound port."""
    guard = ReadingGuard()
    guard.install(web_app)
    quiet_accept_failures(asyncio.get_running_loop())
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = GuardedSite(runner, host, port, guard)
    await site.start()
    log.info("reading_guard", readers_allowed=guard.limit, read_timeout_s=guard.timeout)
    return runner, site.port


def quiet_accept_failures(loop: asyncio.AbstractEventLoop) -> None:
    """Out of file descriptors, asyncio reports every failed accept(): one line per 10 s instead."""
    failed = RateLimitedWarning("accept_failed", every=10.0)
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_FAILED):
            failed(type(context.get("exception")).__name__, hint="the process is out of file descriptors")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


async def start_http(settings: Settings, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the HTTP server; returns the runner and the bound port (port 0 picks a free one)."""
    runtime = build_runtime(settings)
    bolt = build_bolt_app(runtime)  # a missing signing secret is told before Slack is asked anything
    await runtime.start()
    web_app = build_web_app(runtime, bolt)
    # everything built so far lives for the whole process: keep it out of the collector's scans,
    # whose pauses otherwise show up as the slowest webhook answers under load
    gc.freeze()
    return await listen(web_app, host, port)


class StopSignals:
    """SIGTERM/SIGINT as events: the first asks for a drain, a second for hurrying it."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.again = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.first.is_set():
            self.again.set()
        self.first.set()
        log.info("stop_signal", signal=sig.name)

    def restore(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def drain(runtime: Runtime, signals: StopSignals) -> None:
    """Drain the runtime within its grace, or at once on a second signal."""
    draining = asyncio.ensure_future(runtime.drain())
    hurry = asyncio.ensure_future(signals.again.wait())
    await asyncio.wait([draining, hurry], return_when=asyncio.FIRST_COMPLETED)
    if not draining.done():
        log.warning("stop_hurried", hint="second signal: the grace is cut short")
        interrupted = await runtime.tasks.cancel_all(timeout=2)
        log.warning("work_interrupted", tasks=interrupted)
    await draining
    hurry.cancel()


async def serve(settings: Settings, host: str, port: int) -> int:
    signals = StopSignals()
    runner, bound = await start_http(settings, host, port)
    runtime = runner.app[RUNTIME]
    log.info(
        "listening", host=host, port=bound, routes=["POST /slack/events", "GET /healthz", "GET /livez", "GET /metrics"]
    )
    await signals.first.wait()
    log.info("stopping", grace_s=settings.erpgo_shutdown_grace)
    await drain(runtime, signals)  # the server still answers meanwhile: 503 to webhooks, /livez 200
    await runner.cleanup()  # closes the listener, then the runtime (outbox, targets, bot database)
    signals.restore()
    log.info("stopped")
    return 0


async def start_socket_mode(settings: Settings, host: str, port: int) -> tuple[web.AppRunner, int]:
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
    runtime.slack_link = SocketLink(
        bolt, app_token, backoff=Backoff(first=1.0, cap=settings.erpgo_slack_max_backoff), people=runtime.tasks.people
    )
    web_app = build_web_app(runtime, bolt, slack_events=False)
    link = runtime.slack_link

    async def close_link(_app: web.Application) -> None:
        await link.close()

    web_app.on_shutdown.append(close_link)
    runner, bound = await listen(web_app, host, port)
    link.start()
    return runner, bound


async def socket_mode(settings: Settings, host: str = "0.0.0.0", port: int | None = None) -> int:
    signals = StopSignals()
    runner, bound = await start_socket_mode(settings, host, port or settings.port)
    runtime = runner.app[RUNTIME]
    log.info("listening", mode="socket", host=host, port=bound, routes=["GET /healthz", "GET /livez", "GET /metrics"])
    await signals.first.wait()
    log.info("stopping", grace_s=settings.erpgo_shutdown_grace)
    await drain(runtime, signals)  # Slack's link stays up meanwhile: commands and clicks are told to retry
    await runner.cleanup()  # closes the link, then the runtime (outbox, targets, bot database)
    signals.restore()
    log.info("stopped")
    return 0
