"""The approval engine: a destructive step runs only after a second, authorised person approves it,
exactly once, and every step of the way is in the audit log.

State lives in the bot's own PostgreSQL (BOT_DATABASE_URL), so it survives restarts and is shared
by replicas. An approval is pending until someone decides; approving claims it with ONE atomic
state transition

    UPDATE approvals SET state = 'executing' … WHERE id = $1 AND state = 'pending' AND expires_at > now()

so of any number of clicks, retries and replicas exactly one gets the row back and executes. The
remediation then re-checks the world (it raises Refused when acting would be wrong now) under its
own timeout, and the result is recorded: succeeded or failed. Rejected, expired and cancelled
(withdrawn by the requester) are the other ways out of pending.

Nothing here knows Slack: the handlers turn a Decision into messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from bot.approvals.model import OPEN_STATES, Approval, AuditEntry, Decision, State, StoreUnavailable
from bot.approvals.policy import Policy
from bot.core.engine import CheckContext
from bot.core.errors import UNREACHABLE, Backoff, describe_error
from bot.core.findings import Proposal
from bot.core.logs import log
from bot.core.redact import redact, redact_any
from bot.core.registry import Refused, Registry
from bot.targets import NotConfigured

INTERRUPTED = (
    "interrupted: the bot stopped while this ran; it may or may not have taken effect — run the check again to see"
)
RESULT_RECORD_ATTEMPTS = 3
RESULT_RETRY = Backoff(first=0.5, cap=2.0)


async def write_audit(
    conn,
    actor: str,
    event: str,
    outcome: str,
    *,
    approval_id: int | None = None,
    action: str | None = None,
    detail: str = "",
    channel: str | None = None,
) -> None:
    """One audit log entry, in the caller's transaction (so it exists exactly when what it records does)."""
    await conn.execute(
        "INSERT INTO audit_log (actor, event, approval_id, action, outcome, detail, channel)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        actor,
        event,
        approval_id,
        action,
        redact(outcome)[:500],
        redact(detail)[:2000],
        channel,
    )
    log.info("audit", actor=actor, what=event, approval_id=approval_id, action=action, outcome=outcome)


