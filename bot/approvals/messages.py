"""Approvals as Slack messages: the proposal with its Approve/Reject buttons, the same message once
decided (buttons gone, who did what), the thread reply, the answers only the clicker sees, and the
/erpgo approvals and /erpgo audit listings. The buttons carry the approval id and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject

from bot.approvals.engine import Approval, AuditEntry, Decision
from bot.approvals.glass_view import glass_buttons, glass_line, review_buttons, review_line
from bot.approvals.policy import Policy
from bot.approvals.record import TrackRecord
from bot.approvals.verify import Verification
from bot.slack import render
from bot.slack.render import Message, channel_link, clip, context, escape, mention, section

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"
MAX_PREVIEW = 1500
NOTHING_DONE = "nothing done:"
STALE_GRACE_S = 60  # executing this much longer than its remediation's timeout: something broke

STATE_EMOJI = {
    "pending": ":warning:",
    "executing": ":hourglass_flowing_sand:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rejected": ":no_entry_sign:",
    "expired": ":hourglass:",
    "cancelled": ":leftwards_arrow_with_hook:",
}


def clock(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S UTC") if at else "?"


def slack_time(at: datetime) -> str:
    """A time every reader sees in their own time zone; the fallback is UTC."""
    return f"<!date^{int(at.timestamp())}^{{time}}|{at.astimezone(UTC).strftime('%H:%M UTC')}>"


def minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def title_line(approval: Approval) -> str:
    return f"*Approval #{approval.id} — {escape(approval.summary)}*"


def target_lines(approval: Approval) -> str:
    if not approval.target:
        return ""
    bullets = [
        f"    ◦ {escape(line.strip())}" if line[:1].isspace() else f"• {escape(line)}" for line in approval.target
    ]
    return "*What it is about*\n" + "\n".join(bullets)


def preview_block(approval: Approval, heading: str) -> str:
    if not approval.preview:
        return f"*{heading}*: the `{escape(approval.action)}` remediation with {escape(str(approval.args))}"
    return f"*{heading}*\n```{escape(clip(approval.preview, MAX_PREVIEW))}```"


# ---- the approval message ------------------------------------------------------------------


def mentions(users: list[str]) -> str:
    """'@A', '@A and @B', '@A, @B and @C'."""
    shown = [mention(user) for user in users]
    return " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else (shown[0] if shown else "nobody")


def approvals_so_far(approval: Approval) -> str:
    """'approved so far: @A (1 of 2)' for an approval that needs several people; '' otherwise."""
    if approval.approvals_required <= 1:
        return ""
    done = len(approval.approved_by)
    who = mentions(approval.approved_by) if done else "nobody yet"
    return f"approved so far: {who} ({done} of {approval.approvals_required})"


def pending_head(approval: Approval, policy: Policy, now: datetime) -> str:
    """Who asked, who may approve (and how many must), and when it expires."""
    left = (approval.expires_at - now).total_seconds()
    required = approval.approvals_required
    if required > 1:
        four_eyes = f"{required} different people, none of them the requester"
    elif policy.self_approval(approval.action):
        four_eyes = "the requester may approve too"
    else:
        four_eyes = "someone other than the requester"
    head = (
        f"{STATE_EMOJI['pending']} {title_line(approval)}\n"
        f"Requested by {mention(approval.requester)} · may be approved by {escape(policy.approvers(approval.action))} "
        f"({four_eyes}) · expires {slack_time(approval.expires_at)} (in {minutes(left)})"
    )
    if required > 1:
        head += f"\n:busts_in_silhouette: Needs {required} approvals — {approvals_so_far(approval)}"
    return head


def approval_message(
    approval: Approval, policy: Policy, now: datetime | None = None, record: TrackRecord | None = None
) -> Message:
    """The pending approval: what will happen, to what, the exact statement, the two buttons, and the
    remediation's track record."""
    required = approval.approvals_required
    blocks: list[Block] = [section(pending_head(approval, policy, now or datetime.now(UTC)))]
    if approval.target:
        blocks.append(section(target_lines(approval)))
    blocks.append(section(preview_block(approval, "What will run")))
    if approval.reason:
        blocks.append(section(f"_Why:_ {escape(approval.reason)}"))
    if glass := glass_line(approval, policy):
        blocks.append(section(glass))
    confirm = ConfirmObject(
        title=clip(f"Approve #{approval.id}?", 100),
        text=clip(
            f"{escape(approval.summary)} — "
            + (
                f"this runs `{approval.action}` once, when the last of {required} approvals arrives, "
                "and cannot be undone. "
                if required > 1
                else f"this runs `{approval.action}` now, once, and cannot be undone. "
            )
            + "The target is re-checked first.",
            300,
        ),
        confirm="Approve and run",
        deny="Cancel",
        style="danger",
    )
    blocks.append(
        ActionsBlock(
            block_id=f"approval-{approval.id}",
            elements=[
                ButtonElement(
                    text="Approve", action_id=APPROVE_ACTION, value=str(approval.id), style="danger", confirm=confirm
                ),
                ButtonElement(text="Reject", action_id=REJECT_ACTION, value=str(approval.id)),
                *glass_buttons(approval, policy),
            ],
        )
    )
    track = f" · {escape(record.line())}" if record is not None else ""
    blocks.append(
        context(
            f"`{escape(approval.action)}` · approval #{approval.id} · "
            f"the target is re-checked before anything runs · every step is audited{track}"
        )
    )
    return render.message(f"Approval #{approval.id} needed: {escape(approval.summary)}", blocks)


