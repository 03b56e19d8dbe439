"""Alert threads close the loop too: an action that succeeded in an alert's thread is credited when
the alert group resolves within ERPGO_VERIFY_WINDOW of its approval ("resolved 38 s after
`db.terminate` approved by …"); still firing when the window ends, the thread is told so, once.

A sweep of every replica looks for both; the note is claimed (verifications.alert_noted_at) in the
same transaction that queues its message, so it is said exactly once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.approvals.model import Approval
from bot.approvals.publish import approval_thread
from bot.approvals.record import duration
from bot.core.errors import describe_error
from bot.core.logs import log
from bot.slack import render
from bot.slack.render import escape, mention

if TYPE_CHECKING:
    from bot.runtime import Runtime

SWEEP_SECONDS = 2.0  # how soon a resolution is credited in the thread

# Approvals in alert threads whose verdict on the alert is due: resolved within the window, or the
# window over without that. (its row, the group's resolution time when it resolved in time)
DUE = """
SELECT a.*, CASE WHEN in_time THEN g.resolved_at END AS credited_at
FROM verifications v JOIN approvals a ON a.id = v.approval_id JOIN alert_groups g ON g.thread_key = a.thread_key,
     LATERAL (SELECT g.status = 'resolved' AND g.resolved_at >= a.decided_at
                     AND g.resolved_at <= a.decided_at + make_interval(secs => $1) AS in_time) AS t
WHERE v.alert_noted_at IS NULL AND a.state = 'succeeded'
  AND (in_time OR a.decided_at + make_interval(secs => $1) < now())
ORDER BY a.id
"""
NOTE = """
UPDATE verifications SET alert_noted_at = now(), alert_resolved_at = $2
WHERE approval_id = $1 AND alert_noted_at IS NULL RETURNING approval_id
"""


def credit_message(approval: Approval, resolved_after: float) -> dict:
    who = mention(approval.decided_by)
    return render.text_message(
        f":white_check_mark: The alert resolved {duration(resolved_after)} after `{escape(approval.action)}` "
        f"(approval #{approval.id}) was approved by {who}."
    )


def still_firing_message(approval: Approval, window: int) -> dict:
    return render.text_message(
        f":warning: Still firing {duration(window)} after `{escape(approval.action)}` (approval #{approval.id}, "
        f"approved by {mention(approval.decided_by)}): it did not resolve the alert — look again at the triage."
    )


async def note_alert_outcomes(runtime: Runtime) -> int:
    """Tell each due alert thread how its alert went after the action; returns how many were told."""
    window = runtime.settings.erpgo_verify_window
    async with runtime.store.acquire() as conn:
        rows = await conn.fetch(DUE, window)
    told = 0
    for row in rows:
        values = dict(row)
        credited_at = values.pop("credited_at")
        approval = Approval.from_row(values)
        async with approval_thread(runtime, approval) as thread:
            if thread is None or thread.conn is None or not await thread.conn.fetchval(NOTE, approval.id, credited_at):
                continue
            if credited_at is not None and approval.decided_at is not None:
                thread.reply(credit_message(approval, (credited_at - approval.decided_at).total_seconds()))
            else:
                thread.reply(still_firing_message(approval, window))
            told += 1
    return told


async def note_alert_outcomes_forever(runtime: Runtime, interval: float = SWEEP_SECONDS) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation
        try:
            await note_alert_outcomes(runtime)
        except Exception as exc:  # the sweeper must outlive any one failure
            log.warning("alert_outcome_sweep_failed", error=describe_error(exc))
