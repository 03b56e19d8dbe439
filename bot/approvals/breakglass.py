"""Break glass (off by default; a policy rule's `break_glass: {after, veto, review_within}`): when no
approver has acted `after` the request, the requester may press Break glass. A countdown of `veto`
starts, during which anyone allowed to approve may veto; then the action runs — re-checked, verified
and audited as break glass, exactly once whichever replica's sweep claims it — and needs a review by
an approver within `review_within`. Each step is one atomic UPDATE guarded by the state it expects.

Nothing here knows Slack: handlers/break_glass.py shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.approvals.model import Approval, Decision, State
from bot.core.units import short_duration

if TYPE_CHECKING:
    from bot.approvals.engine import Approvals

PRESS = """
UPDATE approvals SET break_glass_at = now(), break_glass_runs_at = now() + make_interval(secs => $3),
    expires_at = greatest(expires_at, now() + make_interval(secs => $3 + 60))
WHERE id = $1 AND requester = $2 AND state = 'pending' AND break_glass_at IS NULL AND expires_at > now()
  AND cardinality(approved_by) = 0 AND created_at + make_interval(secs => $4) <= now()
RETURNING *
"""
VETO = """
UPDATE approvals SET state = 'rejected', vetoed_by = $2, decided_by = $2, decided_at = now(),
    result = 'vetoed during the break-glass countdown'
WHERE id = $1 AND state = 'pending' AND break_glass_runs_at > now()
RETURNING *
"""
CLAIM = """
UPDATE approvals SET state = 'executing', decided_by = requester, decided_at = now(),
    review_due_at = now() + make_interval(secs => $2)
