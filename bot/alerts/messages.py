"""What an alert thread shows: the header, membership, resolve and re-fire replies, the triage report,
and the /erpgo alerts list. Headers and membership replies are rendered when the outbox sends them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.alerts.webhook import DISPLAY_SQL
from bot.core.findings import Finding
from bot.core.units import human_duration as duration
from bot.oncall import mention as oncall_mention
from bot.slack import outbox, render

MAX_LISTED = 10  # instances named in a header or a reply
MAX_MEMBERS_KEPT = 30  # names kept in a merged membership reply

# The header's buttons; each carries the alert group's id and nothing else.
ACK_ACTION = "alert.ack"
SILENCE_ACTION = "alert.silence"  # + "." + one of SILENCE_CHOICES, or ".custom" for the modal
UNSILENCE_ACTION = "alert.unsilence"
SILENCE_MODAL = "alert.silence.modal"
SILENCE_CHOICES = {"1h": 3600, "4h": 4 * 3600, "24h": 24 * 3600}
ESCALATE_ACTION = "alert.escalate"  # mentions who is on call in the thread (bot/alerts/escalation.py)


# ---------------------------------------------------------------------- messages


@dataclass
class ThreadActions:
    """What people did in an alert thread: who acknowledged it, and its silence (alert_actions)."""

    acked_by: str | None = None
    acked_at: datetime | None = None
    silence_id: str | None = None
    silenced_by: str | None = None
    silenced_until: datetime | None = None
    silence_comment: str = ""
    silence_ended_at: datetime | None = None
    silence_ended_by: str | None = None
    escalation_level: int = 0  # 1: the on-call person was mentioned, 2: the secondary too
    escalated_to: str = ""  # who the last escalation mentioned (ids, space separated)

    def silenced(self, now: datetime) -> bool:
        """A silence is in force: created from this thread, not lifted, not run out."""
        return bool(
            self.silence_id
            and self.silence_ended_at is None
            and self.silenced_until is not None
            and self.silenced_until > now
        )


@dataclass
class GroupView:
    """What a header shows."""

    status: str
    names: list[str]
    labels: dict[str, str]  # common labels
    group_labels: dict[str, str]
    annotations: dict[str, str]
    external_url: str
    generator_url: str
    fired_at: datetime
    resolved_at: datetime | None
    members: dict[str, tuple[str, str]] = field(default_factory=dict)  # fingerprint -> (status, name)
    group_id: int | None = None  # set when rendered for Slack: the header then carries its buttons
    actions: ThreadActions = field(default_factory=ThreadActions)

    @property
    def title(self) -> str:
        names = self.names[:3] + ([f"+{len(self.names) - 3}"] if len(self.names) > 3 else [])
        return ", ".join(names)

    def names_with(self, status: str) -> list[str]:
        return sorted(name for st, name in self.members.values() if st == status)


def slack_date(when: datetime) -> str:
    """A date Slack shows in the reader's time zone; the fallback is UTC."""
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit for a Slack link (<url|text>), or None."""
    if not url or not url.lower().startswith(("http://", "https://")) or len(url) > 2000:
        return None
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def silence_url(external_url: str, matchers: dict[str, str]) -> str | None:
    """Alertmanager's "new silence" form, pre-filled with the group's labels."""
    if not external_url or not matchers:
        return None
    terms = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(matchers.items())
    )
    return safe_url(external_url.rstrip("/") + "/#/silences/new?filter=" + quote("{" + terms + "}", safe=""))


def listing(names: list[str], limit: int = MAX_LISTED, total: int | None = None) -> str:
    total = len(names) if total is None else total
    shown = ", ".join(f"`{render.escape(n.replace('`', ''))}`" for n in names[:limit])
    more = total - min(len(names), limit)
    return shown + (f" … and {more} more" if more > 0 else "")


def counts_text(firing: int, resolved: int) -> str:
    return f"{firing} firing" + (f", {resolved} resolved" if resolved else "")


def header_text(view: GroupView, firing: int, resolved: int) -> str:
    """The header as one line: the notification text, and the whole message until it is rendered."""
    severity = view.labels.get("severity", "")
    summary = view.annotations.get("summary") or view.annotations.get("message") or ""
    text = (
        f"{view.status.upper()}: {view.title}"
        + (f" ({severity})" if severity else "")
        + f" — {counts_text(firing, resolved)}"
    )
    text += f" — {summary}" if summary else ""
    if view.group_labels:
        text += " — " + ", ".join(f"{k}={v}" for k, v in sorted(view.group_labels.items()))
    return render.escape(text)  # the fallback text is mrkdwn too: no mention or link from a label


def header_message(view: GroupView) -> render.Message:
    firing, resolved = view.names_with("firing"), view.names_with("resolved")
    severity = view.labels.get("severity", "")
    counts = counts_text(len(firing), len(resolved))
    summary = view.annotations.get("summary") or view.annotations.get("message") or ""
    description = view.annotations.get("description", "")
    if view.status == "firing":
        heading = f":fire: FIRING: {view.title}"
    else:
        heading = f":white_check_mark: RESOLVED: {view.title}"
    text = header_text(view, len(firing), len(resolved))
    blocks: list = [HeaderBlock(text=render.clip(heading, 150))]
    about = "\n".join(
        part for part in (f"*{render.escape(summary)}*" if summary else "", render.escape(description)) if part
    )
    if about:
        blocks.append(render.section(about))
    fields = [
        f"*Severity*\n{render.escape(severity) or '—'}",
        f"*Alerts*\n{counts}",
        f"*Instance{'s' if len(firing) + len(resolved) > 1 else ''}*\n{listing(firing or resolved) or '—'}",
        f"*Since*\n{slack_date(view.fired_at)}",
    ]
    if view.status == "resolved" and view.resolved_at is not None:
        fields += [
            f"*Resolved*\n{slack_date(view.resolved_at)}",
            f"*Duration*\n{duration((view.resolved_at - view.fired_at).total_seconds())}",
        ]
    blocks.append(SectionBlock(fields=[MarkdownTextObject(text=render.clip(f, 2000)) for f in fields]))
    links = []
    runbook = safe_url(view.annotations.get("runbook_url") or view.annotations.get("runbook"))
    if runbook:
        links.append(f"<{runbook}|:book: Runbook>")
    silence = silence_url(view.external_url, view.group_labels or view.labels)
    if silence:
        links.append(f"<{silence}|:no_bell: Silence>")
    source = safe_url(view.generator_url)
    if source:
        links.append(f"<{source}|:chart_with_upwards_trend: Source>")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(view.group_labels.items()))
    if labels:
        links.append(f"group `{render.escape(labels.replace('`', ''))}`")
    if links:
        blocks.append(render.context(" · ".join(links)))
    now = datetime.now(UTC)
    done = actions_lines(view.actions, now)
    if done:
        blocks.append(render.context("\n".join(done)))
    if view.group_id is not None:
        buttons = header_buttons(view, now)
        if buttons:
            blocks.append(ActionsBlock(block_id=f"alert:{view.group_id}", elements=buttons))
    return render.message(text, blocks)


def mention(user: str | None) -> str:
    if user and user[:1] in "UW" and user.isalnum():
        return f"<@{user}>"
    return render.escape(user or "someone")


def actions_lines(actions: ThreadActions, now: datetime) -> list[str]:
    """Who acknowledged the thread, and whether it is silenced, as the header's context shows it."""
    lines = []
    if actions.acked_by and actions.acked_at:
        lines.append(f":eyes: Acknowledged by {mention(actions.acked_by)} {slack_date(actions.acked_at)}")
    if actions.silence_id and actions.silenced_until is not None:
        comment = f" — “{render.escape(actions.silence_comment[:200])}”" if actions.silence_comment else ""
        if actions.silenced(now):
            lines.append(
                f":no_bell: Silenced by {mention(actions.silenced_by)} until {slack_date(actions.silenced_until)}"
                + comment
            )
        elif actions.silence_ended_at is not None and actions.silence_ended_by == "alertmanager":
            lines.append(f":bell: Silence by {mention(actions.silenced_by)} ended: the alert fired again")
        elif actions.silence_ended_at is not None:
            lines.append(f":bell: Silence lifted by {mention(actions.silence_ended_by)}")
        else:
            lines.append(f":bell: Silence by {mention(actions.silenced_by)} ran out")
    if actions.escalation_level:
        who = " ".join(oncall_mention(p) for p in actions.escalated_to.split())
        lines.append(f":rotating_light: Escalated to {who or 'on call'} (level {actions.escalation_level})")
    return lines