def outcome_line(approval: Approval) -> str:
    """What happened to an approval, in one line (mrkdwn)."""
    who = mention(approval.decided_by)
    if approval.state in ("succeeded", "failed", "executing") and len(approval.approved_by) > 1:
        who = mentions(approval.approved_by)
    result = escape(approval.result or "")
    state = approval.state
    if state == "succeeded":
        return f"approved by {who} — executed: {result}"
    if state == "failed":
        if result.startswith(NOTHING_DONE):
            return f"approved by {who} — {result}"
        return f"approved by {who} — failed: {result}"
    if state == "executing":
        return f"approved by {who} — executing now…"
    if state == "rejected":
        return f"rejected by {who} — nothing was done"
    if state == "cancelled":
        if approval.decided_by == approval.requester:
            return f"withdrawn by {who} (the requester) — nothing was done"
        return f"cancelled — {result or 'nothing was done'}"
    if state == "expired":
        return f"expired at {clock(approval.expires_at)}: nobody approved it in time — nothing was done"
    return f"pending, requested by {mention(approval.requester)}"


VERIFIED_EMOJI = {"verified": ":white_check_mark:", "not_fixed": ":x:", "unverified": ":grey_question:"}


def verification_line(verification: Verification) -> str:
    """*Verified*: before → after; *Not fixed*: what is seen now and what to try next."""
    before, after = escape(clip(verification.before, 300)), escape(clip(verification.after, 300))
    emoji = VERIFIED_EMOJI.get(verification.state, ":hourglass_flowing_sand:")
    if verification.state == "verified":
        return f"{emoji} *Verified*: {before} → {after}"
    if verification.state == "not_fixed":
        line = f"{emoji} *Not fixed*: {after}"
        return line + (f"\n_Try next:_ {escape(clip(verification.next_step, 300))}" if verification.next_step else "")
    if verification.state == "unverified":
        return f"{emoji} *Not verified*: {after}"
    return f"{emoji} verifying whether it worked…"


def verification_reply(approval: Approval, verification: Verification) -> Message:
    """The reply in the thread once the action was judged."""
    return render.text_message(
        f"Approval #{approval.id} ({escape(approval.summary)}): {verification_line(verification)}"
    )


