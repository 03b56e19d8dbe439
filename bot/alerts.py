"""Alert intake: Alertmanager notifications become one Slack thread per alert group.

A notification (webhook version 4) is validated, then recorded in ONE transaction of the bot's
database: every alert received, the current state of each alert of its group, the group (with the
thread it is discussed in) and the Slack messages that announce what changed, queued in the outbox
(bot/outbox.py). Only then does the webhook answer 2xx. Notifications that arrive while a
transaction is being written share the next one (Recorder: a group commit), so a storm costs a few
round trips per batch rather than per notification. What is posted:

* a new group → a header message (name, severity, summary, instances, since, runbook and Silence
  links) and, once its checks have run, the triage report in its thread;
* the same alerts again (Alertmanager's repeat notifications) → nothing;
* alerts joining or leaving a firing group → one thread reply (merged with an unsent one) and the
  header updated; while the header itself is still unsent it simply shows them;
* the group resolved → header updated (resolved, duration) and a thread reply;
* firing again within ERPGO_ALERT_REFIRE_WINDOW of its resolution → back in the same thread
  (a reply, the header updated, a new triage); later → a new thread.

Headers and membership replies are rendered by the outbox when it sends them, from the database as
it is then: a header that a storm changes a thousand times is rendered once per message Slack gets.

An alert absent from a complete notification (truncatedAlerts = 0) has left its group: Alertmanager
always sends every alert of the group, so a missing one was dropped (e.g. Alertmanager lost its
state). With truncatedAlerts > 0 (webhook `max_alerts`), absent alerts are left as they were.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import quote

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk.models.blocks import DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from bot import outbox, render
from bot.engine import CheckContext, describe_error, run_checks
from bot.findings import Finding
from bot.logs import log
from bot.metrics import ALERTS_RECEIVED
from bot.registry import Check, Registry
from bot.units import human_duration as duration

TRIAGE_CONCURRENCY = 4  # triage reports computed at once; an alert storm must not become a check storm
TRIAGE_LOOKBACK = timedelta(minutes=10)  # logs are read from this long before the alert fired
TRIAGE_STALE = "10 minutes"  # a triage 'running' for longer was abandoned by a process that died
MAX_LISTED = 10  # instances named in a header or a reply
MAX_MEMBERS_KEPT = 30  # names kept in a merged membership reply


# ---------------------------------------------------------------------- the webhook, version 4

class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=256)


class Webhook(BaseModel):
    """Alertmanager's webhook payload (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str = Field(min_length=1, max_length=4096)
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)


