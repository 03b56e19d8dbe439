"""`/erpgo actions`: every remediation the bot has, what it does, who may request it (whoever may run
a verb whose checks propose it) and approve it (from the policy, Slack user groups resolved), and its
track record."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.approvals.policy import Policy
from bot.approvals.record import TrackRecord
from bot.core.registry import Registry
from bot.slack import render
from bot.slack.render import Message, escape, mention, section

MAX_NAMED = 8  # people named per line; the rest are counted


def people(members: set[str] | None) -> str:
    if members is None:
        return "everyone"
    if not members:
        return "nobody"
    named = sorted(members)
    shown = ", ".join(mention(user) for user in named[:MAX_NAMED])
    return shown + (f" and {len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else "")


def proposing_verbs(registry: Registry, action: str) -> list[str]:
    """The verbs (and alert triage) whose checks may propose `action`."""
    return sorted(
        verb.name for verb in registry.verbs.values() if any(action in check.proposes for check in verb.checks)
    )


def requesters(registry: Registry, policy: Policy, action: str) -> str:
    verbs = proposing_verbs(registry, action)
    if not verbs:
        return "the bot itself (a follow-up of another action, an alert thread's button, or triage)"
    members: set[str] | None = set()
    for verb in verbs:
        allowed = policy.verb_members(verb)
        members = None if allowed is None or members is None else members | allowed
    return f"{people(members)} (through {', '.join(f'`{v}`' for v in verbs)})"


def approvers(policy: Policy, action: str) -> str:
    if not policy.approvable(action):
        return f"nobody: {policy.origin} names no approvers"
    required = policy.approvals_required(action)
    needed = f", {required} of them must approve" if required > 1 else ""
    return f"{escape(policy.approvers(action))} = {people(policy.approver_members(action))}{needed}"


def actions_list(registry: Registry, policy: Policy, records: dict[str, TrackRecord] | None) -> Message:
    """One section per remediation."""
    blocks: list[Block] = [
        section(f"*Actions* ({len(registry.remediations)}) — who may request and approve each, and its record")
    ]
    for action, remediation in sorted(registry.remediations.items()):
        record = (records or {}).get(action)
        lines = [
            f"*`{escape(action)}`* — {escape(remediation.summary)}",
            f"requested by {requesters(registry, policy, action)}",
            f"approved by {approvers(policy, action)}",
            escape(record.line()) if record is not None else "record: unknown (no bot database)",
        ]
        blocks.append(section("\n".join(lines)))
    return render.message(f"{len(registry.remediations)} actions", blocks[: render.MAX_BLOCKS])