def header_buttons(view: GroupView, now: datetime) -> list[ButtonElement]:
    """I'm on it and Silence while firing; Unsilence while a silence from this thread is in force."""
    value = str(view.group_id)
    buttons = []
    if view.status == "firing" and not view.actions.acked_by:
        buttons.append(ButtonElement(text=":eyes: I'm on it", action_id=ACK_ACTION, value=value, style="primary"))
    if view.actions.silenced(now):
        buttons.append(ButtonElement(text=":bell: Unsilence", action_id=UNSILENCE_ACTION, value=value))
    elif view.status == "firing":
        for label in SILENCE_CHOICES:
            buttons.append(ButtonElement(text=f":no_bell: {label}", action_id=f"{SILENCE_ACTION}.{label}", value=value))
        buttons.append(ButtonElement(text=":no_bell: Silence…", action_id=f"{SILENCE_ACTION}.custom", value=value))
    if view.status == "firing" and view.actions.escalation_level < 2:
        buttons.append(ButtonElement(text=":rotating_light: Escalate", action_id=ESCALATE_ACTION, value=value))
    return buttons


def membership_text(data: dict) -> str:
    parts = []
    for key, verb in (("joined", "joined"), ("left", "resolved")):
        n = data.get(f"{key}_n", 0)
        if n:
            parts.append(f"{n} alert{'s' if n != 1 else ''} {verb}: {listing(data[key], MAX_MEMBERS_KEPT, n)}")
    return "; ".join(parts) + " (now " + counts_text(data.get("firing", 0), data.get("resolved", 0)) + ")"