class IntakeError(Exception):
    """A notification that cannot be accepted: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 in a JSON string (an escaped backslash before it is not)


def parse_webhook(raw: bytes) -> Webhook:
    """Validate a webhook body; IntakeError(400, what is wrong) otherwise."""
    if JSON_NUL.search(raw):  # valid JSON, but PostgreSQL cannot store it: refused for good, not retried
        raise IntakeError(400, "a string contains a NUL character (\\u0000), which cannot be stored")
    try:
        hook = Webhook.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise IntakeError(400, f"malformed JSON: {errors[0]['msg']}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IntakeError(400, "not an Alertmanager webhook: the body must be a JSON object") from None
        if "version" in body and body["version"] != "4":
            raise IntakeError(400, f"unsupported Alertmanager webhook version {str(body['version'])[:10]!r} (expected \"4\")") from None
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise IntakeError(400, "not an Alertmanager webhook (version 4): " + "; ".join(parts) + more) from None
    if hook.version != "4":
        raise IntakeError(400, f"unsupported Alertmanager webhook version {hook.version[:10]!r} (expected \"4\")")
    return hook


def zero_to_none(when: datetime | None) -> datetime | None:
    """Alertmanager writes "0001-01-01T00:00:00Z" for "not set"."""
    if when is None or when.year <= 1:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------- routing and naming

def route_channel(settings, labels: dict[str, str]) -> str | None:
    """The channel of the first ERPGO_ALERT_ROUTES rule whose label matches, else ERPGO_ALERT_CHANNEL."""
    for label, wanted, channel in settings.erpgo_alert_routes:
        if labels.get(label) == wanted:
            return channel
    return settings.erpgo_alert_channel


def display_name(labels: dict[str, str], fingerprint: str) -> str:
    """How one alert of a group is named in messages. Keep in step with DISPLAY_SQL."""
    for key in ("instance", "pod", "container", "job"):
        if labels.get(key):
            return labels[key]
    return fingerprint[:12]


DISPLAY_SQL = "coalesce(labels->>'instance', labels->>'pod', labels->>'container', labels->>'job', left(fingerprint, 12))"


def alertnames(hook: Webhook) -> list[str]:
    if hook.commonLabels.get("alertname"):
        return [hook.commonLabels["alertname"]]
    return sorted({a.labels.get("alertname", "") for a in hook.alerts} - {""}) or ["alert"]


def group_annotations(hook: Webhook) -> dict[str, str]:
    first = next((a for a in hook.alerts if a.status == "firing"), hook.alerts[0])
    return {**first.annotations, **hook.commonAnnotations}


# ---------------------------------------------------------------------- messages

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

    @property
    def title(self) -> str:
        names = self.names[:3] + ([f"+{len(self.names) - 3}"] if len(self.names) > 3 else [])
        return ", ".join(names)

    def names_with(self, status: str) -> list[str]:
        return sorted(name for st, name in self.members.values() if st == status)


def slack_date(when: datetime) -> str:
    """A date Slack shows in the reader's time zone; the fallback is UTC."""
    fallback = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
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
    terms = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in sorted(matchers.items()))
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
    text = f"{view.status.upper()}: {view.title}" + (f" ({severity})" if severity else "") + f" — {counts_text(firing, resolved)}"
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
    about = "\n".join(part for part in (f"*{render.escape(summary)}*" if summary else "", render.escape(description)) if part)
    if about:
        blocks.append(render.section(about))
    fields = [
        f"*Severity*\n{render.escape(severity) or '—'}",
        f"*Alerts*\n{counts}",
        f"*Instance{'s' if len(firing) + len(resolved) > 1 else ''}*\n{listing(firing or resolved) or '—'}",
        f"*Since*\n{slack_date(view.fired_at)}",
    ]
    if view.status == "resolved" and view.resolved_at is not None:
        fields += [f"*Resolved*\n{slack_date(view.resolved_at)}",
                   f"*Duration*\n{duration((view.resolved_at - view.fired_at).total_seconds())}"]
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
    return render.message(text, blocks)


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
        lines.append(f":heavy_plus_sign: *{n} alert{'s' if n != 1 else ''} joined*: {listing(data['joined'], MAX_MEMBERS_KEPT, n)}")
    if data.get("left_n"):
        n = data["left_n"]
        lines.append(f":heavy_minus_sign: *{n} alert{'s' if n != 1 else ''} resolved*: {listing(data['left'], MAX_MEMBERS_KEPT, n)}")
    now = "now " + counts_text(data.get("firing", 0), data.get("resolved", 0))
    text = "; ".join(line.replace("*", "") for line in lines) + f" ({now})"  # names are escaped by listing()
    return render.message(text, [render.section("\n".join(lines)), render.context(now)])


def merge_membership(old: dict | None, joined: list[str], left: list[str], firing: int, resolved: int) -> dict:
    old = old or {}
    merged_joined = (old.get("joined", []) + sorted(joined))[:MAX_MEMBERS_KEPT]
    merged_left = (old.get("left", []) + sorted(left))[:MAX_MEMBERS_KEPT]
    return {
        "joined": merged_joined, "joined_n": old.get("joined_n", 0) + len(joined),
        "left": merged_left, "left_n": old.get("left_n", 0) + len(left),
        "firing": firing, "resolved": resolved,
    }


def resolved_message(view: GroupView, n: int) -> render.Message:
    lasted = duration(((view.resolved_at or datetime.now(timezone.utc)) - view.fired_at).total_seconds())
    text = f":white_check_mark: *Resolved* after {lasted}" + (f" — all {n} alerts resolved." if n > 1 else ".")
    return render.message(text.replace("*", ""), [render.section(text)])


def refire_message(was_resolved_for: float, firing: int) -> render.Message:
    text = (f":repeat: *Firing again* — it had been resolved for {duration(was_resolved_for)}. "
            f"{firing} firing; a new triage follows.")
    return render.message(text.replace("*", ""), [render.section(text)])


def triage_messages(title: str, findings: list[Finding], footer: str) -> list[render.Message]:
    """The triage report as one thread reply (headline + details), or two when it is long."""
    head = render.headline(title, findings, footer)
    body = render.details(title, findings)
    if len(head["blocks"]) + 1 + len(body["blocks"]) <= render.MAX_BLOCKS:
        return [{"text": head["text"], "blocks": head["blocks"] + [DividerBlock().to_dict()] + body["blocks"]}]
    return [head, body]


# Headers and membership replies are rendered by the outbox when it sends them, from the state of
# that moment: during a storm a header that changes with every notification is rendered once per
# message Slack actually gets, not once per notification.

HEADER, MEMBERSHIP = "alert.header", "alert.membership"

GROUP_FOR_HEADER = """
SELECT status, thread_key, group_labels, common_labels, annotations, external_url, fired_at, resolved_at
FROM alert_groups WHERE id = $1
"""
ALERTS_FOR_HEADER = f"""
SELECT fingerprint, status, {DISPLAY_SQL} AS display, labels->>'alertname' AS alertname, generator_url
FROM alerts WHERE group_id = $1
"""


