"""Approvals as Slack sees them: each proposal of a report becomes a pending approval posted in the
report's thread; decided and expired approvals have their message updated (buttons gone)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.approvals import messages as view
from bot.approvals.model import Approval, StoreUnavailable
from bot.core.findings import Finding
from bot.core.logs import log

if TYPE_CHECKING:
    from bot.app import Runtime

MAX_APPROVAL_MESSAGES = 10  # per report; the rest are named in a note
EXPIRY_SWEEP_SECONDS = 20  # how soon an expired approval loses its buttons when nobody clicks


async def update_approval_message(
    runtime: Runtime, approval: Approval, fallback: tuple[str | None, str | None] = (None, None)
) -> None:
    channel = approval.channel or fallback[0]
    ts = approval.message_ts or fallback[1]
    if not channel or not ts:
        return
    try:
        await runtime.slack.update(channel, ts, view.decided_message(approval))
    except Exception as exc:  # the decision stands; the message is only its picture
        log.warning("approval_message_not_updated", approval_id=approval.id, error=type(exc).__name__)


async def refresh_pending_message(
    runtime: Runtime, approval: Approval, fallback: tuple[str | None, str | None] = (None, None)
) -> None:
    """A pending approval's message shown again as it is now (who has approved so far), buttons kept."""
    channel = approval.channel or fallback[0]
    ts = approval.message_ts or fallback[1]
    if not channel or not ts:
        return
    try:
        await runtime.slack.update(channel, ts, view.approval_message(approval, runtime.policy))
    except Exception as exc:  # the vote stands; the message is only its picture
        log.warning("approval_message_not_updated", approval_id=approval.id, error=type(exc).__name__)


async def post_quietly(runtime: Runtime, channel: str | None, message: dict, thread_ts: str | None = None) -> None:
    if not channel:
        return
    try:
        await runtime.slack.post(channel, message, thread_ts=thread_ts)
    except Exception as exc:
        log.warning("approval_reply_not_posted", error=type(exc).__name__)


async def post_proposals(
    runtime: Runtime, channel: str, thread_ts: str, findings: list[Finding], requester: str
) -> list[Approval]:
    """Each proposal of `findings` becomes a pending approval posted as its own message in the thread.

    `requester` is the Slack user who ran the command ("alertmanager" for alert triage). Proposals
    nobody may approve under the policy, or without the bot's database, stay text only (they are
    listed in the report's details) and one note in the thread says why.
    """
    pairs = [(finding, proposal) for finding in findings for proposal in finding.proposals]
    if not pairs:
        return []
    if runtime.approvals is None:
        await post_quietly(runtime, channel, view.proposals_note([f":information_source: {view.NO_STORE}"]), thread_ts)
        return []
    await expire_and_update(runtime)
    policy = runtime.policy
    approvable = [(f, p) for f, p in pairs if policy.approvable(p.action)]
    notes = []
    blocked = sorted({p.action for _, p in pairs if not policy.approvable(p.action)})
    if blocked:
        notes.append(
            f":lock: No one may approve {', '.join(f'`{a}`' for a in blocked)} under {policy.origin}: "
            "those proposals are shown as text only."
        )
    posted: list[Approval] = []
    for finding, proposal in approvable[:MAX_APPROVAL_MESSAGES]:
        try:
            approval = await runtime.approvals.propose(
                proposal, requester=requester, channel=channel, thread_ts=thread_ts, target=target_of(finding)
            )
        except StoreUnavailable as exc:
            notes.append(
                f":warning: Could not reach the bot's database ({view.escape(str(exc))}): "
                "the remaining proposals are shown as text only."
            )
            break
        try:
            message = await runtime.slack.post(channel, view.approval_message(approval, policy), thread_ts=thread_ts)
            await runtime.approvals.attach_message(approval.id, channel, message["ts"])
        except Exception as exc:
            log.error("approval_message_not_posted", approval_id=approval.id, error=type(exc).__name__)
            try:
                await runtime.approvals.withdraw(approval.id, "its message could not be posted to Slack")
            except StoreUnavailable:
                pass
            continue
        posted.append(approval)
    if len(approvable) > MAX_APPROVAL_MESSAGES:
        notes.append(
            f"{len(approvable) - MAX_APPROVAL_MESSAGES} more proposals are listed in the details only; "
            "resolve these first and run the check again."
        )
    if notes:
        await post_quietly(runtime, channel, view.proposals_note(notes), thread_ts)
    return posted


def target_of(finding: Finding) -> list[str]:
    """What the approval is about: the finding's title and details (already redacted on storing)."""
    return [finding.title, *finding.details][:12]


async def expire_and_update(runtime: Runtime) -> list[Approval]:
    """Expire what is overdue (in any replica, each once) and take the buttons off their messages."""
    if runtime.approvals is None:
        return []
    try:
        expired = await runtime.approvals.expire_due()
    except StoreUnavailable:
        return []
    for approval in expired:
        await update_approval_message(runtime, approval)
    return expired


async def sweep_expired_forever(runtime: Runtime, interval: float = EXPIRY_SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation
        try:
            await expire_and_update(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("expiry_sweep_failed", error=type(exc).__name__)
