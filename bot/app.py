"""The composition root: the one place that knows every part of the bot.

It builds the registry from an explicit list of runbook modules and the bot's own verbs, resolves
the triage rules (an unknown check name stops the start), then assembles the runtime (settings,
targets, Slack client, the bot's database), the Bolt app and the HTTP routes. Nothing else in bot/
imports handlers/ or runbooks/.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.engine import Approvals
from bot.approvals.policy import Policy, load_policy
from bot.approvals.usergroups import UserGroups
from bot.core import metrics
from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.registry import Registry, RegistryError, Runbook
from bot.core.tasks import TaskTracker
from bot.settings import ConfigError, Settings
from bot.slack.client import SlackOut, web_client
from bot.slack.delivery import Outbox, outbox_client
from bot.slack.guard import Guard
from bot.slack.identity import SlackIdentity, TokenRejected, authorizer, identify
from bot.slack.memory import MemoryOutbox
from bot.slack.outbox import Courier
from bot.slack.socket import SocketLink
from bot.store.pool import Store
from bot.targets import Targets
from handlers import alert_actions
from handlers import alerts as alert_handlers
from handlers import approvals as approval_handlers
from handlers import command as command_handlers
from handlers import home as home_handlers
from handlers import incidents as incident_handlers
from runbooks import application, auth, disk, errors, integrity, network, performance, quick, tls, triage
from runbooks.containers import actions as container_actions
from runbooks.containers import startup
from runbooks.database import connect, connections, indexes, locks, overview, replication, statements
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
    indexes.runbook,
    db_settings.runbook,
    locks.runbook,
    replication.runbook,
    auth.runbook,
    integrity.runbook,
    errors.runbook,
    disk.runbook,
    network.runbook,
    tls.runbook,
    attacks.runbook,
    bans.runbook,
    accounts.runbook,
    outage.runbook,  # before startup: ServiceDown and ApplicationDown with several containers down are an outage
    restart.runbook,
    emergency_backups.runbook,
    restoring.runbook,
    startup.runbook,
    container_actions.runbook,
    memory.runbook,
    cpu.runbook,
    performance.runbook,
    triage.runbook,  # last: the runbooks above map their own alert names first
)
BOT_VERBS: tuple[Runbook, ...] = (
    approval_handlers.bot_verbs,
    alert_handlers.bot_verbs,
    alert_actions.bot_verbs,
    incident_handlers.bot_verbs,
)
HANDLERS = (command_handlers, approval_handlers, alert_handlers, alert_actions, home_handlers, incident_handlers)
IDENTITY_WAIT = 10.0  # s: how long the start waits for auth.test before serving without the bot's ids


def build_registry() -> Registry:
    """Every verb, check, remediation and triage rule of the bot; a ConfigError when they do not fit."""
    try:
        return Registry().install(*RUNBOOKS, *BOT_VERBS).resolve_triage()
    except RegistryError as exc:
        raise ConfigError(f"configuration error: {exc}") from None


INTERRUPT_RECORD_S = 8.0  # s: cancelled work may take this long to record what it was doing
HEALTH_TIMEOUT_S = 2.0  # s per probe of /healthz (the Docker HEALTHCHECK gives the whole answer 4 s)


@dataclass
class Runtime:
    """Everything a handler needs, built once per process."""

    settings: Settings
    targets: Targets
    slack: SlackOut  # ephemeral answers, response_url answers and permalinks only
    registry: Registry
    store: Store | None = None  # the bot's own database; None when BOT_DATABASE_URL is unset
    tasks: TaskTracker = field(default_factory=TaskTracker)
    approvals: Approvals | None = None  # the approval engine; None without the bot's database
    policy: Policy = field(default_factory=Policy.default)  # CHATOPS_POLICY_FILE, loaded by start()
    loops: list = field(default_factory=list)  # periodic background tasks, cancelled on close
    # everything posted to channels and threads: durable in the bot's database, else in this process
    outbox: Courier | None = None
    stopping: bool = False  # set by drain(): no new work is taken
    closed: bool = False
    identity: SlackIdentity | None = None  # the bot's own Slack account (auth.test at start)
    usergroups: UserGroups | None = None  # Slack user groups named by the policy (S…), resolved through Slack
    slack_link: SocketLink | None = None  # Socket Mode's connection, when Slack is reached that way

    def start_loop(self, coro, name: str) -> None:
        """A task that runs for the life of the process (not awaited by tasks.idle())."""
        self.loops.append(asyncio.create_task(coro, name=name))

    async def drain(self, grace: float | None = None) -> list[str]:
        """Stop taking new work; let running work (reports, triage, clicks) finish for up to `grace`
        seconds (ERPGO_SHUTDOWN_GRACE), then cancel it — each task records what it was doing (a triage
        gives its claim back, a report says it was interrupted). Returns the names of the tasks cancelled."""
        self.stopping = True
        grace = self.settings.erpgo_shutdown_grace if grace is None else grace
        try:
            await self.tasks.idle(timeout=grace)
            return []
        except TimeoutError:
            interrupted = await self.tasks.cancel_all(timeout=INTERRUPT_RECORD_S)
            log.warning("work_interrupted", tasks=interrupted, grace_s=grace)
            return interrupted

    async def close(self) -> None:
        """Drain (if not done yet), then close the outbox, targets and the bot's database. Never raises."""
        if self.closed:
            return
        self.closed = True
        for loop in self.loops:
            loop.cancel()
        await asyncio.gather(*self.loops, return_exceptions=True)
        await self.drain()
        steps = [("outbox", self.outbox.stop() if self.outbox else None), ("targets", self.targets.close())]
        steps.append(("store", self.store.close() if self.store else None))
        for part, step in steps:
            if step is None:
                continue
            try:
                await asyncio.wait_for(step, 15)
            except Exception as exc:  # closing must finish whatever one part does
                log.warning("close_failed", part=part, error=describe_error(exc))

    async def identify(self, wait: float | None = None) -> None:
        """auth.test, retried with backoff: awaited up to `wait` seconds (IDENTITY_WAIT), then on in the
        background (requests are served meanwhile). A token Slack refuses is a ConfigError at start."""
        if self.slack.offline_mode:
            return
        wait = IDENTITY_WAIT if wait is None else wait

        async def keep_asking() -> None:
            try:
                self.identity = await identify(self.slack.client)
            except TokenRejected as exc:
                log.error("slack_token_rejected", error=exc.error)
                raise

        asking = asyncio.create_task(keep_asking(), name="slack:auth.test")
        done, _ = await asyncio.wait({asking}, timeout=wait)
        if asking in done:
            if isinstance(asking.exception(), TokenRejected):
                raise ConfigError(f"configuration error: {asking.exception()}")
            return
        log.warning("slack_identity_pending", waited_s=wait, hint="Slack's auth.test keeps failing; retrying")
        self.loops.append(asking)

    async def start(self, identify_wait: float | None = None) -> None:
        """Load the policy (a malformed one is a ConfigError, before anything is contacted), ask Slack
        who the bot is, then apply the bot database's migrations; a database that is down now is retried
        on first use. The watched containers' Docker stats are sampled in the background from here on."""
        self.policy = load_policy(self.settings.chatops_policy_file).with_usergroups(self.usergroups)
        await self.identify(identify_wait)
        self.targets.start_sampling()
        if self.policy.is_default:
            log.warning(
                "policy_not_configured",
                hint="set CHATOPS_POLICY_FILE; until then every verb is allowed "
                "for everyone and no destructive action can be approved",
            )
        else:
            log.info("policy_loaded", file=self.policy.source, rules=self.policy.describe())
        if self.store is None:
            log.warning(
                "bot_database_not_configured", hint="set BOT_DATABASE_URL for approvals, audit and alert threads"
            )
        else:
            try:
                await self.store.migrate()
            except Exception as exc:
                log.error("bot_database_unreachable", error=describe_error(exc))
        if self.outbox is not None:
            self.outbox.start()  # the durable outbox's workers retry while the database is down

    async def health(self) -> tuple[int, dict]:
        """/healthz: 503 when the bot cannot do its work — its database (approvals, alerts) is
        unreachable, or it is stopping — with which part is down."""
        body: dict = {"status": "ok", "background_tasks": self.tasks.pending}
        down = []
        if self.store is not None:
            try:
                await asyncio.wait_for(self.store.ping(), HEALTH_TIMEOUT_S)
                body["bot_database"] = {"ok": True}
            except Exception as exc:
                body["bot_database"] = {"ok": False, "error": describe_error(exc)}
                down.append("bot_database")
        if self.slack_link is not None:  # Socket Mode: whether Slack can reach the bot now (degraded, not down)
            body["slack"] = await self.slack_link.status()
            if not body["slack"]["connected"]:
                body["status"] = "degraded"
        if self.outbox is not None:
            if "bot_database" in down:
                body["slack_backlog"] = {"pending": None, "error": "the bot's database is unreachable"}
            else:  # {"pending", "failed", "oldest_pending_s"}
                body["slack_backlog"] = await self.outbox.health(HEALTH_TIMEOUT_S)
        if self.stopping:
            down.append("stopping")
        if down:
            body["status"] = "stopping" if down == ["stopping"] else "unavailable"
            body["down"] = down
        return (503 if down else 200), body