@outbox.renderer(HEADER)
async def render_header(conn, data: dict, thread_key: str) -> render.Message | None:
    group = await conn.fetchrow(GROUP_FOR_HEADER, data["group_id"])
    if group is None or group["thread_key"] != thread_key:
        return None  # the group moved on to a new thread: this one keeps the text it was queued with
    rows = await conn.fetch(ALERTS_FOR_HEADER, data["group_id"])
    labels = json.loads(group["common_labels"])
    names = [labels["alertname"]] if labels.get("alertname") else sorted({r["alertname"] for r in rows if r["alertname"]})
    view = GroupView(
        status=group["status"], names=names or ["alert"], labels=labels, group_labels=json.loads(group["group_labels"]),
        annotations=json.loads(group["annotations"]), external_url=group["external_url"],
        generator_url=next((r["generator_url"] for r in rows if r["generator_url"]), ""),
        fired_at=group["fired_at"], resolved_at=group["resolved_at"],
        members={r["fingerprint"]: (r["status"], r["display"]) for r in rows},
    )
    return header_message(view)


@outbox.renderer(MEMBERSHIP)
async def render_membership(_conn, data: dict, _thread_key: str) -> render.Message:
    return membership_message(data)


# ---------------------------------------------------------------------- recording notifications
#
# Notifications that arrive together are recorded together (a group commit): one transaction locks
# their groups, reads what they knew, applies each notification in arrival order in memory and writes
# the net result with a handful of set-based statements. Under a storm that is a few round trips
# for dozens of notifications; alone, a notification is one small transaction as before.

MAX_BATCH_NOTIFICATIONS = 200
MAX_BATCH_ALERTS = 5000

_ALERT_COLUMNS = """fingerprint text, status text, labels jsonb, annotations jsonb, starts_at timestamptz,
                    ends_at timestamptz, generator_url text"""

UPSERT_GROUPS = """
INSERT INTO alert_groups (group_key, receiver, channel, thread_key, status, group_labels, common_labels,
                          annotations, external_url, fired_at, resolved_at, notifications, triage_state)
SELECT x.group_key, x.receiver, x.channel, x.thread_key, x.status, x.group_labels, x.common_labels, x.annotations,
       x.external_url, x.fired_at, x.resolved_at, x.notifications, x.triage_state
FROM jsonb_to_recordset($1::jsonb) AS x(group_key text, receiver text, channel text, thread_key text, status text,
     group_labels jsonb, common_labels jsonb, annotations jsonb, external_url text, fired_at timestamptz,
     resolved_at timestamptz, notifications bigint, triage_state text)
ORDER BY x.group_key  -- one lock order for every replica: no deadlock between batches
ON CONFLICT (group_key) DO UPDATE SET notifications = alert_groups.notifications + excluded.notifications
RETURNING id, group_key, xmax = 0 AS inserted, status, channel, thread_key, fired_at, resolved_at, triage_state,
          alerts_total, alerts_firing
"""

# what the groups' alerts were, and what of their threads is still unsent, once their rows are locked
# What the groups' alerts were, once their rows are locked: the alerts the notifications name, every
# alert of the groups a notification describes completely ($1: to tell who left), and what of their
# threads is still unsent. Nothing is read per alert that the batch does not name (the counts are
# kept on the group), so a notification costs the same in a group of 10 alerts or of 10,000.
READ_GROUPS = f"""
WITH {outbox.TAIL_CTES.format(keys="$2")},
named AS (SELECT * FROM jsonb_to_recordset($3::jsonb) AS x(group_id bigint, fingerprint text)),
known AS (
    SELECT a.group_id, a.fingerprint, a.status, a.labels FROM alerts a WHERE a.group_id = ANY($1::bigint[])
    UNION ALL
    SELECT a.group_id, a.fingerprint, a.status, a.labels FROM named n
    CROSS JOIN LATERAL (  -- one index lookup per alert named, whatever the size of the table (LIMIT: not a hash join)
        SELECT * FROM alerts a WHERE a.group_id = n.group_id AND a.fingerprint = n.fingerprint LIMIT 1) a
    WHERE NOT (n.group_id = ANY($1::bigint[])))
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_array(group_id, fingerprint, status, {DISPLAY_SQL})), '[]') FROM known
       ) AS previous,
       {outbox.TAIL_COLUMNS}
"""

