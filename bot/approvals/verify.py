"""Whether an action worked: after an approval's remediation succeeded, the world gets the
remediation's settle time, then is judged — by default by the check that proposed it, run again on
the same target (the same verb arguments and alert): the action is verified when that check no longer
proposes it for that target, not fixed when it still does.

A verification is a row of `verifications`, claimed with one atomic statement under a lease, so of
several replicas exactly one runs it, and one whose process stopped (its lease ran out) is finished
by whichever replica sweeps next. It is recorded with the approval and in the audit log.

Nothing here knows Slack: bot/approvals/publish.py shows the result."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.approvals.model import Approval, State
from bot.context import Actor, AlertScope, CheckContext
from bot.core.engine import run_check
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.logs import log
from bot.core.redact import redact
from bot.core.registry import Remediation, Verdict
from bot.core.scope import args_of

if TYPE_CHECKING:
    from bot.approvals.engine import Approvals

LOOK_AGAIN_S = 1.0  # between two looks while the action settles
LEASE_MARGIN_S = 30.0  # beyond the settle time and two check timeouts
STALE_AFTER = "1 hour"  # an action that succeeded longer ago than this is not verified any more
UNCLAIMED_GRACE_S = 10  # a verification nobody has started this long after its action: another replica takes it
WORDS = {"verified": "verified", "not_fixed": "not fixed", "unverified": "could not tell"}

CLAIM = """
INSERT INTO verifications (approval_id, action, before, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (approval_id) DO UPDATE SET lease_until = EXCLUDED.lease_until
    WHERE verifications.state = 'running' AND verifications.lease_until < now()
RETURNING *
"""

UNFINISHED = f"""
SELECT a.* FROM approvals a LEFT JOIN verifications v ON v.approval_id = a.id
WHERE a.state = 'succeeded' AND a.finished_at > now() - interval '{STALE_AFTER}'
  AND ((v.approval_id IS NULL AND a.finished_at < now() - make_interval(secs => $1))
       OR (v.state = 'running' AND v.lease_until < now()))
ORDER BY a.id
"""


@dataclass
class Verification:
    approval_id: int
    action: str
    state: str  # running | verified | not_fixed | unverified
    before: str
    after: str
    next_step: str
    started_at: datetime
    lease_until: datetime
    finished_at: datetime | None
    alert_resolved_at: datetime | None
    alert_noted_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Verification:
        return cls(**dict(row))

    @property
    def words(self) -> str:
        return WORDS.get(self.state, self.state)


async def verify(engine: Approvals, approval: Approval) -> Verification | None:
    """Claim the verification of a succeeded approval, judge it once settled, record and audit it.
    None when there is nothing to verify, or another process has it (or had it) already."""
    remediation = engine.registry.remediations.get(approval.action)
    if remediation is None or approval.state != State.SUCCEEDED:
        return None
    lease = remediation.settle.at_least + remediation.settle.at_most + 2 * engine.settings.erpgo_check_timeout
    async with engine._db() as conn:
        claimed = await conn.fetchrow(
            CLAIM, approval.id, approval.action, redact(before_of(approval)), lease + LEASE_MARGIN_S
        )
    if claimed is None:
        return None
    log.info("verification_start", approval_id=approval.id, action=approval.action)
    try:
        verdict = await settled_verdict(engine, approval, remediation)
    except asyncio.CancelledError:  # the bot is stopping: another replica, or the next start, finishes it
        with suppress(Exception):
            await asyncio.wait_for(give_back(engine, approval.id), 2)
        raise
    return await record(engine, approval, verdict)


async def give_back(engine: Approvals, approval_id: int) -> None:
    async with engine._db() as conn:
        await conn.execute(
            "UPDATE verifications SET lease_until = now() WHERE approval_id = $1 AND state = 'running'", approval_id
        )


def before_of(approval: Approval) -> str:
    """What the proposing check saw: the title of the finding the approval is about."""
    return approval.target[0] if approval.target else approval.summary


async def settled_verdict(engine: Approvals, approval: Approval, remediation: Remediation) -> Verdict:
    """Look after `settle.at_least`, then again while it cannot tell yet, until `settle.at_most` after
    the action."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + remediation.settle.at_most
    await asyncio.sleep(remediation.settle.at_least)  # the world changing, not a synchronisation
    while True:
        verdict = await judge(engine, approval, remediation)
        if verdict.fixed is not None or loop.time() >= deadline:
            return verdict
        await asyncio.sleep(LOOK_AGAIN_S)


def context_for(engine: Approvals, approval: Approval) -> CheckContext:
    scope = approval.verify_scope or {}
    return CheckContext(
        engine.targets,
        engine.settings,
        args=args_of(scope),
        actor=Actor(approval.requester, approval.decided_by or "", approval.id, tuple(approval.approved_by)),
        alert=alert_of(scope),
    )


def alert_of(scope: dict[str, Any]) -> AlertScope | None:
    alert = scope.get("alert")
    if not isinstance(alert, dict):
        return None
    since = alert.get("since")
    return AlertScope(
        tuple(alert.get("names") or ()),
        dict(alert.get("labels") or {}),
        datetime.fromisoformat(since) if since else None,
    )


async def judge(engine: Approvals, approval: Approval, remediation: Remediation) -> Verdict:
    """The remediation's own verification, or its proposing check run again; never raises."""
    ctx = context_for(engine, approval)
    try:
        if remediation.verify is not None:
            return await asyncio.wait_for(remediation.verify(ctx, **approval.args), ctx.check_timeout * 2)
        scope = approval.verify_scope or {}
        check = engine.registry.checks.get(str(scope.get("check", "")))
        if check is None:
            return Verdict(None, "nothing to run again: no check proposed it")
        return verdict_of(await run_check(check, ctx), approval.action, str(scope.get("target", "")))
    except Exception as exc:  # a verification is always recorded, never raised
        return Verdict(None, f"the verification could not run: {describe_error(exc)}")


def verdict_of(findings: list[Finding], action: str, target: str) -> Verdict:
    """Not fixed while the check still proposes the action for the same target; could not tell when
    the check itself failed; verified otherwise, with what the check says now."""
    for finding in findings:
        for proposal in finding.proposals:
            if proposal.action == action and proposal.target_key == target:
                return Verdict(False, finding.title, next_step(finding, proposal.reason))
    failed = [f for f in findings if f.status == Status.ERROR]
    if failed:
        return Verdict(None, f"the check could not tell: {failed[0].title}")
    ordered = sorted(findings, key=lambda f: -f.status.rank)
    return Verdict(True, ordered[0].title if ordered else "nothing to report")


def next_step(finding: Finding, reason: str) -> str:
    """Why the check still proposes it, or what it saw besides its title."""
    seen = [line for line in finding.details if line.strip() and line != finding.title]
    return reason or (seen[0] if seen else "run the check again and read its details")


async def record(engine: Approvals, approval: Approval, verdict: Verdict) -> Verification | None:
    """The verdict in the verification's row and the audit log, in one transaction."""
    state = {True: "verified", False: "not_fixed", None: "unverified"}[verdict.fixed]
    async with engine._db() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE verifications SET state = $2, after = left($3, 500), next_step = left($4, 500),"
            " finished_at = now() WHERE approval_id = $1 AND state = 'running' RETURNING *",
            approval.id,
            state,
            redact(verdict.after),
            redact(verdict.next_step),
        )
        if row is None:
            return None
        verification = Verification.from_row(row)
        await engine._audit(
            conn,
            "bot",
            "verified",
            verification.words,
            approval_id=approval.id,
            action=approval.action,
            detail=f"{verification.before} → {verification.after}",
            channel=approval.channel,
        )
    log.info("verification_done", approval_id=approval.id, action=approval.action, outcome=state)
    return verification


async def unfinished(engine: Approvals) -> list[Approval]:
    """Succeeded approvals whose verification nobody started, or whose process stopped mid-way."""
    async with engine._db() as conn:
        rows = await conn.fetch(UNFINISHED, UNCLAIMED_GRACE_S)
    return [Approval.from_row(row) for row in rows]


async def verification_of(engine: Approvals, approval_id: int) -> Verification | None:
    async with engine._db() as conn:
        row = await conn.fetchrow("SELECT * FROM verifications WHERE approval_id = $1", approval_id)
    return Verification.from_row(row) if row else None
