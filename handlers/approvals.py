"""Approval buttons, the approval messages in report threads, and `/erpgo approvals` / `/erpgo audit`.

A click is acked at once; the work runs in the background: the engine authorises the clicker
(from the payload, never the bot), claims the approval atomically, executes, records and audits;
then the original message is updated (buttons gone) and the result is replied in its thread.
Only the clicker sees refusals. A Slack retry of a click never executes twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.approvals import messages as view
from bot.approvals.alert_credit import note_alert_outcomes_forever
from bot.approvals.catalogue import actions_list
from bot.approvals.engine import Decision, StoreUnavailable
from bot.approvals.publish import (
    DELIVERY_WAIT,
    expire_and_update,
    publish_decision,
    refresh_pending_message,
    sweep_expired_forever,
    verify_and_publish,
    verify_unfinished_forever,
)
from bot.approvals.record import TrackRecord, track_records
from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.metrics import COMMANDS
from bot.core.parse import ascii_int, is_slack_user_id, shown
from bot.core.registry import Runbook, UsageError
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.interaction import Interaction, Invocation, tell

LIST_TIMEOUT = 1.5  # the builtin verbs answer in the ack: with the permalinks, well inside Slack's 3 s
PERMALINK_TIMEOUT = 0.8
DEFAULT_AUDIT_ENTRIES, MAX_AUDIT_ENTRIES = 20, 100
MAX_APPROVAL_ID = 2**63 - 1  # approvals.id is a bigint


bot_verbs = Runbook("approvals")  # the bot's own verbs: approvals, audit


def register(app: AsyncApp, runtime: Runtime) -> None:
    if runtime.approvals.configured:
        runtime.start_loop(sweep_expired_forever(runtime), name="approvals:expiry")
        runtime.start_loop(verify_unfinished_forever(runtime), name="approvals:verify")
        runtime.start_loop(note_alert_outcomes_forever(runtime), name="approvals:alert-outcomes")

    @app.action(view.APPROVE_ACTION)
    async def approve_clicked(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        click = Interaction.of(body)
        runtime.tasks.spawn(on_click(runtime, click, "approve", retry_number(request)), name="approval:approve")

    @app.action(view.REJECT_ACTION)
    async def reject_clicked(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        click = Interaction.of(body)
        runtime.tasks.spawn(on_click(runtime, click, "reject", retry_number(request)), name="approval:reject")


def retry_number(request: AsyncBoltRequest) -> int:
    values = request.headers.get("x-slack-retry-num") or []
    value = values[0] if values else None
    try:
        return ascii_int(value, min=0, max=100, what="X-Slack-Retry-Num") if value is not None else 0
    except UsageError:
        return 0


def clicker_refusal(runtime: Runtime, user: str) -> str | None:
    """Why this clicker cannot count at all, whatever the policy says (even `approvers: [everyone]`)."""
    if not is_slack_user_id(user):
        return "That click does not come from a Slack user; nothing was done."
    identity = runtime.identity
    if not identity.user_id:
        return "The bot has not confirmed its own Slack identity yet (auth.test); nothing was done, try again shortly."
    if user in (identity.user_id, identity.bot_id):
        return "The bot's own account never approves or rejects anything; nothing was done."
    return None


# ---- clicks ---------------------------------------------------------------------------------


async def on_click(runtime: Runtime, click: Interaction, decision: str, retry: int = 0) -> None:
    structlog.contextvars.bind_contextvars(approval=click.value[:40], decision=decision)
    refusal = clicker_refusal(runtime, click.user)
    if refusal is not None:
        log.warning("approval_click_refused", reason=refusal)
        if runtime.approvals.configured:
            actor = click.user if is_slack_user_id(click.user) else "unknown"
            await runtime.approvals.audit_quietly(
                actor, "refused", refusal, detail=shown(click.user), channel=click.channel
            )
        await tell(runtime.slack, click, view.refused_clicker_notice(refusal))
        return
    if not runtime.approvals.configured:
        await tell(runtime.slack, click, view.no_store_notice())
        return
    try:
        approval_id = ascii_int(click.value, min=1, max=MAX_APPROVAL_ID, what="approval id")
    except UsageError:
        await runtime.approvals.audit_quietly(
            click.user, "refused", "not an approval id", detail=shown(click.value), channel=click.channel
        )
        await tell(runtime.slack, click, view.bad_value_notice(click.value))
        return
    engine = runtime.approvals
    act = engine.approve if decision == "approve" else engine.reject
    try:
        if await clicked_elsewhere(runtime, approval_id, click):
            await engine.audit_quietly(
                click.user, "refused", "a button of another message", approval_id=approval_id, channel=click.channel
            )
            await tell(runtime.slack, click, view.other_message_notice())
            return
        outcome = await act(approval_id, click.user, channel=click.channel, retry=retry > 0)
    except StoreUnavailable as exc:
        log.error("approval_click_failed", reason="bot database unreachable", error=str(exc))
        COMMANDS.labels(f"approval.{decision}", "store_down").inc()
        await tell(runtime.slack, click, view.store_down_notice(str(exc)))
        return
    COMMANDS.labels(f"approval.{decision}", outcome.kind).inc()
    log.info(
        "approval_click", outcome=outcome.kind, state=outcome.approval.state if outcome.approval else None, retry=retry
    )
    await show_decision(runtime, outcome, click)
    if outcome.kind == "executed" and outcome.approval is not None and outcome.approval.state == "succeeded":
        try:
            await verify_and_publish(runtime, outcome.approval)
        except Exception as exc:  # the sweep of any replica finishes it (verify_unfinished)
            log.warning("verification_deferred", approval_id=outcome.approval.id, error=describe_error(exc))


async def clicked_elsewhere(runtime: Runtime, approval_id: int, click: Interaction) -> bool:
    """Whether the click names an approval other than the one whose message was clicked: the value is
    the payload's to say, the message is where the button was."""
    approval = await runtime.approvals.get(approval_id)
    if approval is None or approval.message_ts is None:
        return False  # no such approval (the engine says so), or its message is not recorded yet
    return (approval.channel, approval.message_ts) != (click.channel, click.message_ts)


