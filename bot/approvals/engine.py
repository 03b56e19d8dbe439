"""The approval engine: a destructive step runs only after a second, authorised person approves it,
exactly once, and every step of the way is in the audit log.

State lives in the bot's own PostgreSQL (BOT_DATABASE_URL), so it survives restarts and is shared
by replicas. An approval is pending until someone decides; approving claims it with ONE atomic
state transition

    UPDATE approvals SET state = 'executing' … WHERE id = $1 AND state = 'pending' AND expires_at > now()

so of any number of clicks, retries and replicas exactly one gets the row back and executes. An
action the policy says needs several approvals (`approvals_required`) stays pending while fewer
distinct people have approved; the approval that completes the count is the claim, in the same one
statement (see `VOTE`). The remediation then re-checks the world (it raises Refused when acting would be wrong now) under its
own timeout, and the result is recorded: succeeded or failed. Rejected, expired and cancelled
(withdrawn by the requester) are the other ways out of pending.

Nothing here knows Slack: the handlers turn a Decision into messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg

from bot.approvals.model import OPEN_STATES, VOTE, Approval, AuditEntry, Decision, State, StoreUnavailable
from bot.approvals.policy import Policy
from bot.approvals.rows import record_message, withdraw_in, write_audit
from bot.context import Actor, ApprovalHooks, CheckContext
from bot.core.errors import Backoff, describe_error, unreachable_errors
from bot.core.findings import Proposal
from bot.core.logs import log
from bot.core.redact import redact, redact_any
from bot.core.registry import Failed, Refused, Registry
from bot.settings import Settings
from bot.store.pool import Store
from bot.targets import NotConfigured, Targets

INTERRUPTED = (
    "interrupted: the bot stopped while this ran; it may or may not have taken effect — run the check again to see"
)
RESULT_RECORD_ATTEMPTS = 3
RESULT_RETRY = Backoff(first=0.5, cap=2.0)
RUNNING_LOCK = 7_301_118  # advisory lock class: (RUNNING_LOCK, approval id) is held while it executes
CLAIM_GRACE_S = 5  # executing without its lock for longer than this: the process running it is gone
# a remediation that recorded one of these and is not running any more stopped mid-way: a person decides
UNSETTLED = ("running", "reverting", "revert_failed")


@dataclass
class Approvals:
    store: Store
    registry: Registry
    targets: Targets
    settings: Settings
    policy_of: Callable[[], Policy] = field(default=Policy.default)
    # queues, in the transaction recording an interruption, what Slack must show of it (the message
    # without its buttons, a reply in its thread): a stopping bot may never get to publish it itself
    on_interrupted: Callable[[asyncpg.Connection, Approval], Awaitable[None]] | None = None

    @property
    def policy(self) -> Policy:
        return self.policy_of()

    @property
    def configured(self) -> bool:
        """False without the bot's database (BOT_DATABASE_URL): then nothing can be approved."""
        return bool(self.store.configured)

    # ---- database access ------------------------------------------------------------------

    @asynccontextmanager
    async def _db(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to the bot's database; StoreUnavailable when it is down."""
        try:
            await self.store.ready()
            async with self.store.acquire() as conn:
                yield conn
        except unreachable_errors() as exc:
            log.error("bot_database_unreachable", error=describe_error(exc))
            raise StoreUnavailable(describe_error(exc)) from exc

    @staticmethod
    async def _audit(conn: Any, actor: str, event: str, outcome: str, **kw: Any) -> None:
        await write_audit(conn, actor, event, outcome, **kw)

    async def audit(self, actor: str, event: str, outcome: str, **kw: Any) -> None:
        async with self._db() as conn:
            await self._audit(conn, actor, event, outcome, **kw)

    async def audit_quietly(self, actor: str, event: str, outcome: str, **kw: Any) -> None:
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
            " thread_ts, thread_key, expires_at, approvals_required, verify_scope)"
            " VALUES ($1, $2::jsonb, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, now() + make_interval(secs => $11), $12,"
            " $13::jsonb)"
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
            self.policy.approvals_required(proposal.action),
            json.dumps(redact_any({**proposal.scope, "target": proposal.target_key}), default=str)
            if proposal.scope
            else None,
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
        if claimed is None:  # someone else got there first, it expired in between, or this person voted already
            return await self._vote_not_counted(approval_id, user, channel, retry)
        if claimed.state == "pending":  # counted; more approvals are needed
            return Decision("counted", claimed)
        try:
            state, result, outcome, follow_ups = await self._execute(claimed, user)
        except asyncio.CancelledError:  # the bot is stopping: say so, instead of leaving it 'executing'
            with suppress(Exception):
                finish = self._finish(claimed, user, "failed", INTERRUPTED, "failed", channel, self.on_interrupted)
                await asyncio.wait_for(finish, 5)
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

    async def _vote_not_counted(self, approval_id: int, user: str, channel: str | None, retry: bool) -> Decision:
        current = await self.get(approval_id)
        if current is None or current.state != "pending" or user not in current.approved_by:
            return await self._lost_race(approval_id, user, "approve", channel, retry)
        if retry:
            return Decision("duplicate", current)
        if current.expires_at <= await self._now():
            return await self._expire_one(current, user, "approve", channel)
        reason = (
            f"You have approved #{current.id} already; it needs {current.approvals_missing} more "
            f"approval{'s' if current.approvals_missing != 1 else ''} from other people."
        )
        await self.audit(
            user,
            "refused",
            "already approved by this person",
            approval_id=current.id,
            action=current.action,
            channel=channel,
        )
        return Decision("refused", current, reason=reason)

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
        """THE atomic transition: `user`'s approval counted, and claimed for execution when it is the
        last one needed — of all concurrent votes, exactly one completes the count and gets the row
        back executing. None: not counted (not pending any more, expired, or `user` approved before)."""
        async with self._db() as conn, conn.transaction():
            row = await conn.fetchrow(VOTE, approval_id, user, 1)
            if row:
                done, required = len(row["approved_by"]), row["approvals_required"]
                await self._audit(
                    conn,
                    user,
                    "approved",
                    "executing" if row["state"] == "executing" else f"pending: {done} of {required} approvals",
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
            actor=Actor(approval.requester, approver, approval.id, tuple(approval.approved_by)),
            approval=ApprovalHooks(
                record=partial(self.record_progress, approval.id),
                interrupted=self.interrupted,
                settle_interrupted=partial(self.settle_interrupted, settled_by=approval.id),
            ),
        )
        log.info("remediation_start", approval_id=approval.id, action=approval.action, approver=approver)
        try:
            async with self._running(approval.id):
                line = await asyncio.wait_for(remediation.func(ctx, **approval.args), remediation.timeout)
            return "succeeded", redact(str(line)), "succeeded", list(getattr(line, "proposals", []))
        except Refused as exc:
            return "failed", f"nothing done: {redact(str(exc))}", "nothing done", []
        except Failed as exc:
            return "failed", redact(str(exc)), "failed", exc.proposals
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
        self,
        claimed: Approval,
        user: str,
        state: str,
        result: str,
        outcome: str,
        channel: str | None,
        announce: Callable[[asyncpg.Connection, Approval], Awaitable[None]] | None = None,
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
                    if row and announce is not None:
                        await announce(conn, Approval.from_row(row))
                return Decision("executed", Approval.from_row(row) if row else await self.get(claimed.id))
            except StoreUnavailable:
                if attempt + 1 < RESULT_RECORD_ATTEMPTS:
                    await asyncio.sleep(RESULT_RETRY.delay(attempt))  # before writing the result again
        log.error("approval_result_not_recorded", approval_id=claimed.id, state=state, result=result)
        claimed.state, claimed.result = State(state), result
        return Decision("executed", claimed, recorded=False)

    # ---- a remediation's progress, and remediations that stopped mid-way ----------------------

    @asynccontextmanager
    async def _running(self, approval_id: int) -> AsyncIterator[None]:
        """Hold (RUNNING_LOCK, id) on a connection of its own while the remediation runs: a process
        that dies drops its connection and the lock with it, so others can tell it is not running."""
        key = _lock_key(approval_id)
        async with AsyncExitStack() as stack:
            try:
                await self.store.ready()
                conn = await stack.enter_async_context(self.store.acquire())
                await conn.execute("SELECT pg_try_advisory_lock($1, $2)", RUNNING_LOCK, key)
                stack.push_async_callback(_unlock_quietly, conn, key)
            except Exception as exc:  # the claim was recorded a moment ago: run it anyway, unmarked
                log.warning("running_mark_not_taken", approval_id=approval_id, error=describe_error(exc))
            yield

    async def record_progress(self, approval_id: int, step: str, state: dict[str, Any]) -> None:
        """Store the state a running remediation reports (e.g. each step of a restore) in its row;
        StoreUnavailable when it cannot be written — the remediation then stops rather than act unrecorded."""
        async with self._db() as conn:
            await conn.execute(
                "UPDATE approvals SET progress = $2::jsonb WHERE id = $1",
                approval_id,
                json.dumps(redact_any({"step": step, **state}), default=str),
            )

    async def running_ids(self) -> set[int]:
        """Approvals whose remediation some live bot process is executing now (any replica)."""
        async with self._db() as conn:
            rows = await conn.fetch(
                "SELECT objid::bigint AS key FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid"
                " AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())",
                RUNNING_LOCK,
            )
        return {int(row["key"]) for row in rows}

    async def interrupted(self, approval_id: int) -> Approval | None:
        """The approval if its remediation stopped mid-way and nobody is running it: still executing
        with no live process behind it, or ended with unsettled progress (a revert that failed, a bot
        stopped while it ran). None otherwise."""
        approval = await self.get(approval_id)
        if approval is None or _lock_key(approval.id) in await self.running_ids():
            return None
        return approval if await self._stopped_midway(approval) else None

    async def _stopped_midway(self, approval: Approval) -> bool:
        progress = approval.progress or {}
        if "settled_by" in progress:
            return False
        if approval.state == "executing":
            decided = approval.decided_at or approval.created_at
            return (await self._now() - decided).total_seconds() > CLAIM_GRACE_S
        return progress.get("status") in UNSETTLED

    async def settle_interrupted(self, approval_id: int, result: str, *, settled_by: int) -> Approval | None:
        """Close an interrupted approval with what was found and done since (by approval `settled_by`)."""
        async with self._db() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE approvals SET state = CASE WHEN state = 'executing' THEN 'failed' ELSE state END,"
                " result = left($2, 2000), finished_at = coalesce(finished_at, now()),"
                " progress = coalesce(progress, '{}'::jsonb) || jsonb_build_object('settled_by', $3::bigint)"
                " WHERE id = $1 RETURNING *",
                approval_id,
                redact(result),
                settled_by,
            )
            if row:
                await self._audit(
                    conn,
                    "bot",
                    "executed",
                    "interrupted",
                    approval_id=approval_id,
                    action=row["action"],
                    detail=f"settled by approval #{settled_by}: {result}",
                    channel=row["channel"],
                )
        return Approval.from_row(row) if row else None

    async def needing_attention(self, approvals: list[Approval]) -> dict[int, Approval]:
        """Of `approvals`, those that stopped mid-way with nobody running them, by id."""
        if not approvals:
            return {}
        running = await self.running_ids()
        return {a.id: a for a in approvals if _lock_key(a.id) not in running and await self._stopped_midway(a)}

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
        """Pending and executing approvals, those whose remediation ended unsettled, and those run under
        break glass that no approver has reviewed yet, oldest first."""
        async with self._db() as conn:
            rows = await conn.fetch(
                "SELECT * FROM approvals WHERE state = ANY($1::text[])"
                " OR (progress->>'status' = ANY($3::text[]) AND NOT progress ? 'settled_by')"
                " OR (review_due_at IS NOT NULL AND reviewed_by IS NULL) ORDER BY id LIMIT $2",
                list(OPEN_STATES),
                limit,
                list(UNSETTLED),
            )
        return [Approval.from_row(row) for row in rows]

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` audit entries, newest first."""
        async with self._db() as conn:
            rows = await conn.fetch("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", limit)
        return [AuditEntry(**dict(row)) for row in rows]


def _lock_key(approval_id: int) -> int:
    """The approval's key in the RUNNING_LOCK class (a positive int4)."""
    return approval_id & 0x7FFFFFFF


async def _unlock_quietly(conn: asyncpg.Connection, key: int) -> None:
    with suppress(Exception):  # a connection that broke has dropped the lock already
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", RUNNING_LOCK, key)
