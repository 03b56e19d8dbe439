"""The alert header's buttons: I'm on it, Silence 1h / 4h / 24h / Silence… (a modal with a duration
and a comment), Unsilence.

A click is acked at once and handled in the background: the clicked message must be the current
header of the group its button names; the policy decides who may (alerts.ack, alerts.silence);
then bot/alerts/actions.py records it (audited) and the header is queued again. Only the clicker is
told how it went. With `second_approver: true` for alerts.silence, a silence is proposed for
approval in the thread instead, and runs once one of its approvers approves it.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts import actions, escalation
from bot.alerts.messages import (
    ACK_ACTION,
    ESCALATE_ACTION,
    SILENCE_ACTION,
    SILENCE_CHOICES,
    SILENCE_MODAL,
    UNSILENCE_ACTION,
)
from bot.approvals.publish import DELIVERY_WAIT, queue_proposals
from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.logs import log
from bot.core.metrics import COMMANDS
from bot.core.registry import Refused, Runbook
from bot.core.units import human_duration
from bot.oncall import on_call_now
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.interaction import Interaction, tell
from bot.store.pool import Store
from bot.targets import NotConfigured

ACK, SILENCE = "alerts.ack", "alerts.silence"  # the policy's names for them
ESCALATION_SWEEP_S = 5.0
FIXED_SILENCE = re.compile(rf"^{re.escape(SILENCE_ACTION)}\.({'|'.join(SILENCE_CHOICES)})$")

bot_verbs = Runbook("alert actions")  # the silence a second approver lets through


def register(app: AsyncApp, runtime: Runtime) -> None:
    @app.action(ACK_ACTION)
    async def ack_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        runtime.tasks.spawn(on_ack(runtime, Interaction.of(body)), name="alert:ack")

    @app.action(FIXED_SILENCE)
    async def silence_clicked(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        seconds = SILENCE_CHOICES[str(action["action_id"]).rsplit(".", 1)[1]]
        runtime.tasks.spawn(on_silence(runtime, Interaction.of(body), seconds, ""), name="alert:silence")

    @app.action(f"{SILENCE_ACTION}.custom")
    async def custom_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = Interaction.of(body)
        try:  # at once: a trigger_id is good for 3 seconds
            await client.views_open(trigger_id=body.get("trigger_id"), view=silence_modal(click))
        except SlackApiError as exc:
            log.warning("silence_modal_not_opened", error=exc.response.get("error"))
            await tell(
                runtime.slack, click, render.text_message(":warning: Could not open the silence form; try again.")
            )

    @app.view(SILENCE_MODAL)
    async def modal_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = (view.get("state") or {}).get("values") or {}
        duration = str(((values.get("duration") or {}).get("duration") or {}).get("value") or "")
        comment = str(((values.get("comment") or {}).get("comment") or {}).get("value") or "")
        try:
            seconds = actions.parse_silence_duration(duration)
        except ValueError as exc:
            await ack(response_action="errors", errors={"duration": str(exc)[:150]})
            return
        await ack()
        click = Interaction.of(body)
        if click.value:
            runtime.tasks.spawn(on_silence(runtime, click, seconds, comment[:1000]), name="alert:silence")

    @app.action(UNSILENCE_ACTION)
    async def unsilence_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        runtime.tasks.spawn(on_unsilence(runtime, Interaction.of(body)), name="alert:unsilence")

    register_escalation(app, runtime)


def silence_modal(click: Interaction) -> dict:
    metadata = json.dumps({"value": click.value, "channel": click.channel, "ts": click.message_ts})
    return {
        "type": "modal",
        "callback_id": SILENCE_MODAL,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Silence alerts"},
        "submit": {"type": "plain_text", "text": "Silence"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Silences this alert group in Alertmanager: no notification for it until the silence ends.",
                },
            },
            {
                "type": "input",
                "block_id": "duration",
                "label": {"type": "plain_text", "text": "For how long"},
                "hint": {"type": "plain_text", "text": "e.g. 30m, 2h, 1h30m, 3d (5 minutes to 14 days)"},
                "element": {"type": "plain_text_input", "action_id": "duration", "initial_value": "2h"},
            },
            {
                "type": "input",
                "block_id": "comment",
                "optional": True,
                "label": {"type": "plain_text", "text": "Why (shown in Alertmanager and the thread)"},
                "element": {"type": "plain_text_input", "action_id": "comment", "multiline": True},
            },
        ],
    }


# ---------------------------------------------------------------------- what a click does


async def on_ack(runtime: Runtime, click: Interaction) -> None:
    structlog.contextvars.bind_contextvars(alert_group=click.value[:40], alert_action="ack")
    thread = await _thread(runtime, click, ACK)
    if thread is None:
        return
    try:
        outcome = await actions.acknowledge(runtime.store, thread, click.user)
    except Exception as exc:
        await _store_down(runtime, click, ACK, exc)
        return
    await _finish(runtime, click, ACK, outcome)


async def on_silence(runtime: Runtime, click: Interaction, seconds: int, comment: str) -> None:
    structlog.contextvars.bind_contextvars(alert_group=click.value[:40], alert_action="silence")
    thread = await _thread(runtime, click, SILENCE)
    if thread is None:
        return
    if runtime.policy.needs_second_approver(SILENCE):
        await propose_silence(runtime, click, thread, seconds, comment)
        return
    try:
        alertmanager = runtime.targets.alertmanager
    except NotConfigured as exc:
        await tell(
            runtime.slack, click, _notice(f":no_bell: Nothing was silenced: silences need Alertmanager's API ({exc}).")
        )
        return
    try:
        outcome = await actions.silence(
            runtime.store, alertmanager, thread, click.user, click.user_name, seconds, comment
        )
    except Exception as exc:
        await _store_down(runtime, click, SILENCE, exc)
        return
    await _finish(runtime, click, SILENCE, outcome)


async def on_unsilence(runtime: Runtime, click: Interaction) -> None:
    structlog.contextvars.bind_contextvars(alert_group=click.value[:40], alert_action="unsilence")
    thread = await _thread(runtime, click, SILENCE)
    if thread is None:
        return
    try:
        alertmanager = runtime.targets.alertmanager
    except NotConfigured as exc:
        await tell(runtime.slack, click, _notice(f":bell: Nothing changed: silences need Alertmanager's API ({exc})."))
        return
    try:
        outcome = await actions.unsilence(runtime.store, alertmanager, thread, click.user)
    except Exception as exc:
        await _store_down(runtime, click, SILENCE, exc)
        return
    await _finish(runtime, click, SILENCE, outcome)


async def _thread(runtime: Runtime, click: Interaction, action: str) -> actions.AlertThread | None:
    """The alert thread the click is about, once the policy lets the clicker act on it (else told why)."""
    if not runtime.store.configured:
        await tell(
            runtime.slack,
            click,
            _notice(":information_source: Alert threads need the bot's database (BOT_DATABASE_URL)."),
        )
        return None
    if not click.value.isdigit():
        await tell(runtime.slack, click, _notice(":grey_question: That button names no alert group."))
        return None
    try:
        thread = await actions.thread_of(runtime.store, int(click.value), click.channel or "", click.message_ts or "")
    except Exception as exc:
        await _store_down(runtime, click, action, exc)
        return None
    if thread is None:
        await tell(runtime.slack, click, _notice(":grey_question: This is not the current thread of that alert group."))
        return None
    refusal = runtime.policy.action_refusal(click.user, click.channel or "", action)
    if refusal:
        COMMANDS.labels(action, "refused").inc()
        if runtime.approvals.configured:
            await runtime.approvals.audit_quietly(click.user, "refused", refusal, action=action, channel=click.channel)
        await tell(runtime.slack, click, _notice(f":no_entry: {refusal}"))
        return None
    return thread


async def _finish(runtime: Runtime, click: Interaction, action: str, outcome: actions.Outcome) -> None:
    COMMANDS.labels(action, outcome.kind).inc()
    if outcome.done:
        runtime.outbox.wake()
    await tell(runtime.slack, click, _notice(outcome.notice))


async def _store_down(runtime: Runtime, click: Interaction, action: str, exc: BaseException) -> None:
    log.error("alert_action_failed", action=action, error=describe_error(exc))
    COMMANDS.labels(action, "store_down").inc()
    await tell(
        runtime.slack,
        click,
        _notice(f":warning: Nothing done: the bot's database is unavailable ({describe_error(exc)})."),
    )


def _notice(text: str) -> render.Message:
    return render.text_message(text)


# ---------------------------------------------------------------------- a silence that needs a second person


async def propose_silence(
    runtime: Runtime, click: Interaction, thread: actions.AlertThread, seconds: int, comment: str
) -> None:
    matchers = ", ".join(f'{k}="{v}"' for k, v in sorted(thread.matchers.items()))
    proposal = approved_silence.propose(
        group_id=thread.group_id,
        thread_key=thread.thread_key,
        seconds=seconds,
        comment=comment,
        created_by=click.user_name,
        summary=f"Silence {thread.title} for {human_duration(seconds)}",
        why=comment,
        preview=f"POST /api/v2/silences {{{matchers}}} for {human_duration(seconds)}",
    )
    finding = Finding.ok("Alert silence", f"silence of {thread.title} requested", proposals=[proposal])
    if not runtime.approvals.configured:
        await tell(runtime.slack, click, _notice(":warning: Approvals need the bot's database: set BOT_DATABASE_URL."))
        return
    async with runtime.outbox.thread(thread.thread_key, thread.channel) as rows:
        posted = await queue_proposals(runtime, rows, [finding], requester=click.user)
    await rows.receipt.wait(DELIVERY_WAIT)
    notice = (
        ":hourglass_flowing_sand: A second person has to approve this silence: it is in the thread."
        if posted
        else ":no_entry: This silence needs an approver, and none can approve it under the policy."
    )
    await tell(runtime.slack, click, _notice(notice))


@bot_verbs.remediation(SILENCE, "Silence an alert group in Alertmanager", timeout=30)
async def approved_silence(
    ctx: CheckContext, group_id: int, thread_key: str, seconds: int, comment: str, created_by: str
) -> str:
    """The silence a second person approved: created now, as the requester asked for it."""
    dsn = ctx.settings.secret("bot_database_url")
    if not dsn:
        raise Refused("alert threads need the bot's database")
    store = Store(dsn)
    try:
        thread = await actions.thread_by_key(store, group_id, thread_key)
        if thread is None:
            raise Refused("the alert group has moved on to a newer thread")
        outcome = await actions.silence(
            store, ctx.targets.alertmanager, thread, ctx.actor.requester, created_by, seconds, comment
        )
    finally:
        await store.close()
    if not outcome.done:
        raise Refused(re.sub(r"^:[a-z_]+: ", "", outcome.notice))
    return f"silenced {thread.title} for {human_duration(seconds)}"


# ---------------------------------------------------------------------- Escalate, and escalation by itself


def register_escalation(app: AsyncApp, runtime: Runtime) -> None:
    @app.action(ESCALATE_ACTION)
    async def escalate_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        runtime.tasks.spawn(on_escalate(runtime, Interaction.of(body)), name="alert:escalate")

    after = runtime.settings.erpgo_escalate_after
    if after is None or not runtime.store.configured or runtime.settings.alert_webhook_token is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    runtime.start_loop(escalate_forever(runtime, after), name="alerts:escalate")


async def on_escalate(runtime: Runtime, click: Interaction) -> None:
    structlog.contextvars.bind_contextvars(alert_group=click.value[:40], alert_action="escalate")
    thread = await _thread(runtime, click, escalation.ESCALATE)
    if thread is None:
        return
    try:
        oncall = await on_call_now(runtime, datetime.now(UTC))
    except NotConfigured as exc:
        await tell(runtime.slack, click, _notice(f":grey_question: Nobody is named on call: set {exc.setting}."))
        return
    try:
        outcome = await escalation.escalate_next(runtime.store, thread, click.user, oncall)
    except Exception as exc:
        await _store_down(runtime, click, escalation.ESCALATE, exc)
        return
    await _finish(runtime, click, escalation.ESCALATE, outcome)


async def escalate_forever(runtime: Runtime, after: float) -> None:
    """Every few seconds: critical threads nobody acknowledged within `after` (per level) escalate."""
    while True:
        if not runtime.stopping:
            await escalate_overdue(runtime, after)
        await asyncio.sleep(min(ESCALATION_SWEEP_S, after / 4))  # a period, not a synchronisation


async def escalate_overdue(runtime: Runtime, after: float) -> None:
    try:
        due = await escalation.overdue(runtime.store, after)
        oncall = await on_call_now(runtime, datetime.now(UTC)) if due else None
    except NotConfigured:
        return  # nobody to escalate to
    except Exception as exc:  # the database is down: the next sweep looks again
        log.warning("escalation_sweep_failed", error=describe_error(exc))
        return
    for row, level in due:
        assert oncall is not None
        try:
            outcome = await escalation.escalate_overdue(
                runtime.store, actions.thread_from_row(row), level + 1, oncall, after
            )
        except Exception as exc:
            log.warning("escalation_failed", group_id=row["id"], error=describe_error(exc))
            continue
        if outcome.done:
            runtime.outbox.wake()
