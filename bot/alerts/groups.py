"""The alert group state machine: one notification against a group's state in memory gives what
changed (new, joined, resolved, refired, repeat) and the messages that announce it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from bot.alerts.messages import (
    HEADER,
    MEMBERSHIP,
    GroupView,
    header_text,
    membership_text,
    merge_membership,
    refire_message,
    resolved_message,
)
from bot.alerts.webhook import (
    Webhook,
    WebhookAlert,
    alertnames,
    display_name,
    group_annotations,
    zero_to_none,
)
from bot.core.logs import log
from bot.core.metrics import ALERTS_RECEIVED
from bot.settings import Settings
from bot.slack import outbox

_FIRING, _RESOLVED = ALERTS_RECEIVED.labels("firing"), ALERTS_RECEIVED.labels("resolved")


@dataclass
class Recorded:
    group_id: int
    outcome: str  # new | joined | resolved | refired | repeat
    alerts: int
    triage: bool  # a triage should run for the group now
    queued: int  # Slack messages queued or changed


def alert_columns(alerts: list[tuple[int, WebhookAlert]]) -> list[list]:
    """(group id, alert) pairs as the column arrays of ALERT_ARRAYS: one statement writes them all."""
    columns: list[list] = [[], [], [], [], [], [], [], []]
    group_ids, fingerprints, statuses, labels, annotations, starts, ends, urls = columns
    for group_id, alert in alerts:
        group_ids.append(group_id)
        fingerprints.append(alert.fingerprint)
        statuses.append(alert.status)
        labels.append(_JSON.encode(alert.labels).decode())
        annotations.append(_JSON.encode(alert.annotations).decode())
        starts.append(zero_to_none(alert.startsAt))
        ends.append(zero_to_none(alert.endsAt))
        urls.append(alert.generatorURL)
    return columns


_JSON = msgspec.json.Encoder()

# the columns alert_columns gives, from parameter ${n} on
ALERT_ARRAYS = (
    "unnest(${0}::bigint[], ${1}::text[], ${2}::text[], ${3}::jsonb[], ${4}::jsonb[], ${5}::timestamptz[],"
    " ${6}::timestamptz[], ${7}::text[]) AS x(group_id, fingerprint, status, labels, annotations, starts_at, ends_at,"
    " generator_url)"
)


def alert_arrays(first: int) -> str:
    return ALERT_ARRAYS.format(*range(first, first + 8))


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


class Thread:
    """A thread's outbox rows as this batch changes them: new rows, and unsent rows it claimed."""

    def __init__(self, key: str, channel: str, tail: outbox.Tail | None, new_rows: list[dict], rewrites: dict):
        self.key, self.channel = key, channel
        self.new_rows, self.rewrites = new_rows, rewrites
        tail = tail or outbox.Tail()
        self.head_pending = tail.head_pending
        self.reply = tail.reply  # the newest unsent reply, if it may still change: a new row or a claimed one
        self.header = (
            tail.claimed.get(tail.last_header) if tail.last_header is not None and tail.header_claimed else None
        )

    def _queue(self, op: str, kind: str, message: dict[str, Any], data: Any = None) -> dict[str, Any]:
        row = {
            "thread_key": self.key,
            "channel": self.channel,
            "op": op,
            "kind": kind,
            "message": message,
            "data": data,
        }
        self.new_rows.append(row)
        return row

    def _changed(self, row: dict, **content: Any) -> None:
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
class Group:
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
    thread: Thread
    total: int = 0  # alerts in the group (this episode)
    firing: int = 0
    labels: dict = field(default_factory=dict)  # what the last notification said
    payload: dict = field(default_factory=dict)
    restarted: bool = False  # a new episode: the old alerts go before the new ones are written
    moved: bool = False  # the group's row must be written
    upserts: dict = field(default_factory=dict)  # fingerprint -> alert row
    gone: set = field(default_factory=set)


def group_insert(hook: Webhook, channel: str, now: datetime, notifications: int) -> dict:
    firing = [zero_to_none(a.startsAt) for a in hook.alerts if a.status == "firing"]
    return {
        "group_key": hook.groupKey,
        "receiver": hook.receiver,
        "channel": channel,  # the thread key of a new group is made by the statement that inserts it
        "status": hook.status,
        "group_labels": hook.groupLabels,
        "common_labels": hook.commonLabels,
        "annotations": group_annotations(hook),
        "external_url": hook.externalURL,
        "fired_at": iso(min((s for s in firing if s), default=now)),
        "resolved_at": iso(resolved_at_of(hook, now)),
        "notifications": notifications,
        "triage_state": "pending" if hook.status == "firing" else "done",
    }


def resolved_at_of(hook: Webhook, now: datetime) -> datetime | None:
    if hook.status != "resolved":
        return None
    ends = [zero_to_none(a.endsAt) for a in hook.alerts if a.status == "resolved"]
    return min(max((e for e in ends if e), default=now), now)


