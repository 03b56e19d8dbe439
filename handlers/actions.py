"""Approval buttons, the approval messages in report threads, and `/erpgo approvals` / `/erpgo audit`.

A click is acked at once; the work runs in the background: the engine authorises the clicker
(from the payload, never the bot), claims the approval atomically, executes, records and audits;
then the original message is updated (buttons gone) and the result is replied in its thread.
Only the clicker sees refusals. A Slack retry of a click never executes twice.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import structlog
from slack_sdk.errors import SlackApiError

from bot import approvals_view as view
from bot.approvals import Approval, Decision, StoreUnavailable
from bot.findings import Finding
from bot.logs import log
from bot.metrics import COMMANDS
from bot.registry import UsageError
from handlers.command import builtin_verb

MAX_APPROVAL_MESSAGES = 10  # per report; the rest are named in a note
LIST_TIMEOUT = 1.5  # the builtin verbs answer in the ack: with the permalinks, well inside Slack's 3 s
PERMALINK_TIMEOUT = 0.8
DEFAULT_AUDIT_ENTRIES, MAX_AUDIT_ENTRIES = 20, 100


EXPIRY_SWEEP_SECONDS = 20  # how soon an expired approval loses its buttons when nobody clicks


def register(app, runtime) -> None:
    if runtime.approvals is not None:
        runtime.start_loop(sweep_expired_forever(runtime), name="approvals:expiry")

    @app.action(view.APPROVE_ACTION)
    async def approve_clicked(ack, body, request):
        await ack()
        runtime.tasks.spawn(on_click(runtime, body, "approve", retry_number(request)), name="approval:approve")

    @app.action(view.REJECT_ACTION)
    async def reject_clicked(ack, body, request):
        await ack()
        runtime.tasks.spawn(on_click(runtime, body, "reject", retry_number(request)), name="approval:reject")


def retry_number(request) -> int:
    value = (request.headers.get("x-slack-retry-num") or [None])[0]
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


# ---- clicks ---------------------------------------------------------------------------------

async def on_click(runtime, body: dict, decision: str, retry: int = 0) -> None:
    user = (body.get("user") or {}).get("id", "")
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    value = str(((body.get("actions") or [{}])[0]).get("value") or "")
    structlog.contextvars.bind_contextvars(slack_user=user, approval=value, decision=decision)
    try:
        if runtime.approvals is None:
            await tell(runtime, channel, user, view.no_store_notice(), body)
            return
        if not value.isdigit():
            await runtime.approvals.audit_quietly(user, "refused", "not an approval id", detail=value[:40], channel=channel)
            await tell(runtime, channel, user, view.bad_value_notice(value), body)
            return
        engine = runtime.approvals
        act = engine.approve if decision == "approve" else engine.reject
        try:
            outcome = await act(int(value), user, channel=channel, retry=retry > 0)
        except StoreUnavailable as exc:
            log.error("approval_click_failed", reason="bot database unreachable", error=str(exc))
            COMMANDS.labels(f"approval.{decision}", "store_down").inc()
            await tell(runtime, channel, user, view.store_down_notice(str(exc)), body)
            return
        COMMANDS.labels(f"approval.{decision}", outcome.kind).inc()
        log.info("approval_click", outcome=outcome.kind, state=outcome.approval.state if outcome.approval else None,
                 retry=retry)
        await show_decision(runtime, outcome, channel, user, container.get("message_ts"), body)
    finally:
        structlog.contextvars.unbind_contextvars("slack_user", "approval", "decision")


async def show_decision(runtime, outcome: Decision, channel: str, user: str, clicked_ts: str | None, body: dict) -> None:
    approval = outcome.approval
    if outcome.changes_message and approval is not None:
        await update_approval_message(runtime, approval, fallback=(channel, clicked_ts))
        if outcome.kind != "expired":
            thread_ts = approval.thread_ts or approval.message_ts or clicked_ts
            await post_quietly(runtime, approval.channel or channel, view.thread_result(approval, outcome.recorded),
                               thread_ts=thread_ts)
            if outcome.follow_ups and approval.channel and thread_ts:
                follow_up = Finding.ok(approval.action, "follow-up", proposals=outcome.follow_ups)
                await post_proposals(runtime, approval.channel, thread_ts, [follow_up], requester=user)
    notice = view.decision_notice(outcome)
    if notice is not None:
        await tell(runtime, channel, user, notice, body, thread_ts=approval.thread_ts if approval else None)


async def update_approval_message(runtime, approval: Approval, fallback: tuple[str | None, str | None] = (None, None)) -> None:
    channel = approval.channel or fallback[0]
    ts = approval.message_ts or fallback[1]
    if not channel or not ts:
        return
    try:
        await runtime.slack.update(channel, ts, view.decided_message(approval))
    except Exception as exc:  # the decision stands; the message is only its picture
        log.warning("approval_message_not_updated", approval_id=approval.id, error=type(exc).__name__)


async def post_quietly(runtime, channel: str | None, message: dict, thread_ts: str | None = None) -> None:
    if not channel:
        return
    try:
        await runtime.slack.post(channel, message, thread_ts=thread_ts)
    except Exception as exc:
        log.warning("approval_reply_not_posted", error=type(exc).__name__)


async def tell(runtime, channel: str | None, user: str, message: dict, body: dict | None = None,
               thread_ts: str | None = None) -> None:
    """Only `user` sees it: chat.postEphemeral, or the click's response_url when that fails."""
    try:
        if not channel:
            raise LookupError("no channel")
        await runtime.slack.ephemeral(channel, user, message | ({"thread_ts": thread_ts} if thread_ts else {}))
        return
    except (SlackApiError, LookupError) as exc:
        log.info("ephemeral_via_response_url", reason=type(exc).__name__)
    response_url = (body or {}).get("response_url")
    if response_url:
        try:
            await runtime.slack.respond(response_url, message)
        except Exception as exc:
            log.warning("clicker_not_told", error=type(exc).__name__)


