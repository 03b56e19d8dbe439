"""Break glass on the approval message and in its thread: the button, the countdown with its Veto
button, the review that follows (bot/approvals/breakglass.py)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import ButtonElement, ConfirmObject

from bot.approvals.catalogue import people
from bot.approvals.model import Approval
from bot.approvals.policy import Policy
from bot.core.parse import is_slack_user_id
from bot.core.units import short_duration
from bot.slack import render
from bot.slack.render import Message, escape, mention

BREAK_GLASS_ACTION = "approval.break_glass"
VETO_ACTION = "approval.veto"
REVIEW_ACTION = "approval.review"


def when(at: datetime) -> str:
    return f"<!date^{int(at.timestamp())}^{{time_secs}}|{at:%H:%M:%S} UTC>"


def glass_buttons(approval: Approval, policy: Policy) -> list[ButtonElement]:
    """Veto while the countdown runs; Break glass while the rule allows it and a person asked."""
    if approval.break_glass_runs_at is not None:
        return [ButtonElement(text="Veto", action_id=VETO_ACTION, value=str(approval.id), style="primary")]
    if policy.break_glass(approval.action) is None or not is_slack_user_id(approval.requester):
        return []
    confirm = ConfirmObject(
        title="Break glass?",
        text=f"Nobody approved #{approval.id}. It runs after a veto countdown, without an approver, "
        "and an approver must review it afterwards.",
        confirm="Start the countdown",
        deny="Cancel",
        style="danger",
    )
    return [ButtonElement(text="Break glass", action_id=BREAK_GLASS_ACTION, value=str(approval.id), confirm=confirm)]


def glass_line(approval: Approval, policy: Policy) -> str:
    """What break glass means for this pending approval; '' when the policy does not allow it."""
    if approval.break_glass_runs_at is not None:
        return (
            f":rotating_light: *Break glass* pressed by {mention(approval.requester)} — runs at "
            f"{when(approval.break_glass_runs_at)} unless someone who may approve it vetoes"
        )
    glass = policy.break_glass(approval.action)
    if glass is None or not is_slack_user_id(approval.requester):
        return ""
    return (
        f":hammer: Break glass: if no approver acts within {short_duration(glass.after)}, the requester may run it "
        f"after a {short_duration(glass.veto)} veto countdown; an approver reviews it within "
        f"{short_duration(glass.review_within or 0)}"
    )


def review_line(approval: Approval) -> str:
    if approval.review_due_at is None:
        return ""
    if approval.reviewed_by:
        return f":mag: Ran under break glass; reviewed by {mention(approval.reviewed_by)}"
    return f":mag: Ran under break glass without an approver — *needs a review* by {when(approval.review_due_at)}"


def review_buttons(approval: Approval) -> list[ButtonElement]:
    if not approval.unreviewed:
        return []
    return [ButtonElement(text="Mark reviewed", action_id=REVIEW_ACTION, value=str(approval.id))]


def countdown_reply(approval: Approval, policy: Policy) -> Message:
    runs_at = approval.break_glass_runs_at
    assert runs_at is not None
    return render.text_message(
        f":rotating_light: {mention(approval.requester)} pressed *Break glass* on approval #{approval.id} "
        f"(`{escape(approval.action)}`): nobody approved it in time. It runs at {when(runs_at)} unless one of "
        f"{people(policy.approver_members(approval.action))} vetoes it (Veto on the approval message)."
    )


def vetoed_reply(approval: Approval) -> Message:
    return render.text_message(
        f":octagonal_sign: {mention(approval.vetoed_by)} vetoed the break glass of approval #{approval.id} "
        f"(`{escape(approval.action)}`): nothing was done."
    )


def reviewed_reply(approval: Approval) -> Message:
    return render.text_message(
        f":mag: {mention(approval.reviewed_by)} reviewed approval #{approval.id} (`{escape(approval.action)}`), "
        "run under break glass."
    )