def decided_message(approval: Approval, verification: Verification | None = None) -> Message:
    """The approval message once decided: the buttons are gone, the outcome (and, once judged, whether
    it worked) on top."""
    emoji = STATE_EMOJI.get(approval.state, ":grey_question:")
    if approval.state == "failed" and (approval.result or "").startswith(NOTHING_DONE):
        emoji = ":warning:"
    head = f"{emoji} {title_line(approval)}\n{outcome_line(approval)}"
    if verification is not None:
        head += "\n" + verification_line(verification)
    if review := review_line(approval):
        head += "\n" + review
    blocks: list[Block] = [section(head)]
    if buttons := review_buttons(approval):
        blocks.append(ActionsBlock(block_id=f"review-{approval.id}", elements=buttons))
    if approval.target:
        blocks.append(section(target_lines(approval)))
    heading = "What ran" if approval.state in ("succeeded", "failed", "executing") else "What would have run"
    blocks.append(section(preview_block(approval, heading)))
    decided = f" · decided {clock(approval.decided_at)}" if approval.decided_at else ""
    blocks.append(
        context(
            f"`{escape(approval.action)}` · approval #{approval.id} · requested by "
            f"{mention(approval.requester)} at {clock(approval.created_at)}{decided}"
        )
    )
    judged = f" — {verification.words}" if verification is not None and verification.state != "running" else ""
    return render.message(
        f"Approval #{approval.id}: {escape(approval.summary)} — {plain_outcome(approval)}{judged}", blocks
    )


def plain_outcome(approval: Approval) -> str:
    return outcome_line(approval).replace("<@", "@").replace(">", "")


def thread_result(approval: Approval, recorded: bool = True) -> Message:
    """The reply in the report's thread once an approval is decided."""
    text = f"{STATE_EMOJI.get(approval.state, '')} Approval #{approval.id} ({escape(approval.summary)}): {outcome_line(approval)}"
    if not recorded:
        text += "\n:warning: The result could not be written to the bot's database; the audit log lacks it."
    return render.text_message(text)


# ---- what only the clicker sees --------------------------------------------------------------


def decision_notice(decision: Decision) -> Message | None:
    """The ephemeral answer to a click; None when the message update says it all."""
    approval = decision.approval
    if decision.kind == "refused":
        return render.text_message(f":no_entry: {escape(decision.reason)}")
    if decision.kind == "counted" and approval is not None:
        missing = approval.approvals_missing
        return render.text_message(
            f":ballot_box_with_check: Your approval of #{approval.id} is recorded "
            f"({len(approval.approved_by)} of {approval.approvals_required}); it runs when {missing} more "
            f"{'person approves' if missing == 1 else 'people approve'}."
        )
    if decision.kind == "missing" or approval is None:
        return render.text_message(f":grey_question: {escape(decision.reason or 'There is no such approval.')}")
    if decision.kind == "expired":
        return render.text_message(
            f":hourglass: Approval #{approval.id} expired at {clock(approval.expires_at)}; "
            "nothing was done. Run the check again for a fresh proposal."
        )
    if decision.kind == "handled":
        if approval.state == "executing":
            return render.text_message(
                f":hourglass_flowing_sand: Approval #{approval.id} is already being executed "
                f"(approved by {mention(approval.decided_by)}); nothing more was done."
            )
        return render.text_message(
            f":information_source: Approval #{approval.id} was already handled: "
            f"{outcome_line(approval)}. Nothing more was done."
        )
    return None


def store_down_notice(error: str) -> Message:
    return render.text_message(
        f":warning: Could not reach the bot's database — nothing was done, try again.\n_{escape(error)}_"
    )


NO_STORE = "Approvals need the bot's own database: set BOT_DATABASE_URL. Until then proposals are shown as text only."


def no_store_notice() -> Message:
    return render.text_message(f":information_source: {NO_STORE}")


def refused_clicker_notice(reason: str) -> Message:
    return render.text_message(f":no_entry: {escape(reason)}")


def other_message_notice() -> Message:
    return render.text_message(
        ":no_entry: That button names another approval than the one of its message; nothing was done."
    )


def bad_value_notice(value: str) -> Message:
    return render.text_message(f":grey_question: That button does not name an approval ({escape(value[:40])!r}).")


# ---- notes in a report thread -----------------------------------------------------------------


def proposals_note(lines: list[str]) -> Message:
    return render.message("Proposals", [context("\n".join(lines))])


# ---- /erpgo approvals and /erpgo audit ---------------------------------------------------------


