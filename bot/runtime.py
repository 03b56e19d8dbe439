"""The bot's services, built once per process by the composition root (bot/app.py) and handed to
every door: settings, targets, the registry, Slack, the bot's database, the approval engine, the
outbox, the policy. No member is optional: a part that is not configured is a stand-in that says so
when used (`store.configured`, `approvals.configured`, an in-process outbox, `UNKNOWN_IDENTITY`, the
HTTP link), so a handler asks a typed question instead of testing for None."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from bot.approvals.engine import Approvals
from bot.approvals.policy import Policy, load_policy
from bot.approvals.usergroups import UserGroups
from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.registry import Registry
from bot.core.tasks import TaskTracker
from bot.settings import ConfigError, Settings
from bot.slack.client import SlackOut
from bot.slack.identity import UNKNOWN_IDENTITY, SlackIdentity, TokenRejected, identify
from bot.slack.outbox import Courier
from bot.slack.socket import HTTP_EVENTS, SlackLink
from bot.store.pool import MigrationRefused, Store
from bot.targets import Targets

IDENTITY_WAIT = 10.0  # s: how long the start waits for auth.test before serving without the bot's ids
INTERRUPT_RECORD_S = 8.0  # s: cancelled work may take this long to record what it was doing
HEALTH_TIMEOUT_S = 2.0  # s per probe of /healthz (the Docker HEALTHCHECK gives the whole answer 4 s)


@dataclass
class Runtime:
    """Everything a handler needs, built once per process."""

    settings: Settings
    targets: Targets
    slack: SlackOut  # ephemeral answers, response_url answers and permalinks only
    registry: Registry
    store: Store  # the bot's own database (BOT_DATABASE_URL); `configured` False without one
    approvals: Approvals  # the approval engine, on that database
    outbox: Courier  # everything posted to channels and threads: durable in the bot's database, else in this process
    usergroups: UserGroups  # Slack user groups named by the policy (S…), resolved through Slack
    policy: Policy = field(default_factory=Policy.default)  # CHATOPS_POLICY_FILE, loaded by load_policy()
    identity: SlackIdentity = UNKNOWN_IDENTITY  # the bot's own Slack account (auth.test at start)
    slack_link: SlackLink = HTTP_EVENTS  # how Slack reaches the bot: HTTP events, or a Socket Mode connection
    tasks: TaskTracker = field(default_factory=TaskTracker)
    loops: list[asyncio.Task[Any]] = field(default_factory=list)  # periodic background tasks, cancelled on close
    stopping: bool = False  # set by drain(): no new work is taken
    closed: bool = False

    def start_loop(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """A task that runs for the life of the process (not awaited by tasks.idle())."""
        self.loops.append(asyncio.create_task(self._once_migrated(coro), name=name))

    async def _once_migrated(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` once the bot's database is migrated: loops start while the bot is being built, and
        their first round on a new database would otherwise find no tables. A database that is down
        now is the loop's own to retry."""
        try:
            if self.store.configured:
                with suppress(Exception):
                    await self.store.ready()
        except BaseException:
            coro.close()  # cancelled before it started
            raise
        await coro

    def load_policy(self) -> None:
        """CHATOPS_POLICY_FILE, read and checked; a malformed one is a ConfigError (before Slack is asked)."""
        self.policy = load_policy(self.settings.chatops_policy_file).with_usergroups(self.usergroups)
        self.policy.refuse_unmatched(self.registry.verbs, self.registry.remediations)

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
        steps = [
            ("outbox", self.outbox.stop()),
            ("slack", self.slack.close()),
            ("targets", self.targets.close()),
            ("store", self.store.close()),
        ]
        for part, step in steps:
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
        """Ask Slack who the bot is, load the policy (a malformed one is a ConfigError), then apply
        the bot database's migrations; a database that is down now is retried on first use. The watched
        containers' Docker stats are sampled in the background from here on."""
        self.load_policy()
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
        if not self.store.configured:
            log.warning(
                "bot_database_not_configured", hint="set BOT_DATABASE_URL for approvals, audit and alert threads"
            )
        else:
            try:
                await self.store.migrate()
            except MigrationRefused as exc:  # not a database that is down: starting would corrupt it
                raise ConfigError(f"configuration error: BOT_DATABASE_URL {exc}") from None
            except Exception as exc:
                log.error("bot_database_unreachable", error=describe_error(exc))
        self.outbox.start()  # the durable outbox's workers retry while the database is down

    async def health(self) -> tuple[int, dict[str, Any]]:
        """/healthz: 503 when the bot cannot do its work — its database (approvals, alerts) is
        unreachable, or it is stopping — with which part is down."""
        body: dict[str, Any] = {"status": "ok", "background_tasks": self.tasks.pending}
        down: list[str] = []
        if self.store.configured:
            try:
                await asyncio.wait_for(self.store.ping(), HEALTH_TIMEOUT_S)
                body["bot_database"] = {"ok": True}
            except Exception as exc:
                body["bot_database"] = {"ok": False, "error": describe_error(exc)}
                down.append("bot_database")
        link = await self.slack_link.status()  # Socket Mode: whether Slack can reach the bot now (degraded, not down)
        if link is not None:
            body["slack"] = link
            if not link["connected"]:
                body["status"] = "degraded"
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