# ---- proposals in a report thread --------------------------------------------------------------

async def post_proposals(runtime, channel: str, thread_ts: str, findings: list[Finding], requester: str) -> list[Approval]:
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
        notes.append(f":lock: No one may approve {', '.join(f'`{a}`' for a in blocked)} under {policy.origin}: "
                     "those proposals are shown as text only.")
    posted: list[Approval] = []
    for finding, proposal in approvable[:MAX_APPROVAL_MESSAGES]:
        try:
            approval = await runtime.approvals.propose(proposal, requester=requester, channel=channel,
                                                       thread_ts=thread_ts, target=target_of(finding))
        except StoreUnavailable as exc:
            notes.append(f":warning: Could not reach the bot's database ({view.escape(str(exc))}): "
                         "the remaining proposals are shown as text only.")
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
        notes.append(f"{len(approvable) - MAX_APPROVAL_MESSAGES} more proposals are listed in the details only; "
                     "resolve these first and run the check again.")
    if notes:
        await post_quietly(runtime, channel, view.proposals_note(notes), thread_ts)
    return posted


def target_of(finding: Finding) -> list[str]:
    """What the approval is about: the finding's title and details (already redacted on storing)."""
    return [finding.title, *finding.details][:12]


async def expire_and_update(runtime) -> list[Approval]:
    """Expire what is overdue (in any replica, each once) and take the buttons off their messages."""
    try:
        expired = await runtime.approvals.expire_due()
    except StoreUnavailable:
        return []
    for approval in expired:
        await update_approval_message(runtime, approval)
    return expired


async def sweep_expired_forever(runtime, interval: float = EXPIRY_SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation
        try:
            await expire_and_update(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("expiry_sweep_failed", error=type(exc).__name__)


# ---- /erpgo approvals, /erpgo audit -------------------------------------------------------------

async def permalinks(runtime, approvals: list[Approval]) -> dict[int, str]:
    async def one(approval: Approval) -> tuple[int, str | None]:
        if not approval.channel or not approval.message_ts:
            return approval.id, None
        try:
            response = await runtime.slack.client.chat_getPermalink(channel=approval.channel, message_ts=approval.message_ts)
            return approval.id, response.get("permalink")
        except Exception:
            return approval.id, None

    try:
        found = await asyncio.wait_for(asyncio.gather(*(one(a) for a in approvals)), PERMALINK_TIMEOUT)
    except (asyncio.TimeoutError, TimeoutError):
        return {}
    return {approval_id: link for approval_id, link in found if link}


@builtin_verb("approvals", "open approvals, with links to their messages")
async def approvals_verb(runtime, inv, args: list[str]):
    if args:
        raise UsageError("`approvals` takes no arguments")
    if runtime.approvals is None:
        return view.no_store_notice()
    try:
        open_ones = await asyncio.wait_for(runtime.approvals.open_approvals(), LIST_TIMEOUT)
    except (StoreUnavailable, asyncio.TimeoutError, TimeoutError) as exc:
        return view.store_down_notice(str(exc) or "no answer in time")
    now = datetime.now(timezone.utc)
    expired = [a for a in open_ones if a.state == "pending" and a.expires_at <= now]
    if expired:  # take them off the list now; their messages are updated in the background
        runtime.tasks.spawn(expire_and_update(runtime), name="approvals:expire")
        open_ones = [a for a in open_ones if a not in expired]
    links = await permalinks(runtime, open_ones[:20])
    timeouts = {action: remediation.timeout for action, remediation in runtime.registry.remediations.items()}
    return view.approvals_list(open_ones, links, runtime.policy, now, timeouts)


def parse_audit_count(args: list[str]) -> int:
    if not args:
        return DEFAULT_AUDIT_ENTRIES
    if len(args) > 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_AUDIT_ENTRIES:
        raise UsageError(f"`audit` takes one number of entries, 1 to {MAX_AUDIT_ENTRIES}")
    return int(args[0])


@builtin_verb("audit", "the newest entries of the audit log (default 20)", usage="[n]")
async def audit_verb(runtime, inv, args: list[str]):
    count = parse_audit_count(args)
    if runtime.approvals is None:
        return view.no_store_notice()
    try:
        entries = await asyncio.wait_for(runtime.approvals.recent_audit(count), LIST_TIMEOUT)
    except (StoreUnavailable, asyncio.TimeoutError, TimeoutError) as exc:
        return view.store_down_notice(str(exc) or "no answer in time")
    return view.audit_list(entries)