RUNTIME = web.AppKey("runtime", Runtime)


def build_runtime(settings: Settings) -> Runtime:
    token = settings.secret("slack_bot_token")
    if not token:
        raise ConfigError("configuration error: SLACK_BOT_TOKEN is required")
    runtime = Runtime(
        settings=settings,
        targets=Targets(settings),
        slack=SlackOut(web_client(token, settings.slack_api_url)),
        registry=build_registry(),
    )
    runtime.usergroups = UserGroups(runtime.slack.usergroup_members, ttl=settings.erpgo_usergroup_ttl)
    attach_store(runtime, token)
    if runtime.outbox is None:  # no bot database: the same outbox, kept in this process
        runtime.outbox = MemoryOutbox(
            outbox_client(token, settings.slack_api_url),
            interval=settings.erpgo_slack_channel_interval,
            burst=settings.erpgo_slack_channel_burst,
            max_backoff=settings.erpgo_slack_max_backoff,
        )
    return runtime


def attach_store(runtime: Runtime, slack_token: str | None) -> None:
    """The bot's database and what needs it: the approval engine and the outbox (which delivers only
    with a Slack token; without one, e.g. `erpgo-bot check approvals`, it queues for the serving bot)."""
    settings = runtime.settings
    bot_dsn = settings.secret("bot_database_url")
    if not bot_dsn:
        return
    runtime.store = Store(bot_dsn)
    runtime.approvals = Approvals(runtime.store, runtime.registry, runtime.targets, settings, lambda: runtime.policy)
    runtime.outbox = Outbox(
        runtime.store,
        outbox_client(slack_token, settings.slack_api_url) if slack_token else None,
        interval=settings.erpgo_slack_channel_interval,
        burst=settings.erpgo_slack_channel_burst,
        max_backoff=settings.erpgo_slack_max_backoff,
    )


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
        bolt_response = await bolt.async_dispatch(parse_slash_with_payload_word(admitted))
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
