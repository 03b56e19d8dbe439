"""Approvals as Slack sees them: each proposal of a report becomes a pending approval whose message is
queued in the report's thread, in the same transaction; decided and expired approvals have their
message updated (buttons gone) and the result replied in that thread.

Everything goes through the outbox (bot/slack/outbox.py). The approval row carries the thread's
outbox key; its message row carries the approval id, so whichever replica sends it records where
the message landed (:func:`approval_delivered`) — nobody waits for Slack to answer. A message still
unsent when its approval is decided is sent showing the decision (:func:`render_approval`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bot.approvals import messages as view
from bot.approvals.model import Approval, Decision, State, StoreUnavailable
from bot.approvals.record import track_records
from bot.approvals.rows import record_message, withdraw_in
from bot.approvals.verify import Verification, unfinished, verify
from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.logs import log
from bot.slack import outbox
from bot.slack.outbox import Receipt, ThreadRows

if TYPE_CHECKING:
    from bot.runtime import Runtime

MAX_APPROVAL_MESSAGES = 10  # per report; the rest are named in a note
EXPIRY_SWEEP_SECONDS = 20
VERIFY_SWEEP_SECONDS = 10  # how soon a verification whose process stopped is finished by another  # how soon an expired approval loses its buttons when nobody clicks
DELIVERY_WAIT = 60.0  # s: how long a click's task waits to see its messages in Slack (they are queued anyway)
APPROVAL = "approval"  # the outbox kind of approval messages and their updates


def message_key(approval_id: int) -> str:
    """The outbox name of an approval's message (what its updates change)."""
    return f"approval:{approval_id}"


def slack_thread_key(channel: str, ts: str) -> str:
    """The outbox key of a thread known only by where it is in Slack (approvals from before thread keys)."""
    return f"slack:{channel}:{ts}"


# ---------------------------------------------------------------------- what the outbox does with them


@outbox.renderer(APPROVAL)
async def render_approval(conn: Any, data: dict, _thread_key: str) -> dict | None:
    """An approval message shows the approval as it is when sent: decided meanwhile → no buttons."""
    row = await conn.fetchrow("SELECT * FROM approvals WHERE id = $1", data["approval_id"])
    if row is None:
        return None
    approval = Approval.from_row(row)
    if approval.state == State.PENDING:
        return None
    verified = await conn.fetchrow("SELECT * FROM verifications WHERE approval_id = $1", approval.id)
    return view.decided_message(approval, Verification.from_row(verified) if verified else None)


@outbox.on_delivery(APPROVAL)
async def approval_delivered(conn: Any, data: dict, delivered: outbox.Delivered) -> None:
    """Sent: remember where the message is. Never sent: withdraw the approval nobody can see."""
    if delivered.op == "update":
        return
    if delivered.ok and delivered.channel and delivered.ts:
        await record_message(conn, data["approval_id"], delivered.channel, delivered.ts, delivered.thread_ts)
    elif not delivered.ok:
        log.error("approval_message_not_posted", approval_id=data["approval_id"], error=delivered.error)
        await withdraw_in(conn, data["approval_id"], "its message could not be posted to Slack")


async def refresh_pending_message(
    runtime: Runtime, approval: Approval, fallback: tuple[str | None, str | None] = (None, None)
) -> Receipt | None:
    """A pending approval's message shown again as it is now (who has approved so far), buttons kept."""
    async with approval_thread(runtime, approval, fallback) as rows:
        if rows is None:
            return None
        records = await track_records(rows.conn, [approval.action]) if rows.conn is not None else {}
        rows.update(
            view.approval_message(approval, runtime.policy, record=records.get(approval.action)),
            kind=APPROVAL,
            data={"approval_id": approval.id},
            key=message_key(approval.id),
        )
    return rows.receipt


# ---------------------------------------------------------------------- proposing


async def queue_proposals(
    runtime: Runtime, rows: ThreadRows, findings: list[Finding], requester: str
) -> list[Approval]:
    """Each proposal of `findings` becomes a pending approval (in `rows`' transaction) and its message a
    reply in `rows`' thread.

    `requester` is the Slack user who ran the command ("alertmanager" for alert triage). Proposals
    nobody may approve under the policy, or without the bot's database, stay text only (they are
    listed in the report's details) and one note in the thread says why.
    """
    pairs = [(finding, proposal) for finding in findings for proposal in finding.proposals]
    if not pairs:
        return []
    if not runtime.approvals.configured or rows.conn is None:
        rows.reply(view.proposals_note([f":information_source: {view.NO_STORE}"]))
        return []
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
    records = await track_records(rows.conn, [p.action for _, p in approvable])
    for finding, proposal in approvable[:MAX_APPROVAL_MESSAGES]:
        approval = await runtime.approvals.propose(
            proposal,
            requester=requester,
            channel=rows.channel,
            target=target_of(finding),
            thread_key=rows.thread_key,
            conn=rows.conn,
        )
        rows.reply(
            view.approval_message(approval, policy, record=records[approval.action]),
            kind=APPROVAL,
            data={"approval_id": approval.id},
            key=message_key(approval.id),
        )
        posted.append(approval)
    if len(approvable) > MAX_APPROVAL_MESSAGES:
        notes.append(
            f"{len(approvable) - MAX_APPROVAL_MESSAGES} more proposals are listed in the details only; "
            "resolve these first and run the check again."
        )
    if notes:
        rows.reply(view.proposals_note(notes))
    return posted


