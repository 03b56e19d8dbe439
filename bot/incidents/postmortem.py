"""An incident's timeline as a postmortem draft in Markdown: summary, timeline, actions taken, open
follow-ups — what the guide asks for ("Always document any incident resolution steps"), with the
parts only people can write left as prompts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.core.units import human_duration
from bot.incidents.timeline import Action, Event, Incident

KIND_LABEL = {
    "alert": "ALERT",
    "resolved": "RESOLVED",
    "triage": "TRIAGE",
    "command": "COMMAND",
    "proposed": "PROPOSED",
    "approved": "APPROVED",
    "rejected": "REJECTED",
    "executed": "EXECUTED",
    "expired": "EXPIRED",
    "cancelled": "WITHDRAWN",
}
MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


def stamp(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S")


def md(text: str) -> str:
    """Slack mentions as @ids, and nothing that would start a Markdown table cell or heading by accident."""
    return MENTION.sub(r"@\1", text).replace("|", "\\|")


def person(user: str) -> str:
    return f"@{user}" if MENTION.fullmatch(f"<@{user}>") else user


def file_name(incident: Incident) -> str:
    what = f"group-{incident.group_id}" if incident.group_id else f"thread-{incident.thread_ts}"
    return f"postmortem-{what}-{incident.started_at.astimezone(UTC):%Y%m%d-%H%M}.md"


def summary_lines(incident: Incident, now: datetime) -> list[str]:
    end = incident.ended_at
    duration = human_duration(((end or now) - incident.started_at).total_seconds())
    lines = [
        f"- **What:** {md(incident.title)}"
        + (f" — {md(incident.annotations['summary'])}" if incident.annotations.get("summary") else ""),
        f"- **Started:** {stamp(incident.started_at)}",
        f"- **Ended:** {stamp(end)} ({duration})"
        if end
        else f"- **Ended:** not yet — {incident.status} for {duration}",
    ]
    if incident.labels.get("severity"):
        lines.append(f"- **Severity:** {md(incident.labels['severity'])}")
    if incident.group_id:
        lines.append(f"- **Alerts:** {incident.alerts} in alert group #{incident.group_id}")
    done = [a for a in incident.actions if a.state in ("succeeded", "failed")]
    lines.append(
        f"- **Actions:** {len(incident.actions)} proposed, {len([a for a in done if a.state == 'succeeded'])} executed"
        f", {len([a for a in done if a.state == 'failed'])} failed"
    )
    commands = [e for e in incident.events if e.kind == "command"]
    lines.append(f"- **Commands run:** {len(commands)}")
    return lines


def event_lines(event: Event) -> list[str]:
    lines = [f"| {clock(event.at)} | {KIND_LABEL.get(event.kind, event.kind.upper())} | {md(event.text)} |"]
    lines += [f"|  |  | ↳ {md(detail)} |" for detail in event.details]
    return lines


def action_lines(action: Action) -> list[str]:
    approvers = ", ".join(person(u) for u in action.approved_by) or "nobody"
    head = f"- **#{action.id} {md(action.summary)}** (`{action.action}`) — {action.state}"
    body = [f"  - requested by {person(action.requester)} at {stamp(action.created_at)}; approved by {approvers}"]
    if action.result:
        result = action.result.splitlines()
        body.append(f"  - result: {md(result[0])}")
        body += [f"    - {md(line)}" for line in result[1:8]]
    return [head, *body]


def follow_ups(incident: Incident) -> list[str]:
    items = []
    if incident.kind == "alert group" and incident.ended_at is None:
        items.append(f"The alert group is still {incident.status}: the incident is not over.")
    for action in incident.actions:
        if action.state in ("pending", "executing"):
            items.append(f"Approval #{action.id} ({md(action.summary)}) is still {action.state}.")
        elif action.state == "failed":
            items.append(f"Approval #{action.id} ({md(action.summary)}) failed: check the target by hand and decide.")
    for line in incident.triage:
        if line.startswith("[CRIT]"):
            items.append(f"Triage found: {md(line)} — confirm it is fixed.")
    items += [
        "Root cause: _to be written_.",
        "What would have caught it earlier (alert, dashboard, check): _to be written_.",
        "Resolution steps not done through the bot: _to be written_.",
    ]
    return [f"- [ ] {item}" for item in items]


def postmortem(incident: Incident, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    lines = [
        f"# Postmortem draft: {md(incident.title)}",
        "",
        f"_Written by the ERPGo on-call bot from its own records at {stamp(now)}: {incident.describe}. "
        "Everything below happened as listed; complete the parts only people know._",
        "",
        "## Summary",
        "",
        *summary_lines(incident, now),
        "",
        "## Timeline",
        "",
        "| Time (UTC) | What | |",
        "|---|---|---|",
    ]
    for event in incident.events:
        lines += event_lines(event)
    if not incident.events:
        lines.append("|  |  | nothing recorded |")
    lines += ["", "## Actions taken", ""]
    for action in incident.actions:
        lines += action_lines(action)
    if not incident.actions:
        lines.append("- none through the bot")
    if incident.triage:
        lines += ["", "## What triage found", ""] + [f"- {md(line)}" for line in incident.triage]
    lines += ["", "## Open follow-ups", "", *follow_ups(incident), ""]
    return "\n".join(lines)