WRITE_ALERTS = f"""
WITH received AS (
    INSERT INTO alerts_received (group_id, fingerprint, status, labels, annotations, starts_at, ends_at, generator_url)
    SELECT x.group_id, x.fingerprint, x.status, x.labels, x.annotations, x.starts_at, x.ends_at, coalesce(x.generator_url, '')
    FROM jsonb_to_recordset($1::jsonb) AS x(group_id bigint, {_ALERT_COLUMNS})
), upserted AS (
    INSERT INTO alerts (group_id, fingerprint, status, labels, annotations, starts_at, ends_at, generator_url)
    SELECT x.group_id, x.fingerprint, x.status, x.labels, x.annotations, x.starts_at, x.ends_at, coalesce(x.generator_url, '')
    FROM jsonb_to_recordset($2::jsonb) AS x(group_id bigint, {_ALERT_COLUMNS})
    ON CONFLICT (group_id, fingerprint) DO UPDATE SET
        status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
        starts_at = excluded.starts_at, ends_at = excluded.ends_at, generator_url = excluded.generator_url,
        updated_at = now()
), gone AS (
    UPDATE alerts a SET status = 'resolved', ends_at = coalesce(a.ends_at, now()), updated_at = now()
    FROM jsonb_to_recordset($3::jsonb) AS x(group_id bigint, fingerprint text)
    WHERE a.group_id = x.group_id AND a.fingerprint = x.fingerprint
), moved AS (
    UPDATE alert_groups g SET
        status = coalesce(x.status, g.status), thread_key = coalesce(x.thread_key, g.thread_key),
        channel = coalesce(x.channel, g.channel), fired_at = coalesce(x.fired_at, g.fired_at),
        resolved_at = CASE WHEN x.status IS NULL THEN g.resolved_at ELSE x.resolved_at END,
        group_labels = coalesce(x.group_labels, g.group_labels), common_labels = coalesce(x.common_labels, g.common_labels),
        annotations = coalesce(x.annotations, g.annotations), external_url = coalesce(x.external_url, g.external_url),
        receiver = coalesce(x.receiver, g.receiver), triage_state = coalesce(x.triage_state, g.triage_state),
        alerts_total = x.alerts_total, alerts_firing = x.alerts_firing,
        updated_at = CASE WHEN x.status IS NULL THEN g.updated_at ELSE now() END
    FROM jsonb_to_recordset($4::jsonb) AS x(id bigint, status text, thread_key text, channel text,
         fired_at timestamptz, resolved_at timestamptz, group_labels jsonb, common_labels jsonb, annotations jsonb,
         external_url text, receiver text, triage_state text, alerts_total int, alerts_firing int)
    WHERE g.id = x.id
), {outbox.WRITE_CTES.format(rows="$5", rewrites="$6")}
SELECT 1
"""


@dataclass
class Recorded:
    group_id: int
    outcome: str  # new | joined | resolved | refired | repeat
    alerts: int
    triage: bool  # a triage should run for the group now
    queued: int  # Slack messages queued or changed


def _alert_row(alert: WebhookAlert, group_id: int | None = None) -> dict:
    row = {"fingerprint": alert.fingerprint, "status": alert.status, "labels": alert.labels,
           "annotations": alert.annotations, "starts_at": _iso(zero_to_none(alert.startsAt)),
           "ends_at": _iso(zero_to_none(alert.endsAt)), "generator_url": alert.generatorURL}
    if group_id is not None:
        row["group_id"] = group_id
    return row


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


class _Thread:
    """A thread's outbox rows as this batch changes them: new rows, and unsent rows it claimed."""

    def __init__(self, key: str, channel: str, tail: outbox.Tail | None, new_rows: list[dict], rewrites: dict):
        self.key, self.channel = key, channel
        self.new_rows, self.rewrites = new_rows, rewrites
        tail = tail or outbox.Tail()
        self.head_pending = tail.head_pending
        self.reply = tail.reply  # the newest unsent reply, if it may still change: a new row or a claimed one
        self.header = tail.claimed.get(tail.last_header) if tail.header_claimed else None

    def _queue(self, op: str, kind: str, message: dict, data=None) -> dict:
        row = {"thread_key": self.key, "channel": self.channel, "op": op, "kind": kind, "message": message, "data": data}
        self.new_rows.append(row)
        return row

    def _changed(self, row: dict, **content) -> None:
        row.update(content)
        if "id" in row:  # a claimed row of the database
            self.rewrites.setdefault(row["id"], {"id": row["id"]}).update(content)

    def post_header(self, fallback: dict, data: dict) -> None:
        self.header = self._queue("post", HEADER, fallback, data)
        self.head_pending = True

    def touch_header(self, fallback: dict, data: dict) -> int:
        """The header must show the group's state: rendered when sent, so an unsent one needs nothing."""
        if self.header is not None:
            # rendered when sent; the fallback text (used if the group has moved on to another thread
            # by then) is kept current too
            self._changed(self.header, message=fallback)
            return 0
        self.header = self._queue("update", HEADER, fallback, data)
        return 1

    def add_reply(self, kind: str, message: dict) -> None:
        self.reply = self._queue("reply", kind, message)

    def membership(self, joined: list[str], left: list[str], firing: int, resolved: int) -> None:
        if self.reply is not None and self.reply["kind"] == MEMBERSHIP:
            self._changed(self.reply, data=merge_membership(self.reply["data"], joined, left, firing, resolved))
        else:
            news = merge_membership(None, joined, left, firing, resolved)
            self.reply = self._queue("reply", MEMBERSHIP, {"text": membership_text(news)}, news)


