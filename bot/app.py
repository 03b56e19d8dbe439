"""Assembles the bot: the runtime (settings, targets, Slack client), the Bolt app and the HTTP routes."""
from __future__ import annotations

from urllib.parse import parse_qsl
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import metrics
from bot.engine import describe_error
from bot.logs import log
from bot.registry import Registry, load_runbooks
from bot.settings import ConfigError, Settings
from bot.slack_out import SlackOut, web_client
from bot.store import Store
from bot.targets import Targets
from bot.tasks import TaskTracker


@dataclass
class Runtime:
    """Everything a handler needs, built once per process."""

    settings: Settings
    targets: Targets
    slack: SlackOut
    registry: Registry
    store: Store | None = None  # the bot's own database; None when BOT_DATABASE_URL is unset
    tasks: TaskTracker = field(default_factory=TaskTracker)
    proposal_buttons: Callable | None = None  # set when the approval engine is available

    async def close(self) -> None:
        await self.tasks.idle(timeout=30)
        await self.targets.close()
        if self.store is not None:
            await self.store.close()

    async def start(self) -> None:
        """Apply the bot database's migrations; a database that is down now is retried on first use."""
        if self.store is None:
            log.warning("bot_database_not_configured", hint="set BOT_DATABASE_URL for approvals, audit and alert threads")
            return
        try:
            await self.store.migrate()
        except Exception as exc:
            log.error("bot_database_unreachable", error=describe_error(exc))


RUNTIME = web.AppKey("runtime", Runtime)


def build_runtime(settings: Settings) -> Runtime:
    token = settings.secret("slack_bot_token")
    if not token:
        raise ConfigError("configuration error: SLACK_BOT_TOKEN is required")
    bot_dsn = settings.secret("bot_database_url")
    return Runtime(
        settings=settings,
        store=Store(bot_dsn) if bot_dsn else None,
        targets=Targets(settings),
        slack=SlackOut(web_client(token, settings.slack_api_url)),
        registry=load_runbooks(),
    )


def build_bolt_app(runtime: Runtime, *, socket_mode: bool = False) -> AsyncApp:
    from handlers import register_all

    secret = runtime.settings.secret("slack_signing_secret")
    if not secret and not socket_mode:
        raise ConfigError("configuration error: SLACK_SIGNING_SECRET is required in HTTP mode")
    app = AsyncApp(
        client=runtime.slack.client,
        signing_secret=secret or "socket-mode-unused",
        request_verification_enabled=not socket_mode,
        raise_error_for_unhandled_request=False,
    )
    register_all(app, runtime)
    return app


def build_web_app(runtime: Runtime, bolt: AsyncApp) -> web.Application:
    from handlers import register_routes

    async def slack_events(request: web.Request) -> web.Response:
        bolt_response = await bolt.async_dispatch(parse_slash_with_payload_word(await to_bolt_request(request)))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "background_tasks": runtime.tasks.pending})

    async def metrics_route(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    async def on_cleanup(_app: web.Application) -> None:
        await runtime.close()

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_route)
    register_routes(app, runtime)
    app.on_cleanup.append(on_cleanup)
    app[RUNTIME] = runtime
    return app


def parse_slash_with_payload_word(request: AsyncBoltRequest) -> AsyncBoltRequest:
    """Bolt takes any form body containing the word "payload" for an interactivity payload and
    drops it when there is none, so `/erpgo … payload …` would vanish. Re-parse it as the form it is."""
    if request.body == {} and "payload" in request.raw_body and not request.raw_body.startswith("{"):
        form = dict(parse_qsl(request.raw_body, keep_blank_values=True))
        if "payload" not in form and "command" in form:
            request.body = form
            request.context = build_async_context(AsyncBoltContext({}), form)
    return request