def membership_message(data: dict) -> render.Message:
    lines = []
    if data.get("joined_n"):
        n = data["joined_n"]
        lines.append(
            f":heavy_plus_sign: *{n} alert{'s' if n != 1 else ''} joined*: {listing(data['joined'], MAX_MEMBERS_KEPT, n)}"
        )
    if data.get("left_n"):
        n = data["left_n"]
        lines.append(
            f":heavy_minus_sign: *{n} alert{'s' if n != 1 else ''} resolved*: {listing(data['left'], MAX_MEMBERS_KEPT, n)}"
        )
    now = "now " + counts_text(data.get("firing", 0), data.get("resolved", 0))
    text = "; ".join(line.replace("*", "") for line in lines) + f" ({now})"  # names are escaped by listing()
    return render.message(text, [render.section("\n".join(lines)), render.context(now)])


def merge_membership(old: dict | None, joined: list[str], left: list[str], firing: int, resolved: int) -> dict:
    old = old or {}
    merged_joined = (old.get("joined", []) + sorted(joined))[:MAX_MEMBERS_KEPT]
    merged_left = (old.get("left", []) + sorted(left))[:MAX_MEMBERS_KEPT]
    return {
        "joined": merged_joined,
        "joined_n": old.get("joined_n", 0) + len(joined),
        "left": merged_left,
        "left_n": old.get("left_n", 0) + len(left),
        "firing": firing,
        "resolved": resolved,
    }


def resolved_message(view: GroupView, n: int) -> render.Message:
    lasted = duration(((view.resolved_at or datetime.now(UTC)) - view.fired_at).total_seconds())
    text = f":white_check_mark: *Resolved* after {lasted}" + (f" — all {n} alerts resolved." if n > 1 else ".")
    return render.message(text.replace("*", ""), [render.section(text)])


def refire_message(was_resolved_for: float, firing: int) -> render.Message:
    text = (
        f":repeat: *Firing again* — it had been resolved for {duration(was_resolved_for)}. "
        f"{firing} firing; a new triage follows."
    )
    return render.message(text.replace("*", ""), [render.section(text)])


def triage_messages(title: str, findings: list[Finding], footer: str) -> list[render.Message]:
    """The triage report as one thread reply (headline + details), or two when it is long; evidence
    longer than a message shows goes in the file of render.evidence_upload()."""
    attached = bool(render.long_evidence(findings))
    head = render.headline(title, findings, footer)
    body = render.details(title, findings, attached=attached)
    if len(head["blocks"]) + 1 + len(body["blocks"]) <= render.MAX_BLOCKS:
        return [{"text": head["text"], "blocks": head["blocks"] + [DividerBlock().to_dict()] + body["blocks"]}]
    return [head, body]


# Headers and membership replies are rendered by the outbox when it sends them, from the state of
# that moment: during a storm a header that changes with every notification is rendered once per
# message Slack actually gets, not once per notification.