@dataclass
class _Group:
    """One alert group while a batch is recorded."""

    id: int
    key: str
    inserted: bool
    status: str
    channel: str
    thread_key: str
    fired_at: datetime
    resolved_at: datetime | None
    triage_state: str
    members: dict[str, tuple[str, str]]  # fingerprint -> (status, name) of the alerts read, as the batch left them
    thread: _Thread
    total: int = 0  # alerts in the group (this episode)
    firing: int = 0
    labels: dict = field(default_factory=dict)  # what the last notification said
    payload: dict = field(default_factory=dict)
    restarted: bool = False  # a new episode: the old alerts go before the new ones are written
    moved: bool = False  # the group's row must be written
    upserts: dict = field(default_factory=dict)  # fingerprint -> alert row
    gone: set = field(default_factory=set)


def _group_insert(hook: Webhook, channel: str, now: datetime, notifications: int) -> dict:
    firing = [zero_to_none(a.startsAt) for a in hook.alerts if a.status == "firing"]
    return {
        "group_key": hook.groupKey, "receiver": hook.receiver, "channel": channel,
        "thread_key": f"alert:{uuid.uuid4().hex}", "status": hook.status, "group_labels": hook.groupLabels,
        "common_labels": hook.commonLabels, "annotations": group_annotations(hook), "external_url": hook.externalURL,
        "fired_at": _iso(min((s for s in firing if s), default=now)),
        "resolved_at": _iso(_resolved_at(hook, now)), "notifications": notifications,
        "triage_state": "pending" if hook.status == "firing" else "done",
    }


def _resolved_at(hook: Webhook, now: datetime) -> datetime | None:
    if hook.status != "resolved":
        return None
    ends = [zero_to_none(a.endsAt) for a in hook.alerts if a.status == "resolved"]
    return min(max((e for e in ends if e), default=now), now)


def _apply(group: _Group, hook: Webhook, channel: str, settings, now: datetime) -> Recorded:
    """One notification against the group's state in memory: what changed, and the messages it means."""
    incoming = {a.fingerprint: a for a in hook.alerts}  # the same alert twice in one notification is one alert
    firing_starts = [zero_to_none(a.startsAt) for a in incoming.values() if a.status == "firing"]
    episode_start = min((s for s in firing_starts if s), default=now)
    resolved_at = _resolved_at(hook, now)
    annotations = group_annotations(hook)
    ALERTS_RECEIVED.labels("firing").inc(len(firing_starts))
    ALERTS_RECEIVED.labels("resolved").inc(len(incoming) - len(firing_starts))

    outcome, refire_gap, first = "repeat", None, group.inserted
    group.inserted = False  # the next notification of this batch finds the group there
    if first:
        outcome = "new"
    elif group.status == "resolved" and hook.status == "firing":
        group.members, group.upserts, group.gone = {}, {}, set()  # the old episode's alerts are history
        group.total = group.firing = 0
        group.restarted = True
        refire_gap = (now - group.resolved_at).total_seconds() if group.resolved_at else None
        if refire_gap is None or refire_gap > settings.erpgo_alert_refire_window:
            outcome, group.channel = "new", channel
            group.thread_key = f"alert:{uuid.uuid4().hex}"
            group.thread = _Thread(group.thread_key, channel, None, group.thread.new_rows, group.thread.rewrites)
        else:
            outcome = "refired"
        group.fired_at, group.triage_state = episode_start, "pending"

    joined, left = [], []
    for fp, alert in incoming.items():
        name = display_name(alert.labels, fp)
        before = group.members.get(fp, (None, name))[0]
        if before != alert.status:
            group.total += before is None
            group.firing += (alert.status == "firing") - (before == "firing")
            if alert.status == "firing":
                joined.append(name)
            elif before == "firing":
                left.append(name)
            group.upserts[fp] = alert
            group.gone.discard(fp)
        group.members[fp] = (alert.status, name)
    if hook.status == "resolved" or hook.truncatedAlerts == 0:
        # firing alerts the notification no longer carries have left the group
        for fp, (status, name) in list(group.members.items()):
            if status == "firing" and fp not in incoming:
                left.append(name)
                group.firing -= 1
                group.members[fp] = ("resolved", name)
                if fp in group.upserts:
                    group.upserts[fp] = group.upserts[fp].model_copy(update={"status": "resolved", "endsAt": now})
                else:
                    group.gone.add(fp)

    if outcome == "repeat" and group.status == "firing":
        if hook.status == "resolved":
            outcome = "resolved"
        elif joined or left:
            outcome = "joined"
    if outcome == "repeat":
        return Recorded(group.id, outcome, len(incoming), False, 0)

    group.status = hook.status
    group.resolved_at = resolved_at if hook.status == "resolved" else None
    group.labels = {"names": alertnames(hook), "common": hook.commonLabels, "group": hook.groupLabels}
    group.payload = {"annotations": annotations, "external_url": hook.externalURL, "receiver": hook.receiver}
    if not first:
        group.moved = True
    view = GroupView(  # what the header's text and the replies need; the header itself is rendered when sent
        status=group.status, names=alertnames(hook), labels=hook.commonLabels, group_labels=hook.groupLabels,
        annotations=annotations, external_url=hook.externalURL, generator_url="",
        fired_at=group.fired_at, resolved_at=group.resolved_at,
    )
    firing, resolved = group.firing, group.total - group.firing
    fallback = {"text": header_text(view, firing, resolved)}  # the header until the outbox renders it
    data = {"group_id": group.id}
    thread, queued = group.thread, 0
    if outcome == "new":
        thread.post_header(fallback, data)
        queued = 1
    else:
        if outcome == "resolved":
            thread.add_reply("alert.resolved", resolved_message(view, group.total))
            queued += 1
        elif outcome == "refired":
            thread.add_reply("alert.refire", refire_message(refire_gap or 0, firing))
            queued += 1
        elif not thread.head_pending:  # joined/left: an unsent header will show them anyway
            thread.membership(joined, left, firing, resolved)
            queued += 1
        queued += thread.touch_header(fallback, data)
    # membership changes are frequent in a storm: logged at debug level, the rest at info
    (log.debug if outcome == "joined" else log.info)(
        "alert_group", outcome=outcome, group_id=group.id, alertname=view.title, status=group.status,
        firing=firing, joined=len(joined), left=len(left))
    triage = group.status == "firing" and outcome in ("new", "refired")
    return Recorded(group.id, outcome, len(incoming), triage, queued)