WHERE id = $1 AND state = 'pending' AND break_glass_runs_at <= now()
RETURNING *
"""
REVIEW = """
UPDATE approvals SET reviewed_by = $2, reviewed_at = now()
WHERE id = $1 AND review_due_at IS NOT NULL AND reviewed_by IS NULL
RETURNING *
"""


def press_refusal(engine: Approvals, approval: Approval, user: str) -> str | None:
    """Why `user` may not break glass on `approval` now, or None."""
    glass = engine.policy.break_glass(approval.action)
    if glass is None:
        return f"Break glass is not allowed for `{approval.action}` under {engine.policy.origin}."
    if user != approval.requester:
        return "Only the person who requested it may break glass."
    if approval.state != State.PENDING:
        return f"Approval #{approval.id} is {approval.state} already; nothing was done."
    if approval.break_glass_at is not None:
        return f"The break-glass countdown of #{approval.id} is running already."
    if approval.approved_by:
        return f"An approver has approved #{approval.id} already: it runs when the approvals are complete."
    return None


async def press(engine: Approvals, approval_id: int, user: str, channel: str | None) -> Decision:
    """Start the countdown; refused (with why) unless the rule, the requester and the time allow it."""
    approval = await engine.get(approval_id)
    if approval is None:
        return Decision("missing", reason=f"There is no approval #{approval_id}.")
    refusal = press_refusal(engine, approval, user)
    glass = engine.policy.break_glass(approval.action)
    if refusal is None and glass is not None:
        async with engine._db() as conn, conn.transaction():
            row = await conn.fetchrow(PRESS, approval.id, user, glass.veto, glass.after)
            if row is not None:
                await engine._audit(
                    conn,
                    user,
                    "break_glass",
                    "countdown",
                    approval_id=approval.id,
                    action=approval.action,
                    detail=f"runs in {short_duration(glass.veto)} unless vetoed",
                    channel=channel,
                )
                return Decision("countdown", Approval.from_row(row))
        opens = approval.created_at + timedelta(seconds=glass.after)
        refusal = f"Break glass opens {short_duration(glass.after)} after the request (at {opens:%H:%M:%S} UTC) if no approver acts."
    await engine.audit(user, "refused", refusal or "", approval_id=approval.id, action=approval.action, channel=channel)
    return Decision("refused", approval, reason=refusal or "")


async def veto(engine: Approvals, approval_id: int, user: str, channel: str | None) -> Decision:
    """Anyone allowed to approve it stops the countdown: the approval ends rejected."""
    return await _approver_step(
        engine,
        approval_id,
        user,
        channel,
        Step(
            VETO,
            "vetoed",
            "rejected",
            "Only those who may approve `{action}` ({approvers}) may veto.",
            "There is no break-glass countdown running for #{id}; nothing was done.",
            requester_may=True,
        ),
    )


@dataclass(frozen=True)
class Step:
    """A break-glass step an approver takes: the statement that takes it, how it is audited, and what a
    person is told who may not take it, or when there is nothing to take."""

    statement: str
    event: str
    outcome: str
    not_allowed: str
    nothing: str
    requester_may: bool


async def _approver_step(engine: Approvals, approval_id: int, user: str, channel: str | None, step: Step) -> Decision:
    approval = await engine.get(approval_id)
    if approval is None:
        return Decision("missing", reason=f"There is no approval #{approval_id}.")
    await engine.policy.resolve(user)
    allowed = engine.policy.may_decide(user, approval.action) and (step.requester_may or user != approval.requester)
    facts = {"action": approval.action, "approvers": engine.policy.approvers(approval.action), "id": approval.id}
    if allowed:
        async with engine._db() as conn, conn.transaction():
            row = await conn.fetchrow(step.statement, approval.id, user)
            if row is not None:
                await engine._audit(
                    conn,
                    user,
                    step.event,
                    step.outcome,
                    approval_id=approval.id,
                    action=approval.action,
                    detail=approval.summary,
                    channel=channel,
                )
                return Decision(step.event, Approval.from_row(row))
    reason = (step.nothing if allowed else step.not_allowed).format(**facts)
    await engine.audit(user, "refused", reason, approval_id=approval.id, action=approval.action, channel=channel)
    return Decision("refused", approval, reason=reason)


async def due(engine: Approvals) -> list[int]:
    """Approvals whose countdown ended without a veto."""
    async with engine._db() as conn:
        rows = await conn.fetch(
            "SELECT id FROM approvals WHERE state = 'pending' AND break_glass_runs_at <= now() ORDER BY id"
        )
    return [row["id"] for row in rows]


async def run_due(engine: Approvals, approval_id: int) -> Decision | None:
    """Claim one ended countdown (of all replicas exactly one gets it) and run it as the approval
    engine runs any approval; None when another replica has it."""
    approval = await engine.get(approval_id)
    glass = engine.policy.break_glass(approval.action) if approval else None
    review_within = glass.review_within if glass and glass.review_within else 86400
    async with engine._db() as conn, conn.transaction():
        row = await conn.fetchrow(CLAIM, approval_id, review_within)
        if row is None:
            return None
        claimed = Approval.from_row(row)
        await engine._audit(
            conn,
            claimed.requester,
            "break_glass",
            "executing",
            approval_id=claimed.id,
            action=claimed.action,
            detail=f"no veto: runs without an approver; review due within {short_duration(review_within)}",
            channel=claimed.channel,
        )
    state, result, outcome, follow_ups = await engine._execute(claimed, claimed.requester)
    decision = await engine._finish(claimed, claimed.requester, state, result, outcome, claimed.channel)
    decision.follow_ups = follow_ups
    return decision


async def review(engine: Approvals, approval_id: int, user: str, channel: str | None) -> Decision:
    """An approver (not the requester) reviews what ran under break glass."""
    return await _approver_step(
        engine,
        approval_id,
        user,
        channel,
        Step(
            REVIEW,
            "reviewed",
            "reviewed",
            "A review is by someone who may approve `{action}`, other than the requester.",
            "Approval #{id} has no break-glass run waiting for a review.",
            requester_may=False,
        ),
    )