def interrupted_line(approval: Approval) -> str:
    """Why an approval needs a person: its remediation stopped mid-way and nothing is running it."""
    progress = approval.progress or {}
    step = progress.get("step")
    where = f" at step `{escape(str(step))}` ({escape(str(progress.get('phase', '?')))})" if step else ""
    text = f":rotating_light: *needs a person* — stopped mid-way{where}: no bot process is running it"
    if approval.state != "executing":
        text += f" (recorded as {approval.state})"
    hint = progress.get("hint")
    return text + (f"; {escape(str(hint))}" if hint else "; check the target by hand")


def approvals_list(
    approvals: list[Approval],
    links: dict[int, str],
    policy: Policy,
    now: datetime | None = None,
    timeouts: dict[str, float] | None = None,
    interrupted: dict[int, Approval] | None = None,
) -> Message:
    now = now or datetime.now(UTC)
    if not approvals:
        return render.text_message("No open approvals.")
    lines = [f"*Open approvals* ({len(approvals)})"]
    for approval in approvals:
        age = minutes((now - approval.created_at).total_seconds())
        if interrupted and approval.id in interrupted:
            status = interrupted_line(approval)
        elif approval.unreviewed and approval.review_due_at is not None:
            late = " — *overdue*" if approval.review_due_at <= now else ""
            status = (
                f":mag: ran under break glass ({approval.state}), *needs a review* by an approver by "
                f"{clock(approval.review_due_at)}{late}"
            )
        elif approval.state not in ("pending", "executing"):
            status = f"{approval.state}: {escape(clip(approval.result or '', 200))}"
        elif approval.state == "executing":
            status = f"executing, approved by {mention(approval.decided_by)} at {clock(approval.decided_at)}"
            limit = (timeouts or {}).get(approval.action, 30.0) + STALE_GRACE_S
            if approval.decided_at and (now - approval.decided_at).total_seconds() > limit:
                status += " — no result recorded since: the bot may have stopped mid-way; check the target by hand"
        else:
            status = (
                f"pending for {age}, requested by {mention(approval.requester)}, approvers "
                f"{escape(policy.approvers(approval.action))}, expires in "
                f"{minutes((approval.expires_at - now).total_seconds())}"
            )
            if approval.approvals_required > 1:
                status += f", {approvals_so_far(approval)}"
        link = links.get(approval.id)
        where = f" · <{link}|open>" if link else (f" · in {channel_link(approval.channel)}" if approval.channel else "")
        lines.append(f"• #{approval.id} {escape(approval.summary)} — {status}{where}")
    return _chunked("\n".join(lines), f"{len(approvals)} open approvals")


AUDIT_EVENT_WORDS = {
    "proposed": "proposed",
    "refused": "was refused",
    "approved": "approved",
    "rejected": "rejected",
    "executed": "executed",
    "expired": "expired",
    "cancelled": "cancelled",
    "verified": "verified",
    "break_glass": "broke glass on",
    "vetoed": "vetoed",
    "reviewed": "reviewed",
}


def audit_list(entries: list[AuditEntry], unreviewed: list[Approval] | None = None) -> Message:
    if not entries:
        return render.text_message("The audit log is empty.")
    lines = [f"*Audit log* — the newest {len(entries)}, newest first"]
    if unreviewed:
        named = ", ".join(f"#{a.id} `{escape(a.action)}`" for a in unreviewed[:10])
        lines.append(f":mag: Run under break glass, not reviewed yet: {named}")
    for entry in entries:
        at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        what = f"#{entry.approval_id} " if entry.approval_id else ""
        action = f"`{escape(entry.action)}` " if entry.action else ""
        detail = f" — {escape(clip(entry.detail, 160))}" if entry.detail and entry.event != "refused" else ""
        lines.append(
            f"`{at}` {mention(entry.actor)} {AUDIT_EVENT_WORDS.get(entry.event, entry.event)} "
            f"{what}{action}→ {escape(entry.outcome)}{detail}"
        )
    return _chunked("\n".join(lines), f"audit log: {len(entries)} entries")


def _chunked(text: str, fallback: str) -> Message:
    blocks: list[Block] = []
    chunk = ""
    for line in text.splitlines():
        if len(chunk) + len(line) + 1 > render.MAX_SECTION - 50:
            blocks.append(section(chunk))
            chunk = ""
        chunk += line + "\n"
    if chunk:
        blocks.append(section(chunk))
    return render.message(fallback, blocks)