async def record_batch(conn, settings, items: list[tuple[Webhook, str]]) -> list[Recorded]:
    """Record notifications (webhook, routed channel) in the caller's transaction, in list order per group."""
    now = datetime.now(timezone.utc)
    firsts: dict[str, dict] = {}
    for hook, channel in items:
        if hook.groupKey not in firsts:
            firsts[hook.groupKey] = _group_insert(hook, channel, now, 0)
        firsts[hook.groupKey]["notifications"] += 1
    rows = await conn.fetch(UPSERT_GROUPS, json.dumps(list(firsts.values())))
    existing = {r["group_key"]: r["id"] for r in rows if not r["inserted"]}
    previous: dict[int, dict] = {r["id"]: {} for r in rows}
    found_tails: dict[str, outbox.Tail] = {}
    if existing:
        complete = {existing[h.groupKey] for h, _ in items
                    if h.groupKey in existing and (h.truncatedAlerts == 0 or h.status == "resolved")}
        named = [{"group_id": existing[h.groupKey], "fingerprint": a.fingerprint} for h, _ in items
                 if h.groupKey in existing and existing[h.groupKey] not in complete for a in h.alerts]
        keys = [r["thread_key"] for r in rows if not r["inserted"]]
        read = await conn.fetchrow(READ_GROUPS, list(complete), keys, json.dumps(named))
        for group_id, fp, status, name in json.loads(read["previous"]):
            previous[group_id][fp] = (status, name)
        found_tails = outbox.parse_tails(keys, read)
    new_rows: list[dict] = []
    rewrites: dict[int, dict] = {}
    groups = {
        r["group_key"]: _Group(
            id=r["id"], key=r["group_key"], inserted=r["inserted"], status=r["status"], channel=r["channel"],
            thread_key=r["thread_key"], fired_at=r["fired_at"], resolved_at=r["resolved_at"],
            triage_state=r["triage_state"], members=previous[r["id"]],
            thread=_Thread(r["thread_key"], r["channel"], found_tails.get(r["thread_key"]), new_rows, rewrites),
            total=r["alerts_total"], firing=r["alerts_firing"],
        )
        for r in rows
    }
    results = [_apply(groups[hook.groupKey], hook, channel, settings, now) for hook, channel in items]

    restarted = [g.id for g in groups.values() if g.restarted]
    if restarted:
        await conn.execute("DELETE FROM alerts WHERE group_id = ANY($1::bigint[])", restarted)
    received = [_alert_row(alert, groups[hook.groupKey].id) for hook, _ in items
                for alert in {a.fingerprint: a for a in hook.alerts}.values()]
    upserts = [_alert_row(alert, g.id) for g in groups.values() for alert in g.upserts.values()]
    gone = [{"group_id": g.id, "fingerprint": fp} for g in groups.values() for fp in g.gone]
    moved = []  # groups whose state moved on (everything), or only their counts
    for g in groups.values():
        if g.moved:
            moved.append({
                "id": g.id, "status": g.status, "thread_key": g.thread_key, "channel": g.channel,
                "fired_at": _iso(g.fired_at), "resolved_at": _iso(g.resolved_at), "group_labels": g.labels["group"],
                "common_labels": g.labels["common"], "annotations": g.payload["annotations"],
                "external_url": g.payload["external_url"], "receiver": g.payload["receiver"],
                "triage_state": g.triage_state, "alerts_total": g.total, "alerts_firing": g.firing})
        elif g.upserts or g.gone or g.restarted:
            moved.append({"id": g.id, "alerts_total": g.total, "alerts_firing": g.firing})
    await conn.execute(WRITE_ALERTS, json.dumps(received), json.dumps(upserts), json.dumps(gone), json.dumps(moved),
                       *outbox.write_params(new_rows, list(rewrites.values())))
    return results