async def show_decision(runtime: Runtime, outcome: Decision, click: Interaction) -> None:
    approval = outcome.approval
    if outcome.kind == "counted" and approval is not None:  # more approvals needed: show who approved so far
        try:
            receipt = await refresh_pending_message(runtime, approval, fallback=(click.channel, click.message_ts))
        except Exception as exc:  # the vote stands; the message is only its picture
            log.warning("approval_message_not_updated", approval_id=approval.id, error=describe_error(exc))
        else:
            if receipt is not None:
                await receipt.wait(DELIVERY_WAIT)
    if outcome.changes_message and approval is not None:
        await publish_outcome(runtime, outcome, click)
    notice = view.decision_notice(outcome)
    if notice is not None:
        await tell(runtime.slack, click, notice, thread_ts=approval.thread_ts if approval else None)


async def publish_outcome(runtime: Runtime, outcome: Decision, click: Interaction) -> None:
    """The message updated and the result in the thread, through the outbox; while the bot's database
    is down, at least the clicked message is replaced through the click's response_url."""
    approval = outcome.approval
    assert approval is not None
    try:
        receipt = await publish_decision(runtime, outcome, click.user, (click.channel, click.message_ts))
    except Exception as exc:
        log.warning("approval_message_via_response_url", error=describe_error(exc))
        if click.response_url:
            try:
                await runtime.slack.respond(click.response_url, view.decided_message(approval), replace_original=True)
            except Exception as again:
                log.warning("approval_message_not_updated", approval_id=approval.id, error=describe_error(again))
        return
    if receipt is not None:
        await receipt.wait(DELIVERY_WAIT)