HEADER, MEMBERSHIP = "alert.header", "alert.membership"

# The group's row, its alerts (as arrays of one aggregate, so in one order), what people did in the thread
# and its escalation: one round trip for every header the outbox sends
VIEW_FOR_HEADER = f"""
SELECT g.status, g.thread_key, g.group_labels, g.common_labels, g.annotations, g.external_url, g.fired_at,
       g.resolved_at, m.fingerprints, m.statuses, m.displays, m.alertnames, m.generator_url,
       a.acked_by, a.acked_at, a.silence_id, a.silenced_by, a.silenced_until, a.silence_comment, a.silence_ended_at,
       a.silence_ended_by, e.level AS escalation_level, e.mentioned AS escalated_to
FROM alert_groups g
CROSS JOIN LATERAL (
    SELECT array_agg(fingerprint) AS fingerprints, array_agg(status) AS statuses, array_agg({DISPLAY_SQL}) AS displays,
           array_agg(DISTINCT labels->>'alertname') FILTER (WHERE labels->>'alertname' <> '') AS alertnames,
           (array_agg(generator_url) FILTER (WHERE generator_url <> ''))[1] AS generator_url
    FROM alerts WHERE group_id = g.id) m
LEFT JOIN alert_actions a ON a.thread_key = g.thread_key
LEFT JOIN alert_escalations e ON e.thread_key = g.thread_key
WHERE g.id = $1
"""
ACTION_COLUMNS = [f.name for f in fields(ThreadActions)]


@outbox.renderer(HEADER)
async def render_header(conn: Any, data: dict, thread_key: str) -> render.Message | None:
    view = await load_view(conn, data["group_id"], thread_key)
    if view is None:
        return None  # the group moved on to a new thread: this one keeps the text it was queued with
    return header_message(view)


async def load_view(conn: Any, group_id: int, thread_key: str) -> GroupView | None:
    """The header of the group's thread `thread_key` as the database has it now (None: not its thread)."""
    row = await conn.fetchrow(VIEW_FOR_HEADER, group_id)
    if row is None or row["thread_key"] != thread_key:
        return None
    labels = json.loads(row["common_labels"])
    names = [labels["alertname"]] if labels.get("alertname") else sorted(row["alertnames"] or ())
    members = zip(row["fingerprints"] or (), row["statuses"] or (), row["displays"] or (), strict=True)
    return GroupView(
        status=row["status"],
        names=names or ["alert"],
        labels=labels,
        group_labels=json.loads(row["group_labels"]),
        annotations=json.loads(row["annotations"]),
        external_url=row["external_url"],
        generator_url=row["generator_url"] or "",
        fired_at=row["fired_at"],
        resolved_at=row["resolved_at"],
        members={fingerprint: (status, display) for fingerprint, status, display in members},
        group_id=group_id,
        actions=ThreadActions(**{name: row[name] for name in ACTION_COLUMNS if row[name] is not None}),
    )


@outbox.renderer(MEMBERSHIP)
async def render_membership(_conn: Any, data: dict, _thread_key: str) -> render.Message:
    return membership_message(data)


@dataclass
class OpenGroup:
    group_id: int
    title: str
    severity: str
    summary: str
    firing: int
    fired_at: datetime
    channel: str  # where the thread is (the channel id Slack answered, once posted)
    ts: str | None  # None while its header waits in the outbox


def open_groups_message(groups: list[OpenGroup], total: int, links: dict[int, str]) -> render.Message:
    if not groups:
        return render.text_message(":white_check_mark: No alert is firing.")
    lines = [f"*{total} alert group{'s' if total != 1 else ''} firing*"]
    for g in groups:
        where = (
            f"<{links[g.group_id]}|thread>"
            if g.group_id in links
            else (f"thread in {render.channel_link(g.channel)}" if g.ts else "_thread not posted yet (queued)_")
        )
        severity = f" ({render.escape(g.severity)})" if g.severity else ""
        summary = f" — {render.escape(g.summary[:120])}" if g.summary else ""
        lines.append(
            f":fire: *{render.escape(g.title)}*{severity}{summary} · {g.firing} firing since "
            f"{slack_date(g.fired_at)} · {where}"
        )
    if total > len(groups):
        lines.append(f"_… and {total - len(groups)} more_")
    return render.text_message("\n".join(lines))
