"""What an approval is: its states, the approval row, audit entries, and what a click came to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg


class State(StrEnum):
    """An approval's life: pending until decided; executing once claimed; then how it ended."""

    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # withdrawn: the requester rejected it, or the bot did


OPEN_STATES = (State.PENDING, State.EXECUTING)


class StoreUnavailable(Exception):
    """The bot's database could not be reached; nothing was changed."""


@dataclass
class Approval:
    id: int
    action: str
    args: dict[str, Any]
    summary: str
    reason: str
    preview: str
    target: list[str]
    requester: str
    channel: str | None
    message_ts: str | None
    thread_ts: str | None
    state: State
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    finished_at: datetime | None
    result: str | None
    approvals_required: int = 1  # distinct people who must approve before it runs
    approved_by: list[str] = field(default_factory=list)  # who approved so far, in order
    progress: dict[str, Any] | None = None  # the last state a running remediation recorded (a restore's step)
    thread_key: str | None = None  # the outbox thread its messages go to
    verify_scope: dict[str, Any] | None = None  # the check that proposed it (bot.core.scope) and its target
    break_glass_at: datetime | None = None  # the requester pressed Break glass: the countdown started
    break_glass_runs_at: datetime | None = None  # it runs then unless someone vetoes
    vetoed_by: str | None = None
    review_due_at: datetime | None = None  # ran under break glass: an approver reviews it by then
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Approval:
        values = dict(row)
        for key in ("args", "target", "progress", "verify_scope"):
            if isinstance(values.get(key), str):
                values[key] = json.loads(values[key])
        values["state"] = State(values["state"])
        values["approved_by"] = list(values.get("approved_by") or [])
        return cls(**values)

    @property
    def unreviewed(self) -> bool:
        """Ran under break glass and no approver has reviewed it yet."""
        return self.review_due_at is not None and self.reviewed_by is None

    @property
    def approvals_missing(self) -> int:
        return max(0, self.approvals_required - len(self.approved_by))


@dataclass
class AuditEntry:
    id: int
    at: datetime
    actor: str
    event: str
    approval_id: int | None
    action: str | None
    outcome: str
    detail: str
    channel: str | None


@dataclass
class Decision:
    """What a click came to.

    kind: executed (result in approval.state / .result), rejected, cancelled, expired (all three
    change the approval message), counted (an approval recorded, more are needed: the message
    shows who approved so far and keeps its buttons), refused (policy said no, or this person has
    approved already: `reason`), handled (someone got there first: the approval as it is now),
    duplicate (a Slack retry of a click already acted on), missing (no such approval).
    """

    kind: str
    approval: Approval | None = None
    reason: str = ""
    recorded: bool = True  # False: executed, but the result could not be written back
    follow_ups: list = field(default_factory=list)  # Proposals the remediation offers next (e.g. a revert)

    @property
    def changes_message(self) -> bool:
        return self.kind in ("executed", "rejected", "cancelled", "expired")


# One vote; the one that completes the count also claims the approval ($3: what the policy requires now).
VOTE = """
UPDATE approvals SET
    approved_by = approved_by || $2::text,
    approvals_required = greatest(approvals_required, $3),
    state = CASE WHEN cardinality(approved_by) + 1 >= greatest(approvals_required, $3) THEN 'executing' ELSE state END,
    decided_by = CASE WHEN cardinality(approved_by) + 1 >= greatest(approvals_required, $3) THEN $2 ELSE decided_by END,
    decided_at = CASE WHEN cardinality(approved_by) + 1 >= greatest(approvals_required, $3) THEN now() ELSE decided_at END
WHERE id = $1 AND state = 'pending' AND expires_at > now() AND NOT ($2 = ANY (approved_by))
RETURNING *
"""