# ---- /erpgo approvals, /erpgo audit -------------------------------------------------------------


@bot_verbs.bot_verb("approvals", "open approvals, with links to their messages")
async def approvals_verb(runtime: Runtime, inv: Invocation | None, args: list[str]) -> render.Message:
    if args:
        raise UsageError("`approvals` takes no arguments")
    if not runtime.approvals.configured:
        return view.no_store_notice()
    try:
        open_ones = await asyncio.wait_for(runtime.approvals.open_approvals(), LIST_TIMEOUT)
    except (StoreUnavailable, TimeoutError) as exc:
        return view.store_down_notice(str(exc) or "no answer in time")
    now = datetime.now(UTC)
    expired = [a for a in open_ones if a.state == "pending" and a.expires_at <= now]
    if expired:  # take them off the list now; their messages are updated in the background
        runtime.tasks.spawn(expire_and_update(runtime), name="approvals:expire")
        open_ones = [a for a in open_ones if a not in expired]
    links = await runtime.slack.permalinks(
        {a.id: (a.channel, a.message_ts) for a in open_ones[:20] if a.channel and a.message_ts},
        timeout=PERMALINK_TIMEOUT,
    )
    timeouts = {action: remediation.timeout for action, remediation in runtime.registry.remediations.items()}
    try:
        stopped = await asyncio.wait_for(runtime.approvals.needing_attention(open_ones), LIST_TIMEOUT)
    except (StoreUnavailable, TimeoutError):
        stopped = {}
    return view.approvals_list(open_ones, links, runtime.policy, now, timeouts, interrupted=stopped)


def parse_audit_count(args: list[str]) -> int:
    if not args:
        return DEFAULT_AUDIT_ENTRIES
    try:
        if len(args) > 1:
            raise UsageError("more than one argument")
        return ascii_int(args[0], min=1, max=MAX_AUDIT_ENTRIES, what="entries")
    except UsageError:
        raise UsageError(f"`audit` takes one number of entries, 1 to {MAX_AUDIT_ENTRIES}") from None


@bot_verbs.bot_verb("audit", "the newest entries of the audit log (default 20)", usage="[n]")
async def audit_verb(runtime: Runtime, inv: Invocation | None, args: list[str]) -> render.Message:
    count = parse_audit_count(args)
    if not runtime.approvals.configured:
        return view.no_store_notice()
    try:
        entries = await asyncio.wait_for(runtime.approvals.recent_audit(count), LIST_TIMEOUT)
        open_ones = await asyncio.wait_for(runtime.approvals.open_approvals(), LIST_TIMEOUT)
    except (StoreUnavailable, TimeoutError) as exc:
        return view.store_down_notice(str(exc) or "no answer in time")
    return view.audit_list(entries, [a for a in open_ones if a.unreviewed])


@bot_verbs.bot_verb("actions", "every remediation: what it does, who may request and approve it, and its track record")
async def actions_verb(runtime: Runtime, inv: object, args: list[str]) -> dict:
    if args:
        raise UsageError("`actions` takes no arguments")
    policy = runtime.policy
    try:
        await asyncio.wait_for(policy.resolve_all(), LIST_TIMEOUT)
    except TimeoutError:
        pass  # the groups not read in time show as they are known
    return actions_list(runtime.registry, policy, await records_or_none(runtime))


async def records_or_none(runtime: Runtime) -> dict[str, TrackRecord] | None:
    """Every remediation's track record; None without the bot's database or when it is down."""
    if not runtime.approvals.configured:
        return None
    try:
        async with runtime.store.acquire() as conn:
            return await asyncio.wait_for(track_records(conn, list(runtime.registry.remediations)), LIST_TIMEOUT)
    except Exception as exc:  # the list is still worth showing
        log.warning("track_records_not_read", error=describe_error(exc))
        return None
