"""Break glass, Veto and Mark reviewed on approval messages, and the sweep that runs a countdown that
ended without a veto (bot/approvals/breakglass.py) — in every replica, each countdown run once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.approvals import breakglass, glass_view
from bot.approvals import messages as view
from bot.approvals.model import Approval, Decision, StoreUnavailable
from bot.approvals.publish import (
    DELIVERY_WAIT,
    approval_thread,
    publish_decision,
    queue_decided,
    refresh_pending_message,
    verify_and_publish,
)
from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.parse import ascii_int, is_slack_user_id
from bot.core.registry import UsageError
from bot.runtime import Runtime
from bot.slack.interaction import Interaction, tell

SWEEP_SECONDS = 1.0  # how late after its countdown a break glass runs, at most
Act = Callable[[Any, int, str, str | None], Awaitable[Decision]]
ACTS: dict[str, Act] = {
    glass_view.BREAK_GLASS_ACTION: breakglass.press,
    glass_view.VETO_ACTION: breakglass.veto,
    glass_view.REVIEW_ACTION: breakglass.review,
}


def register(app: AsyncApp, runtime: Runtime) -> None:
    if runtime.approvals.configured:
        runtime.start_loop(run_countdowns_forever(runtime), name="approvals:break-glass")
    for action_id in ACTS:
        app.action(action_id)(clicked_handler(runtime, action_id))


def clicked_handler(runtime: Runtime, action_id: str) -> Callable[..., Awaitable[None]]:
    async def clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        runtime.tasks.spawn(on_click(runtime, Interaction.of(body), action_id), name=action_id)

    return clicked


async def on_click(runtime: Runtime, click: Interaction, action_id: str) -> None:
    if not is_slack_user_id(click.user) or not runtime.approvals.configured:
        await tell(runtime.slack, click, view.refused_clicker_notice("That click cannot be taken; nothing was done."))
        return
    try:
        approval_id = ascii_int(click.value, min=1, max=2**63 - 1, what="approval id")
        decision = await ACTS[action_id](runtime.approvals, approval_id, click.user, click.channel)
    except UsageError:
        await tell(runtime.slack, click, view.bad_value_notice(click.value))
        return
    except StoreUnavailable as exc:
        await tell(runtime.slack, click, view.store_down_notice(str(exc)))
        return
    log.info("break_glass_click", action=action_id, outcome=decision.kind)
    if decision.kind in ("refused", "missing") or decision.approval is None:
        await tell(runtime.slack, click, view.refused_clicker_notice(decision.reason))
        return
    await show(runtime, decision.approval, decision.kind, (click.channel, click.message_ts))


async def show(runtime: Runtime, approval: Approval, kind: str, fallback: tuple[str | None, str | None]) -> None:
    """The message redrawn and the thread told: a countdown, a veto, a review."""
    if kind == "countdown":
        receipt = await refresh_pending_message(runtime, approval, fallback)
        async with approval_thread(runtime, approval, fallback) as rows:
            if rows is not None:
                rows.reply(glass_view.countdown_reply(approval, runtime.policy))
        for waiting in (receipt, rows.receipt if rows is not None else None):
            if waiting is not None:
                await waiting.wait(DELIVERY_WAIT)
        return
    reply = glass_view.vetoed_reply(approval) if kind == "vetoed" else glass_view.reviewed_reply(approval)
    async with approval_thread(runtime, approval, fallback) as rows:
        if rows is not None:
            queue_decided(rows, approval)
            rows.reply(reply)
    if rows is not None:
        await rows.receipt.wait(DELIVERY_WAIT)


async def run_countdowns(runtime: Runtime) -> None:
    """Run every countdown that ended without a veto, then say how it went and verify it."""
    for approval_id in await breakglass.due(runtime.approvals):
        decision = await breakglass.run_due(runtime.approvals, approval_id)
        if decision is None or decision.approval is None:
            continue  # another replica runs it
        approval = decision.approval
        await publish_decision(runtime, decision, approval.requester, (approval.channel, approval.message_ts))
        if approval.state == "succeeded":
            await verify_and_publish(runtime, approval)


async def run_countdowns_forever(runtime: Runtime, interval: float = SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation
        try:
            await run_countdowns(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("break_glass_sweep_failed", error=describe_error(exc))
