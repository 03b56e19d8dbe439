"""The composition root: the one place that knows every part of the bot.

It builds the registry from an explicit list of runbook modules and the bot's own verbs, resolves
the triage rules (an unknown check name stops the start), then assembles the runtime (settings,
targets, Slack client, the bot's database), the Bolt app and the HTTP routes. Nothing else in bot/
imports handlers/ or runbooks/.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot import middleware
from bot.approvals.engine import Approvals
from bot.approvals.publish import queue_interrupted
from bot.approvals.usergroups import UserGroups
from bot.core import metrics
from bot.core.registry import Registry, RegistryError, Runbook
from bot.core.tasks import PeopleFirst, TaskTracker
from bot.runtime import Runtime
from bot.settings import ConfigError, Settings
from bot.slack.client import SlackOut, web_client
from bot.slack.delivery import Outbox, outbox_client
from bot.slack.guard import Guard
from bot.slack.identity import authorizer
from bot.slack.memory import MemoryOutbox
from bot.slack.outbox import Courier
from bot.store.pool import Store
from bot.targets import Targets
from handlers import alert_actions
from handlers import alerts as alert_handlers
from handlers import approvals as approval_handlers
from handlers import break_glass as break_glass_handlers
from handlers import command as command_handlers
from handlers import doctor as doctor_handlers
from handlers import home as home_handlers
from handlers import incidents as incident_handlers
from handlers import watches as watch_handlers
from runbooks import (
    application,
    auth,
    disk,
    error_rate,
    errors,
    graph,
    integrity,
    largest_files,
    log_rotation,
    network,
    performance,
    profiling,
    quick,
    reconnect,
    tls,
    tls_renewal,
    triage,
)
from runbooks.containers import actions as container_actions
from runbooks.containers import compose, ondemand, startup
from runbooks.database import (
    connect,
    connections,
    corruption,
    explain,
    indexes,
    locks,
    overview,
    replication,
    statements,
)
from runbooks.database import settings as db_settings
from runbooks.emergency import backups as emergency_backups
from runbooks.emergency import outage, restart, restoring
from runbooks.resources import cpu, memory
from runbooks.security import accounts, attacks, bans

RUNBOOKS: tuple[Runbook, ...] = (
    quick.runbook,
    application.runbook,
    overview.runbook,
    connect.runbook,
    connections.runbook,
    statements.runbook,
    explain.runbook,
    indexes.runbook,
    corruption.runbook,
    db_settings.runbook,
    locks.runbook,
    replication.runbook,
    auth.runbook,
    integrity.runbook,
    errors.runbook,
    disk.runbook,
    largest_files.runbook,
    log_rotation.runbook,
    network.runbook,
    reconnect.runbook,
    tls.runbook,
    tls_renewal.runbook,
    attacks.runbook,
    bans.runbook,
    accounts.runbook,
    outage.runbook,
    restart.runbook,
    emergency_backups.runbook,
    restoring.runbook,
    startup.runbook,
    compose.runbook,
    container_actions.runbook,
    ondemand.runbook,
    memory.runbook,
    cpu.runbook,
    performance.runbook,
    graph.runbook,
    profiling.runbook,
    error_rate.runbook,
    triage.runbook,
)
BOT_VERBS: tuple[Runbook, ...] = (
    approval_handlers.bot_verbs,
    alert_handlers.bot_verbs,
    alert_actions.bot_verbs,
    incident_handlers.bot_verbs,
    watch_handlers.bot_verbs,
    doctor_handlers.bot_verbs,
)
HANDLERS = (
    command_handlers,
    approval_handlers,
    break_glass_handlers,
    alert_handlers,
    alert_actions,
    home_handlers,
    incident_handlers,
    watch_handlers,
)


def build_registry() -> Registry:
    """Every verb, check, remediation and triage rule of the bot; a ConfigError when they do not fit."""
    try:
        return Registry().install(*RUNBOOKS, *BOT_VERBS).resolve_triage()
    except RegistryError as exc:
        raise ConfigError(f"configuration error: {exc}") from None


RUNTIME = web.AppKey("runtime", Runtime)


def build_runtime(settings: Settings, *, offline: bool = False) -> Runtime:
    """Every service of the bot, each present: without BOT_DATABASE_URL the store is a stand-in and
    the outbox keeps what it sends in this process. `offline`: no Slack at all (`erpgo-bot check`
    of the bot's own verbs), whose outbox only queues for a serving bot."""
    token = settings.secret("slack_bot_token")
    if not token and not offline:
        raise ConfigError("configuration error: SLACK_BOT_TOKEN is required")
    slack = SlackOut.offline() if offline else SlackOut(web_client(token or "", settings.slack_api_url))
    registry = build_registry()
    targets = Targets(settings)
    store = Store(settings.secret("bot_database_url"))
    usergroups = UserGroups(slack.usergroup_members, ttl=settings.erpgo_usergroup_ttl)
    tasks = TaskTracker()
    runtime = Runtime(
        settings=settings,
        targets=targets,
        slack=slack,
        registry=registry,
        store=store,
        approvals=Approvals(store, registry, targets, settings, on_interrupted=queue_interrupted),
        outbox=build_outbox(settings, store, token, tasks.people),
        usergroups=usergroups,
        tasks=tasks,
    )
    runtime.approvals.policy_of = lambda: runtime.policy
    return runtime


def build_outbox(settings: Settings, store: Store, slack_token: str | None, people: PeopleFirst) -> Courier:
    """The durable outbox in the bot's database (which delivers only with a Slack token; without one,
    e.g. `erpgo-bot check approvals`, it queues for the serving bot), else the same in this process."""
    client = outbox_client(slack_token, settings.slack_api_url) if slack_token else None
    interval, burst = settings.erpgo_slack_channel_interval, settings.erpgo_slack_channel_burst
    backoff = settings.erpgo_slack_max_backoff
    if store.configured:
        return Outbox(store, client, interval=interval, burst=burst, max_backoff=backoff, people=people)
    return MemoryOutbox(client, interval=interval, burst=burst, max_backoff=backoff)


def build_bolt_app(runtime: Runtime, *, socket_mode: bool = False) -> AsyncApp:
    secret = runtime.settings.secret("slack_signing_secret")
    if not secret and not socket_mode:
        raise ConfigError("configuration error: SLACK_SIGNING_SECRET is required in HTTP mode")
    app = AsyncApp(
        client=bolt_client(runtime.slack.client),
        # the bot's identity comes from the auth.test made at start, never from one inside a request
        authorize=authorizer(runtime.settings.secret("slack_bot_token") or "", lambda: runtime.identity),
        signing_secret=secret or "socket-mode-unused",
        request_verification_enabled=not socket_mode,
        raise_error_for_unhandled_request=False,
        # every listener acks and hands its work to runtime.tasks, so answering after it returns
        # is immediate; Bolt's default instead polls for the ack every 10 ms
        process_before_response=not socket_mode,
    )
    middleware.install(app, runtime)
    for module in HANDLERS:
        module.register(app, runtime)
    return app


def bolt_client(client: AsyncWebClient) -> AsyncWebClient:
    """Bolt's template client: the bot's API URL, timeout and retries, no token (authorize gives it)."""
    return AsyncWebClient(base_url=client.base_url, timeout=client.timeout, retry_handlers=list(client.retry_handlers))


def build_web_app(runtime: Runtime, bolt: AsyncApp, *, slack_events: bool = True) -> web.Application:
    """The HTTP side: /slack/events (unless Slack comes over Socket Mode), /healthz, /metrics and the
    handlers' routes (the Alertmanager webhook)."""
    # signature and shape are checked on the raw bytes before Bolt parses anything (401/400/413)
    guard = Guard(runtime.settings.secret("slack_signing_secret") or "unset")

    async def events(request: web.Request) -> web.Response:
        admitted = await guard.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        with runtime.tasks.people.serving():  # what a person asks goes before alert notifications
            # a task of its own: the log context the middleware binds stays with this request
            bolt_response = await asyncio.create_task(bolt.async_dispatch(parse_slash_with_payload_word(admitted)))
        return await to_aiohttp_response(bolt_response)

    async def livez(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def healthz(request: web.Request) -> web.Response:
        if "live" in request.query:  # /healthz?live: liveness only, as /livez
            return await livez(request)
        status, body = await runtime.health()
        return web.json_response(body, status=status)

    async def metrics_route(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    async def on_cleanup(_app: web.Application) -> None:
        await runtime.close()

    app = web.Application(client_max_size=1024 * 1024)
    if slack_events:
        app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics_route)
    for module in HANDLERS:
        if hasattr(module, "routes"):
            app.add_routes(module.routes(runtime))
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