# what PostgreSQL may refuse in one notification (a value it cannot store), not in the whole batch
REFUSED_DATA = (asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError,
                asyncpg.exceptions.ProgramLimitExceededError)


class Recorder:
    """Records the notifications of concurrent webhook requests together (a group commit).

    `await recorder.submit(hook, channel)` returns once the notification is committed, or raises
    when it could not be. While one batch is being written, the requests that arrive wait for the
    next; a batch that fails is retried one notification at a time, so one notification the
    database refuses cannot take others down with it."""

    def __init__(self, store, settings, writers: int = 2, busy: int = 8):
        self.store = store
        self.settings = settings
        self.writers = writers  # batches written at once, each on its own connection ...
        self.busy = busy  # ... the next one only when this many notifications are waiting
        self._queue: deque[tuple[Webhook, str, asyncio.Future]] = deque()
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, hook: Webhook, channel: str) -> Recorded:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((hook, channel, future))
        if not self._tasks or (len(self._tasks) < self.writers and len(self._queue) >= self.busy):
            task = asyncio.create_task(self._drain(), name="alert-recorder")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> list[tuple[Webhook, str, asyncio.Future]]:
        taken, alerts = [], 0
        while self._queue and len(taken) < MAX_BATCH_NOTIFICATIONS:
            alerts += len(self._queue[0][0].alerts)
            if taken and alerts > MAX_BATCH_ALERTS:
                break
            taken.append(self._queue.popleft())
        return taken

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1 or not isinstance(exc, REFUSED_DATA):
                    _settle(batch, error=exc)  # e.g. the database is down: every one of them gets a 503
                    continue
                for item in batch:  # find the one that cannot be recorded; record the others
                    try:
                        await self._write([item])
                    except Exception as single:
                        _settle([item], error=single)

    async def _write(self, batch) -> None:
        started = time.perf_counter()
        await self.store.ready()
        async with self.store.acquire() as conn:
            async with conn.transaction():
                results = await record_batch(conn, self.settings, [(hook, channel) for hook, channel, _ in batch])
        _settle(batch, results=results)
        log.debug("alert_batch_recorded", notifications=len(batch), duration_ms=round((time.perf_counter() - started) * 1000, 1))


def _settle(batch, *, results=None, error: Exception | None = None) -> None:
    for n, (_hook, _channel, future) in enumerate(batch):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(results[n])


# ---------------------------------------------------------------------- triage

_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _triage_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(TRIAGE_CONCURRENCY)
    return _slots[loop]


def triage_checks(registry: Registry, names: list[str], labels: dict[str, str]) -> list[Check]:
    """The checks mapped to any of the alert names (runbooks/triage.py); the health checks when none is."""
    chosen: dict[str, Check] = {}
    for name in names:
        for check in registry.checks_for_alert(name, {**labels, "alertname": name}):
            chosen.setdefault(check.name, check)
    if not chosen and "health" in registry.verbs:
        return list(registry.verbs["health"].checks)
    return list(chosen.values())


CLAIM_TRIAGE = f"""
UPDATE alert_groups SET triage_state = 'running', triage_started_at = now()
WHERE id = $1 AND status = 'firing'
  AND (triage_state = 'pending' OR (triage_state = 'running' AND triage_started_at < now() - interval '{TRIAGE_STALE}'))
RETURNING common_labels, fired_at
"""


@dataclass
class Triaged:
    findings: list[Finding]
    last_row: int  # the outbox row of the report's last message


async def triage_group(runtime, group_id: int) -> Triaged | None:
    """Run the group's triage checks and queue the report in its thread (once, whichever replica claims it).

    None when there is nothing to do (already triaged, resolved meanwhile) or it could not be queued.
    At most TRIAGE_CONCURRENCY run at once, database work included: a storm of new groups waits its
    turn instead of crowding the bot's database pool."""
    async with _triage_slots():
        return await _triage(runtime, group_id)