def target_of(finding: Finding) -> list[str]:
    """What the approval is about: the finding's title and details (redacted when stored)."""
    return [finding.title, *finding.details][:12]


# ---------------------------------------------------------------------- deciding


@asynccontextmanager
async def approval_thread(
    runtime: Runtime, approval: Approval, fallback: tuple[str | None, str | None] = (None, None)
) -> AsyncIterator[ThreadRows | None]:
    """The outbox thread of an approval's messages (None when the bot cannot tell where they are).

    `fallback`: (channel, message ts) of the message a click came from."""
    channel = approval.channel or fallback[0]
    message_ts = approval.message_ts or fallback[1]
    thread_key = approval.thread_key
    thread_ts = approval.thread_ts or message_ts
    if thread_key is None and thread_ts and channel:
        thread_key = slack_thread_key(channel, thread_ts)
    if thread_key is None or channel is None:
        yield None
        return
    async with runtime.outbox.thread(thread_key, channel) as rows:
        if rows.conn is not None:
            if approval.thread_key is None and thread_ts:
                await outbox.adopt(rows.conn, thread_key, channel, thread_ts)
            if message_ts:  # known already (a click on it): updates need not wait for the hook's record
                await outbox.adopt(rows.conn, message_key(approval.id), channel, message_ts)
        yield rows


def queue_decided(rows: ThreadRows, approval: Approval) -> None:
    """The approval's message changed to show its decision (the buttons gone)."""
    rows.update(
        view.decided_message(approval), kind=APPROVAL, data={"approval_id": approval.id}, key=message_key(approval.id)
    )


async def publish_decision(
    runtime: Runtime, decision: Decision, clicker: str, fallback: tuple[str | None, str | None]
) -> Receipt | None:
    """A decision in Slack: the message updated, the result replied in the thread (not for an expiry),
    the remediation's follow-up proposals queued as new approvals. None when there is nowhere to post."""
    approval = decision.approval
    assert approval is not None
    async with approval_thread(runtime, approval, fallback) as rows:
        if rows is None:
            return None
        queue_decided(rows, approval)
        if decision.kind != "expired":
            rows.reply(view.thread_result(approval, decision.recorded))
            if decision.follow_ups:
                follow_up = Finding.ok(approval.action, "follow-up", proposals=decision.follow_ups)
                await queue_proposals(runtime, rows, [follow_up], requester=clicker)
    return rows.receipt


async def queue_interrupted(conn: Any, approval: Approval) -> None:
    """In the transaction that records an approval interrupted by a stop: its message loses its buttons
    and its thread says so, delivered by whichever process runs the outbox next (this one, if it can)."""
    channel = approval.channel
    thread_ts = approval.thread_ts or approval.message_ts
    thread_key = approval.thread_key or (slack_thread_key(channel, thread_ts) if channel and thread_ts else None)
    if thread_key is None or channel is None:
        return
    await outbox.lock_thread(conn, thread_key)
    if approval.thread_key is None and thread_ts:
        await outbox.adopt(conn, thread_key, channel, thread_ts)
    if approval.message_ts:
        await outbox.adopt(conn, message_key(approval.id), channel, approval.message_ts)
    rows = ThreadRows(thread_key, channel, conn=conn)
    queue_decided(rows, approval)
    rows.reply(view.thread_result(approval))
    await rows.write(conn)


async def expire_and_update(runtime: Runtime, wait: float = DELIVERY_WAIT) -> list[Approval]:
    """Expire what is overdue (in any replica, each once) and take the buttons off their messages."""
    if not runtime.approvals.configured:
        return []
    try:
        expired = await runtime.approvals.expire_due()
    except StoreUnavailable:
        return []
    receipts = []
    for approval in expired:
        try:
            async with approval_thread(runtime, approval) as rows:
                if rows is not None:
                    queue_decided(rows, approval)
            if rows is not None:
                receipts.append(rows.receipt)
        except Exception as exc:  # the decision stands; the message is only its picture
            log.warning("approval_message_not_updated", approval_id=approval.id, error=describe_error(exc))
    for receipt in receipts:
        await receipt.wait(wait)
    return expired


async def sweep_expired_forever(runtime: Runtime, interval: float = EXPIRY_SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation
        try:
            await expire_and_update(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("expiry_sweep_failed", error=type(exc).__name__)


# ---------------------------------------------------------------------- whether it worked


async def verify_and_publish(runtime: Runtime, approval: Approval, wait: float = DELIVERY_WAIT) -> Verification | None:
    """Judge a succeeded approval (bot/approvals/verify.py), then say how it went in its thread and on
    its message. None when another process verifies it."""
    verification = await verify(runtime.approvals, approval)
    if verification is None:
        return None
    async with approval_thread(runtime, approval) as rows:
        if rows is None:
            return verification
        rows.update(
            view.decided_message(approval, verification),
            kind=APPROVAL,
            data={"approval_id": approval.id},
            key=message_key(approval.id),
        )
        rows.reply(view.verification_reply(approval, verification))
    await rows.receipt.wait(wait)
    return verification


async def verify_unfinished(runtime: Runtime) -> None:
    """Finish the verifications nobody is running (their process stopped), each once across replicas."""
    for approval in await unfinished(runtime.approvals):
        await verify_and_publish(runtime, approval)


async def verify_unfinished_forever(runtime: Runtime, interval: float = VERIFY_SWEEP_SECONDS) -> None:
    while True:
        try:
            await verify_unfinished(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("verification_sweep_failed", error=describe_error(exc))
        await asyncio.sleep(interval)  # a period, not a synchronisation