@dataclass
class Approvals:
    store: Any  # bot.store.pool.Store
    registry: Registry
    targets: Any  # bot.targets.Targets
    settings: Any  # bot.settings.Settings
    policy_of: Callable[[], Policy] = field(default=Policy.default)

    @property
    def policy(self) -> Policy:
        return self.policy_of()

    # ---- database access ------------------------------------------------------------------

    @asynccontextmanager
    async def _db(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to the bot's database; StoreUnavailable when it is down."""
        try:
            await self.store.ready()
            async with self.store.acquire() as conn:
                yield conn
        except UNREACHABLE as exc:
            log.error("bot_database_unreachable", error=describe_error(exc))
            raise StoreUnavailable(describe_error(exc)) from exc

    @staticmethod
    async def _audit(conn, actor: str, event: str, outcome: str, **kw) -> None:
        await write_audit(conn, actor, event, outcome, **kw)

    async def audit(self, actor: str, event: str, outcome: str, **kw) -> None:
        async with self._db() as conn:
            await self._audit(conn, actor, event, outcome, **kw)

    async def audit_quietly(self, actor: str, event: str, outcome: str, **kw) -> None:
        """Audit from a background task: a database that is down is logged, never raised."""
        try:
            await self.audit(actor, event, outcome, **kw)
        except StoreUnavailable:
            log.error("audit_not_recorded", actor=actor, what=event, outcome=outcome, action=kw.get("action"))

    async def get(self, approval_id: int) -> Approval | None:
        async with self._db() as conn:
            row = await conn.fetchrow("SELECT * FROM approvals WHERE id = $1", approval_id)
        return Approval.from_row(row) if row else None

    # ---- proposing --------------------------------------------------------------------------

    async def propose(
        self,
        proposal: Proposal,
        *,
        requester: str,
        channel: str | None = None,
        thread_ts: str | None = None,
        target: list[str] | None = None,
        thread_key: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> Approval:
        """A pending approval for `proposal`, expiring as the policy says; audited as proposed.

        With `conn`, in the caller's transaction (its messages are queued in the same one). What is
        stored is redacted: what the approval shows and what it runs are the stored copy."""
        if conn is not None:
            return await self._propose(conn, proposal, requester, channel, thread_ts, target, thread_key)
        async with self._db() as own, own.transaction():
            return await self._propose(own, proposal, requester, channel, thread_ts, target, thread_key)

    async def _propose(
        self,
        conn: asyncpg.Connection,
        proposal: Proposal,
        requester: str,
        channel: str | None,
        thread_ts: str | None,
        target: list[str] | None,
        thread_key: str | None,
    ) -> Approval:
        expiry = self.policy.expiry(proposal.action).total_seconds()
        row = await conn.fetchrow(
            "INSERT INTO approvals (action, args, summary, reason, preview, target, requester, channel,"
            " thread_ts, thread_key, expires_at)"
            " VALUES ($1, $2::jsonb, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, now() + make_interval(secs => $11))"
            " RETURNING *",
            proposal.action,
            json.dumps(redact_any(proposal.args), default=str),
            redact(proposal.summary),
            redact(proposal.reason),
            redact(proposal.preview),
            json.dumps(redact_any(list(target or []))),
            requester,
            channel,
            thread_ts,
            thread_key,
            expiry,
        )
        await self._audit(
            conn,
            requester,
            "proposed",
            "pending",
            approval_id=row["id"],
            action=proposal.action,
            detail=proposal.summary,
            channel=channel,
        )
        return Approval.from_row(row)

    async def attach_message(self, approval_id: int, channel: str, message_ts: str) -> None:
        """Remember where the approval's message is, so a click anywhere can update it."""
        async with self._db() as conn:
            await record_message(conn, approval_id, channel, message_ts, None)

    async def withdraw(self, approval_id: int, why: str) -> None:
        """Cancel an approval the bot could not show to anyone (its message failed to post)."""
        async with self._db() as conn, conn.transaction():
            await withdraw_in(conn, approval_id, why)

    # ---- deciding ---------------------------------------------------------------------------

    def authorise(self, approval: Approval, user: str) -> str | None:
        """Why `user` may not approve this approval, or None: the clicker counts, never the bot."""
        return self.policy.approval_refusal(user, approval.action, approval.requester)

    async def approve(
        self, approval_id: int, user: str, *, channel: str | None = None, retry: bool = False
    ) -> Decision:
        """Authorise, claim atomically, execute under the remediation's timeout, record, audit."""
        approval = await self.get(approval_id)
        early = await self._not_decidable(approval, approval_id, user, "approve", channel, retry)
        if early is not None or approval is None:
            return early or Decision("missing")
        await self.policy.resolve(user)
        refusal = self.authorise(approval, user)
        if refusal:
            await self.audit(user, "refused", refusal, approval_id=approval.id, action=approval.action, channel=channel)
            return Decision("refused", approval, reason=refusal)
        claimed = await self._claim(approval.id, user, channel)
        if claimed is None:  # someone else got there first, or it expired in between
            return await self._lost_race(approval_id, user, "approve", channel, retry)
        try:
            state, result, outcome, follow_ups = await self._execute(claimed, user)
        except asyncio.CancelledError:  # the bot is stopping: say so, instead of leaving it 'executing'
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._finish(claimed, user, "failed", INTERRUPTED, "failed", channel), 5)
            raise
        decision = await self._finish(claimed, user, state, result, outcome, channel)
        decision.follow_ups = follow_ups
        return decision

    async def reject(self, approval_id: int, user: str, *, channel: str | None = None, retry: bool = False) -> Decision:
        """An approver rejects it; the requester clicking Reject withdraws (cancels) it."""
        approval = await self.get(approval_id)
        early = await self._not_decidable(approval, approval_id, user, "reject", channel, retry)
        if early is not None or approval is None:
            return early or Decision("missing")
        await self.policy.resolve(user)
        if user == approval.requester:
            new_state, event = "cancelled", "cancelled"
        elif self.policy.may_decide(user, approval.action):
            new_state, event = "rejected", "rejected"
        else:
            refusal = (
                f"You may not reject `{approval.action}`: {self.policy.origin} allows "
                f"{self.policy.approvers(approval.action)} (and the requester) only."
            )
            await self.audit(user, "refused", refusal, approval_id=approval.id, action=approval.action, channel=channel)
            return Decision("refused", approval, reason=refusal)
        async with self._db() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE approvals SET state = $2, decided_by = $3, decided_at = now()"
                " WHERE id = $1 AND state = 'pending' AND expires_at > now() RETURNING *",
                approval.id,
                new_state,
                user,
            )
            if row:
                await self._audit(
                    conn,
                    user,
                    event,
                    new_state,
                    approval_id=approval.id,
                    action=approval.action,
                    detail=approval.summary,
                    channel=channel,
                )
        if row is None:
            return await self._lost_race(approval_id, user, "reject", channel, retry)
        return Decision(event, Approval.from_row(row))

    async def _not_decidable(
        self, approval: Approval | None, approval_id: int, user: str, verb: str, channel: str | None, retry: bool
    ) -> Decision | None:
        """Missing, already decided, or expired: the Decision that ends the click here."""
        if approval is None:
            await self.audit(user, "refused", "no such approval", approval_id=approval_id, channel=channel)
            return Decision("missing", reason=f"There is no approval #{approval_id}.")
        if approval.state != "pending":
            return await self._already(approval, user, verb, channel, retry)
        if approval.expires_at <= await self._now():
            return await self._expire_one(approval, user, verb, channel)
        return None

    async def _lost_race(self, approval_id: int, user: str, verb: str, channel: str | None, retry: bool) -> Decision:
        current = await self.get(approval_id)
        if current is None:
            return Decision("missing", reason=f"There is no approval #{approval_id}.")
        if current.state == "pending":  # still pending, so the claim failed on expiry
            return await self._expire_one(current, user, verb, channel)
        return await self._already(current, user, verb, channel, retry)

    async def _already(self, approval: Approval, user: str, verb: str, channel: str | None, retry: bool) -> Decision:
        if retry and approval.decided_by == user:
            log.info("slack_retry_ignored", approval_id=approval.id, state=approval.state)
            return Decision("duplicate", approval)
        if approval.state == "expired":
            # refused like any late click; the message is updated again in case it still shows buttons
            await self.audit(
                user, "refused", "expired", approval_id=approval.id, action=approval.action, channel=channel
            )
            return Decision("expired", approval)
        await self.audit(
            user,
            "refused",
            f"already handled ({approval.state})",
            approval_id=approval.id,
            action=approval.action,
            detail=f"{verb} clicked",
            channel=channel,
        )
        return Decision("handled", approval)

    async def _expire_one(self, approval: Approval, user: str, verb: str, channel: str | None) -> Decision:
        async with self._db() as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "UPDATE approvals SET state = 'expired', decided_at = now(), result = 'expired before anyone approved it'"
                    " WHERE id = $1 AND state = 'pending' AND expires_at <= now() RETURNING *",
                    approval.id,
                )
                if row:
                    await self._audit(
                        conn,
                        "bot",
                        "expired",
                        "expired",
                        approval_id=approval.id,
                        action=approval.action,
                        detail=approval.summary,
                        channel=approval.channel,
                    )
                await self._audit(
                    conn,
                    user,
                    "refused",
                    "expired",
                    approval_id=approval.id,
                    action=approval.action,
                    detail=f"{verb} clicked",
                    channel=channel,
                )
        return Decision("expired", Approval.from_row(row) if row else await self.get(approval.id))

    async def _claim(self, approval_id: int, user: str, channel: str | None) -> Approval | None:
        """THE atomic transition: of all concurrent claims, exactly one gets the row."""
        async with self._db() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE approvals SET state = 'executing', decided_by = $2, decided_at = now()"
                " WHERE id = $1 AND state = 'pending' AND expires_at > now() RETURNING *",
                approval_id,
                user,
            )
            if row:
                await self._audit(
                    conn,
                    user,
                    "approved",
                    "executing",
                    approval_id=approval_id,
                    action=row["action"],
                    detail=row["summary"],
                    channel=channel,
                )
        return Approval.from_row(row) if row else None

    async def _execute(self, approval: Approval, approver: str) -> tuple[str, str, str, list]:
        """Run the remediation under its timeout: (state, result line, audit outcome, follow-up proposals)."""
        remediation = self.registry.remediations.get(approval.action)
        if remediation is None:
            return "failed", f"this bot has no remediation called {approval.action}", "failed", []
        ctx = CheckContext(
            self.targets,
            self.settings,
            {"approval_id": approval.id, "requester": approval.requester, "approver": approver},
        )
        log.info("remediation_start", approval_id=approval.id, action=approval.action, approver=approver)
        try:
            line = await asyncio.wait_for(remediation.func(ctx, **approval.args), remediation.timeout)
            return "succeeded", redact(str(line)), "succeeded", list(getattr(line, "proposals", []))
        except Refused as exc:
            return "failed", f"nothing done: {redact(str(exc))}", "nothing done", []
        except NotConfigured as exc:
            return "failed", f"nothing done: {exc}", "nothing done", []
        except TimeoutError:
            return (
                "failed",
                f"no answer within {remediation.timeout:g} s; it may or may not have taken effect — "
                "run the check again to see",
                "failed",
                [],
            )
        except Exception as exc:  # the result of an approval is always recorded, never raised
            return "failed", describe_error(exc), "failed", []

    async def _finish(
        self, claimed: Approval, user: str, state: str, result: str, outcome: str, channel: str | None
    ) -> Decision:
        log.info("remediation_done", approval_id=claimed.id, action=claimed.action, outcome=outcome, result=result)
        for attempt in range(RESULT_RECORD_ATTEMPTS):
            try:
                async with self._db() as conn, conn.transaction():
                    row = await conn.fetchrow(
                        "UPDATE approvals SET state = $2, result = $3, finished_at = now()"
                        " WHERE id = $1 AND state = 'executing' RETURNING *",
                        claimed.id,
                        state,
                        redact(result)[:2000],
                    )
                    await self._audit(
                        conn,
                        user,
                        "executed",
                        outcome,
                        approval_id=claimed.id,
                        action=claimed.action,
                        detail=result,
                        channel=channel,
                    )
                return Decision("executed", Approval.from_row(row) if row else await self.get(claimed.id))
            except StoreUnavailable:
                if attempt + 1 < RESULT_RECORD_ATTEMPTS:
                    await asyncio.sleep(RESULT_RETRY.delay(attempt))  # before writing the result again
        log.error("approval_result_not_recorded", approval_id=claimed.id, state=state, result=result)
        claimed.state, claimed.result = State(state), result
        return Decision("executed", claimed, recorded=False)

    # ---- housekeeping and listing -----------------------------------------------------------

    async def _now(self) -> datetime:
        async with self._db() as conn:
            return await conn.fetchval("SELECT now()")

    async def expire_due(self) -> list[Approval]:
        """Mark every pending approval past its expiry as expired; returns them (to update messages)."""
        async with self._db() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "UPDATE approvals SET state = 'expired', decided_at = now(), result = 'expired before anyone approved it'"
                    " WHERE state = 'pending' AND expires_at <= now() RETURNING *"
                )
                for row in rows:
                    await self._audit(
                        conn,
                        "bot",
                        "expired",
                        "expired",
                        approval_id=row["id"],
                        action=row["action"],
                        detail=row["summary"],
                        channel=row["channel"],
                    )
        return [Approval.from_row(row) for row in rows]

    async def open_approvals(self, limit: int = 50) -> list[Approval]:
        """Pending and executing approvals, oldest first."""
        async with self._db() as conn:
            rows = await conn.fetch(
                "SELECT * FROM approvals WHERE state = ANY($1::text[]) ORDER BY id LIMIT $2", list(OPEN_STATES), limit
            )
        return [Approval.from_row(row) for row in rows]

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` audit entries, newest first."""
        async with self._db() as conn:
            rows = await conn.fetch("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", limit)
        return [AuditEntry(**dict(row)) for row in rows]


# ---- what the outbox records when an approval's message is sent or given up (its delivery hook) ----


async def record_message(
    conn: asyncpg.Connection, approval_id: int, channel: str, message_ts: str, thread_ts: str | None
) -> None:
    """Where the approval's message is (and the thread it is in), so a click anywhere can update it."""
    await conn.execute(
        "UPDATE approvals SET channel = $2, message_ts = $3, thread_ts = coalesce($4, thread_ts) WHERE id = $1",
        approval_id,
        channel,
        message_ts,
        thread_ts,
    )


async def withdraw_in(conn: asyncpg.Connection, approval_id: int, why: str) -> None:
    """Cancel a pending approval in the caller's transaction, audited as the bot's doing."""
    row = await conn.fetchrow(
        "UPDATE approvals SET state = 'cancelled', decided_by = 'bot', decided_at = now(), result = $2"
        " WHERE id = $1 AND state = 'pending' RETURNING action, channel",
        approval_id,
        redact(why),
    )
    if row:
        await Approvals._audit(
            conn,
            "bot",
            "cancelled",
            "cancelled",
            approval_id=approval_id,
            action=row["action"],
            detail=why,
            channel=row["channel"],
        )
