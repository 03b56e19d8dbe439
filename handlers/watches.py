"""Watches, the digest and on call: the watches' and the digest's loops (started with the runtime),
the watch header's Ack and Mute 24 h / 7 d buttons, and the bot's verbs `/erpgo digest` (the digest now,
in the asker's channel) and `/erpgo oncall` (who is on call now and next).

Ack and Mute follow the policy's alerts.ack and alerts.silence: who may use them on an alert header may
use them on a watch header."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.core.errors import NotConfigured, describe_error
from bot.core.logs import log
from bot.core.metrics import COMMANDS
from bot.core.registry import Runbook, UsageError
from bot.oncall import describe, on_call_now
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.interaction import Interaction, tell
from bot.watch import digest, runner
from bot.watch.threads import ACK_ACTION, MUTE_ACTION, MUTE_CHOICES, act

POLICY_NAMES = {"ack": "alerts.ack", "mute": "alerts.silence"}

bot_verbs = Runbook("watches")


def register(app: AsyncApp, runtime: Runtime) -> None:
    start_loops(runtime)

    @app.action(ACK_ACTION)
    async def ack_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        runtime.tasks.spawn(on_click(runtime, Interaction.of(body), None), name="watch:ack")

    for label in MUTE_CHOICES:

        @app.action(f"{MUTE_ACTION}.{label}")
        async def mute_clicked(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            choice = str(action["action_id"]).rsplit(".", 1)[1]
            runtime.tasks.spawn(on_click(runtime, Interaction.of(body), choice), name="watch:mute")


def start_loops(runtime: Runtime) -> None:
    """The watches' and the digest's loops, when there is a bot database to claim their slots in."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # built to be checked, not served (erpgo-bot check)
        return
    if runner.enabled(runtime):
        runtime.start_loop(runner.watch_forever(runtime), name="watches")
    if runtime.store.configured and digest.channel_of(runtime):
        runtime.start_loop(digest.digest_forever(runtime), name="digest")


async def on_click(runtime: Runtime, click: Interaction, mute: str | None) -> None:
    structlog.contextvars.bind_contextvars(watch=click.value[:40], watch_action=mute or "ack")
    policy_name = POLICY_NAMES["mute" if mute else "ack"]
    refusal = runtime.policy.action_refusal(click.user, click.channel or "", policy_name)
    if refusal:
        COMMANDS.labels(policy_name, "refused").inc()
        await tell(runtime.slack, click, render.text_message(f":no_entry: {refusal}"))
        return
    try:
        async with runtime.store.acquire() as conn, conn.transaction():
            done, notice = await act(
                conn, click.value, click.user, click.message_ts or "", MUTE_CHOICES.get(mute or ""), datetime.now(UTC)
            )
    except Exception as exc:
        log.error("watch_action_failed", error=describe_error(exc))
        done, notice = False, f":warning: Nothing done: the bot's database is unavailable ({describe_error(exc)})."
    COMMANDS.labels(policy_name, "done" if done else "refused").inc()
    if done:
        runtime.outbox.wake()
    await tell(runtime.slack, click, render.text_message(notice))


@bot_verbs.bot_verb(
    "digest", "the digest now, in this channel: alerts, approvals, watches, bans, backups, certificates"
)
async def digest_verb(runtime: Runtime, invocation: Any, args: list[str]) -> render.Message:
    if args:
        raise UsageError("`digest` takes no arguments")
    runtime.tasks.spawn(post_digest(runtime, invocation.channel_id), name="digest:now")
    return render.text_message(":newspaper: Putting the digest together; it is posted here in a moment.")


async def post_digest(runtime: Runtime, channel: str) -> None:
    try:
        await digest.digest_now(runtime, channel)
    except Exception as exc:
        log.error("digest_not_posted", error=describe_error(exc))


@bot_verbs.bot_verb("oncall", "who is on call now and next (ERPGO_ONCALL, or the policy's oncall rotation)")
async def oncall_verb(runtime: Runtime, _invocation: Any, args: list[str]) -> render.Message:
    if args:
        raise UsageError("`oncall` takes no arguments")
    try:
        oncall = await on_call_now(runtime, datetime.now(UTC))
    except NotConfigured as exc:
        return render.text_message(f":grey_question: Nobody is named on call: set {exc.setting}.")
    return render.text_message(describe(oncall))