def apply_notification(group: Group, hook: Webhook, channel: str, settings: Settings, now: datetime) -> Recorded:
    """One notification against the group's state in memory: what changed, and the messages it means."""
    incoming = {a.fingerprint: a for a in hook.alerts}  # the same alert twice in one notification is one alert
    firing_starts = [zero_to_none(a.startsAt) for a in incoming.values() if a.status == "firing"]
    episode_start = min((s for s in firing_starts if s), default=now)
    _FIRING.inc(len(firing_starts))
    _RESOLVED.inc(len(incoming) - len(firing_starts))
    first = group.inserted
    group.inserted = False  # the next notification of this batch finds the group there
    outcome, refire_gap = episode(group, hook, channel, settings, first, now)
    if outcome in ("new", "refired") and not first:
        group.fired_at, group.triage_state = episode_start, "pending"
    joined, left = membership(group, hook, incoming, now)
    if outcome == "repeat" and group.status == "firing":
        if hook.status == "resolved":
            outcome = "resolved"
        elif joined or left:
            outcome = "joined"
    if outcome == "repeat":
        return Recorded(group.id, outcome, len(incoming), False, 0)
    group.status = hook.status
    group.resolved_at = resolved_at_of(hook, now) if hook.status == "resolved" else None
    annotations = group_annotations(hook)
    group.labels = {"names": alertnames(hook), "common": hook.commonLabels, "group": hook.groupLabels}
    group.payload = {"annotations": annotations, "external_url": hook.externalURL, "receiver": hook.receiver}
    if not first:
        group.moved = True
    view = GroupView(  # what the header's text and the replies need; the header itself is rendered when sent
        status=group.status,
        names=alertnames(hook),
        labels=hook.commonLabels,
        group_labels=hook.groupLabels,
        annotations=annotations,
        external_url=hook.externalURL,
        generator_url="",
        fired_at=group.fired_at,
        resolved_at=group.resolved_at,
    )
    queued = thread_messages(group, view, outcome, refire_gap, (joined, left), settings)
    # membership changes are frequent in a storm: logged at debug level, the rest at info
    (log.debug if outcome == "joined" else log.info)(
        "alert_group",
        outcome=outcome,
        group_id=group.id,
        alertname=view.title,
        status=group.status,
        firing=group.firing,
        joined=len(joined),
        left=len(left),
    )
    triage = group.status == "firing" and outcome in ("new", "refired")
    return Recorded(group.id, outcome, len(incoming), triage, queued)


def episode(
    group: Group, hook: Webhook, channel: str, settings: Settings, first: bool, now: datetime
) -> tuple[str, float | None]:
    """("new" | "refired" | "repeat", seconds since it resolved): a resolved group that fires again starts
    an episode — in a new thread when it had been quiet longer than ERPGO_ALERT_REFIRE_WINDOW."""
    if first:
        return "new", None
    if not (group.status == "resolved" and hook.status == "firing"):
        return "repeat", None
    group.members, group.upserts, group.gone = {}, {}, set()  # the old episode's alerts are history
    group.total = group.firing = 0
    group.restarted = True
    gap = (now - group.resolved_at).total_seconds() if group.resolved_at else None
    if gap is not None and gap <= settings.erpgo_alert_refire_window:
        return "refired", gap
    group.channel = channel
    group.thread_key = f"alert:{uuid.uuid4().hex}"
    group.thread = Thread(group.thread_key, channel, None, group.thread.new_rows, group.thread.rewrites)
    return "new", gap


def membership(group: Group, hook: Webhook, incoming: dict[str, Any], now: datetime) -> tuple[list[str], list[str]]:
    """(alerts that joined, alerts that left) with this notification; the group's members updated."""
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
                    group.upserts[fp] = msgspec.structs.replace(group.upserts[fp], status="resolved", endsAt=now)
                else:
                    group.gone.add(fp)
    return joined, left


def thread_messages(
    group: Group,
    view: GroupView,
    outcome: str,
    refire_gap: float | None,
    changes: tuple[list[str], list[str]],
    settings: Settings,
) -> int:
    """The header posted or touched, and the reply the outcome means; how many rows that queues."""
    firing, resolved = group.firing, group.total - group.firing
    fallback = {"text": header_text(view, firing, resolved)}  # the header until the outbox renders it
    data = {"group_id": group.id}
    thread = group.thread
    if outcome == "new":
        thread.post_header(fallback, data)
        return 1
    queued = 0
    if outcome == "resolved":
        thread.add_reply("alert.resolved", resolved_message(view, group.total))
        queued += 1
    elif outcome == "refired":
        thread.add_reply("alert.refire", refire_message(refire_gap or 0, firing))
        queued += 1
    elif not thread.head_pending and settings.erpgo_alert_updates == "thread":
        # joined/left: an unsent header will show them anyway; ERPGO_ALERT_UPDATES=header: only it does
        thread.membership(*changes, firing, resolved)
        queued += 1
    return queued + thread.touch_header(fallback, data)