async def _triage(runtime, group_id: int) -> Triaged | None:
    store = runtime.store
    async with store.acquire() as conn:
        group = await conn.fetchrow(CLAIM_TRIAGE, group_id)
        if group is None:
            return None
        names = [r["name"] for r in await conn.fetch(
            "SELECT DISTINCT labels->>'alertname' AS name FROM alerts WHERE group_id = $1 AND status = 'firing'"
            " AND labels ? 'alertname' ORDER BY 1", group_id)]
    labels = json.loads(group["common_labels"])
    names = names or [labels.get("alertname", "alert")]
    checks = triage_checks(runtime.registry, names, labels)
    since = group["fired_at"] - TRIAGE_LOOKBACK
    ctx = CheckContext(runtime.targets, runtime.settings,
                       {"requester": "alertmanager", "since": since, "alert_labels": labels, "alertnames": names})
    started = time.perf_counter()
    findings = await run_checks(checks, ctx)
    elapsed = time.perf_counter() - started
    title = f"Triage: {', '.join(names[:3])}"
    footer = f"automatic triage of the alert · {len(checks)} checks · {elapsed:.2f} s"
    messages = triage_messages(title, findings, footer)
    last_row = 0
    for attempt in range(6):
        try:
            async with store.acquire() as conn:
                async with conn.transaction():
                    current = await conn.fetchrow(
                        "SELECT thread_key, channel FROM alert_groups WHERE id = $1 FOR UPDATE", group_id)
                    for message in messages:
                        last_row = await outbox.enqueue(conn, current["thread_key"], current["channel"], "reply",
                                                        message, kind="triage")
                    await conn.execute(
                        "UPDATE alert_groups SET triage_state = 'done' WHERE id = $1 AND triage_state = 'running'", group_id)
            break
        except Exception as exc:  # the bot database blinked: the report is kept and retried for a while
            if attempt == 5:
                log.error("triage_not_queued", group_id=group_id, error=describe_error(exc))
                return None
            await asyncio.sleep(min(10, 0.5 * 2 ** attempt))
    if runtime.outbox is not None:
        runtime.outbox.wake()
    log.info("alert_triaged", group_id=group_id, checks=len(checks), findings=len(findings),
             duration_ms=round(elapsed * 1000, 1))
    return Triaged(findings, last_row)


async def unfinished_triage(store) -> list[int]:
    """Groups whose triage a previous process accepted but did not finish (it stopped or died)."""
    await store.ready()
    async with store.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT id FROM alert_groups WHERE status = 'firing' AND updated_at > now() - interval '1 day'
                AND (triage_state = 'pending'
                     OR (triage_state = 'running' AND triage_started_at < now() - interval '{TRIAGE_STALE}'))""")
    return [row["id"] for row in rows]


# ---------------------------------------------------------------------- /erpgo alerts

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


async def open_groups(store, limit: int = 25) -> tuple[list[OpenGroup], int]:
    async with store.acquire() as conn:
        rows = await conn.fetch(
            """SELECT g.id, g.common_labels, g.annotations, g.fired_at, g.channel, t.channel AS thread_channel, t.ts,
                      g.alerts_firing AS firing,
                      (SELECT string_agg(DISTINCT a.labels->>'alertname', ', ') FROM alerts a
                        WHERE a.group_id = g.id AND a.status = 'firing') AS names,
                      count(*) OVER () AS total
               FROM alert_groups g LEFT JOIN slack_threads t ON t.thread_key = g.thread_key
               WHERE g.status = 'firing' ORDER BY g.fired_at DESC LIMIT $1""", limit)
    groups = []
    for r in rows:
        labels, annotations = json.loads(r["common_labels"]), json.loads(r["annotations"])
        groups.append(OpenGroup(
            r["id"], labels.get("alertname") or r["names"] or "alert", labels.get("severity", ""),
            annotations.get("summary", ""), r["firing"], r["fired_at"], r["thread_channel"] or r["channel"], r["ts"]))
    return groups, (rows[0]["total"] if rows else 0)


def open_groups_message(groups: list[OpenGroup], total: int, links: dict[int, str]) -> render.Message:
    if not groups:
        return render.text_message(":white_check_mark: No alert is firing.")
    lines = [f"*{total} alert group{'s' if total != 1 else ''} firing*"]
    for g in groups:
        where = f"<{links[g.group_id]}|thread>" if g.group_id in links else (
            f"thread in <#{g.channel}>" if g.ts else "_thread not posted yet (queued)_")
        severity = f" ({render.escape(g.severity)})" if g.severity else ""
        summary = f" — {render.escape(g.summary[:120])}" if g.summary else ""
        lines.append(f":fire: *{render.escape(g.title)}*{severity}{summary} · {g.firing} firing since "
                     f"{slack_date(g.fired_at)} · {where}")
    if total > len(groups):
        lines.append(f"_… and {total - len(groups)} more_")
    return render.text_message("\n".join(lines))
