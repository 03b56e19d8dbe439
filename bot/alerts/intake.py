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
state). With truncatedAlerts > 0 (webhook `max_alerts`), absent alerts are left as they were."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from bot.alerts.groups import (
    Group,
    Recorded,
    Thread,
    alert_arrays,
    alert_columns,
    apply_notification,
    group_insert,
    iso,
)
from bot.alerts.messages import OpenGroup
from bot.alerts.webhook import DISPLAY_SQL, IntakeError, Webhook, redact_webhook
from bot.core.errors import describe_error, is_unreachable
from bot.core.logs import log
from bot.core.tasks import PeopleFirst
from bot.settings import Settings
from bot.slack import outbox
from bot.store.pool import Store

# ---------------------------------------------------------------------- recording notifications
#
# Notifications that arrive together are recorded together (a group commit): one transaction locks
# their groups, reads what they knew, applies each notification in arrival order in memory and writes
# the net result with a handful of set-based statements. Under a storm that is a few round trips
# for dozens of notifications; alone, a notification is one small transaction as before.

MAX_BATCH_NOTIFICATIONS = 200
MAX_BATCH_ALERTS = 5000
# alerts received in a batch from which a COPY, even with its extra round trip, costs less than the
# statement's unnest (COPY and an empty statement against the unnest, in a quiet PostgreSQL 15:
# 0.49 against 0.47 ms for 10 rows, 0.60 against 0.65 for 20, 1.61 against 2.08 for 100)
COPY_FROM = 32
RECEIVED = ["group_id", "fingerprint", "status", "labels", "annotations", "starts_at", "ends_at", "generator_url"]

UPSERT_GROUPS = """
INSERT INTO alert_groups (group_key, receiver, channel, thread_key, status, group_labels, common_labels,
                          annotations, external_url, fired_at, resolved_at, notifications, triage_state)
SELECT x.group_key, x.receiver, x.channel, 'alert:' || replace(gen_random_uuid()::text, '-', ''), x.status, x.group_labels, x.common_labels, x.annotations,
       x.external_url, x.fired_at, x.resolved_at, x.notifications, x.triage_state
FROM jsonb_to_recordset($1::jsonb) AS x(group_key text, receiver text, channel text, status text,
     group_labels jsonb, common_labels jsonb, annotations jsonb, external_url text, fired_at timestamptz,
     resolved_at timestamptz, notifications bigint, triage_state text)
ORDER BY x.group_key  -- one lock order for every replica: no deadlock between batches
ON CONFLICT (group_key) DO UPDATE SET notifications = alert_groups.notifications + excluded.notifications
RETURNING id, group_key, xmax = 0 AS inserted, status, channel, thread_key, fired_at, resolved_at, triage_state,
          alerts_total, alerts_firing, notifications
"""

# What the groups' alerts were: the alerts the notifications name ($3, $4: group keys and fingerprints), every
# alert of the groups a notification describes completely ($2: to tell who left), and what of their threads is
# still unsent. Nothing is read per alert that the batch does not name (the counts are kept on the group), so a
# notification costs the same in a group of 10 alerts or of 10,000. OFFSET 0 keeps each lookup an index scan.
KNOWN_ALERTS = """
named AS (SELECT * FROM unnest($3::text[], $4::text[]) AS x(group_key, fingerprint)),
known AS (
    SELECT a.* FROM up CROSS JOIN LATERAL (
        SELECT a.group_id, a.fingerprint, a.status, a.labels FROM alerts a WHERE a.group_id = up.id OFFSET 0) a
    WHERE NOT up.inserted AND up.group_key = ANY($2::text[])
    UNION ALL
    SELECT a.* FROM named n JOIN up ON up.group_key = n.group_key AND NOT up.inserted CROSS JOIN LATERAL (
        SELECT a.group_id, a.fingerprint, a.status, a.labels FROM alerts a
        WHERE a.group_id = up.id AND a.fingerprint = n.fingerprint LIMIT 1) a)
"""

# The known alerts as four arrays of one aggregate (so in one order): a storm reads thousands, and building
# a jsonb value of each cost PostgreSQL three times as much as reading them
PREVIOUS = f"""(SELECT array_agg(group_id) AS group_ids, array_agg(fingerprint) AS fingerprints,
       array_agg(status) AS statuses, array_agg({DISPLAY_SQL}) AS names FROM known) AS previous"""

# Lock the batch's groups (creating the new ones) and read what they knew, in one round trip. The reads
# see the statement's snapshot, taken before the locks were granted: when another transaction recorded a
# notification of one of the groups in between (`seen` is then not what the group counted before this
# batch), record_batch reads again, now that the locks are held (READ_GROUPS).
LOCK_AND_READ = f"""
WITH up AS ({UPSERT_GROUPS}),
seen AS (SELECT g.group_key, g.notifications FROM alert_groups g WHERE g.group_key IN (SELECT group_key FROM up)),
{outbox.TAIL_CTES.format(keys="ARRAY(SELECT thread_key FROM up WHERE NOT inserted)")},
{KNOWN_ALERTS}
SELECT (SELECT jsonb_agg(to_jsonb(up) || jsonb_build_object('seen', seen.notifications))
        FROM up LEFT JOIN seen USING (group_key)) AS groups,
       previous.*,
       {outbox.TAIL_COLUMNS}
FROM {PREVIOUS}
"""

# the same reads, in a statement of their own, once the groups ($1: their ids) are locked
READ_GROUPS = f"""
WITH {outbox.TAIL_CTES.format(keys="$2")},
named AS (SELECT * FROM unnest($3::bigint[], $4::text[]) AS x(group_id, fingerprint)),
known AS (
    SELECT a.group_id, a.fingerprint, a.status, a.labels FROM alerts a WHERE a.group_id = ANY($1::bigint[])
    UNION ALL
    SELECT a.group_id, a.fingerprint, a.status, a.labels FROM named n
    CROSS JOIN LATERAL (  -- one index lookup per alert named, whatever the size of the table (LIMIT: not a hash join)
        SELECT * FROM alerts a WHERE a.group_id = n.group_id AND a.fingerprint = n.fingerprint LIMIT 1) a
    WHERE NOT (n.group_id = ANY($1::bigint[])))
SELECT previous.*, {outbox.TAIL_COLUMNS}
FROM {PREVIOUS}
"""

WRITE_ALERTS = f"""
WITH received AS (
    INSERT INTO alerts_received (group_id, fingerprint, status, labels, annotations, starts_at, ends_at, generator_url)
    SELECT * FROM {alert_arrays(1)}
), upserted AS (
    INSERT INTO alerts (group_id, fingerprint, status, labels, annotations, starts_at, ends_at, generator_url)
    SELECT * FROM {alert_arrays(9)}
    ON CONFLICT (group_id, fingerprint) DO UPDATE SET
        status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
        starts_at = excluded.starts_at, ends_at = excluded.ends_at, generator_url = excluded.generator_url,
        updated_at = now()
), gone AS (
    UPDATE alerts a SET status = 'resolved', ends_at = coalesce(a.ends_at, now()), updated_at = now()
    FROM jsonb_to_recordset($17::jsonb) AS x(group_id bigint, fingerprint text)
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
    FROM jsonb_to_recordset($18::jsonb) AS x(id bigint, status text, thread_key text, channel text,
         fired_at timestamptz, resolved_at timestamptz, group_labels jsonb, common_labels jsonb, annotations jsonb,
         external_url text, receiver text, triage_state text, alerts_total int, alerts_firing int)
    WHERE g.id = x.id
), lifted AS (  -- Alertmanager notified about them: no silence holds these groups (bot/alerts/actions.py)
    UPDATE alert_actions a SET silence_ended_at = least(now(), a.silenced_until), silence_ended_by = 'alertmanager',
           updated_at = now()
    WHERE a.group_id = ANY($21::bigint[]) AND a.silence_id IS NOT NULL AND a.silence_ended_at IS NULL
), {outbox.WRITE_CTES.format(rows="$19", rewrites="$20")}
SELECT 1
"""


class LockedGroup(msgspec.Struct):
    """A group's row as LOCK_AND_READ returns it, once locked."""

    id: int
    group_key: str
    inserted: bool
    status: str
    channel: str
    thread_key: str
    fired_at: datetime
    resolved_at: datetime | None
    triage_state: str
    alerts_total: int
    alerts_firing: int
    notifications: int
    seen: int | None  # what the statement's snapshot counted: not `notifications` before this batch → stale


_DECODE_GROUPS = msgspec.json.Decoder(list[LockedGroup])
_JSON = msgspec.json.Encoder()

Previous = dict[int, dict[str, tuple[str, str]]]  # group id -> fingerprint -> (status, display name)


async def lock_groups(
    conn: asyncpg.Connection, items: list[tuple[Webhook, str]], now: datetime
) -> tuple[list[LockedGroup], Previous, dict[str, outbox.Tail]]:
    """Lock (or create) the batch's groups; what their alerts were and their threads' unsent rows."""
    firsts: dict[str, dict] = {}
    for hook, channel in items:
        if hook.groupKey not in firsts:
            firsts[hook.groupKey] = group_insert(hook, channel, now, 0)
        firsts[hook.groupKey]["notifications"] += 1
    complete = {h.groupKey for h, _ in items if h.truncatedAlerts == 0 or h.status == "resolved"}
    named = [(h.groupKey, a.fingerprint) for h, _ in items if h.groupKey not in complete for a in h.alerts]
    read = await conn.fetchrow(
        LOCK_AND_READ,
        _JSON.encode(list(firsts.values())).decode(),
        list(complete),
        [key for key, _ in named],
        [fingerprint for _, fingerprint in named],
    )
    rows = _DECODE_GROUPS.decode(read["groups"])
    existing = [r for r in rows if not r.inserted]
    if any(r.seen != r.notifications - firsts[r.group_key]["notifications"] for r in existing):
        ids = {r.group_key: r.id for r in existing}
        read = await conn.fetchrow(
            READ_GROUPS,
            [ids[key] for key in complete if key in ids],
            [r.thread_key for r in existing],
            [ids[key] for key, _ in named if key in ids],
            [fingerprint for key, fingerprint in named if key in ids],
        )
    previous: Previous = {r.id: {} for r in rows}
    columns = (read["group_ids"], read["fingerprints"], read["statuses"], read["names"])
    for group_id, fp, status, name in zip(*(column or () for column in columns), strict=True):
        previous[group_id][fp] = (status, name)
    return rows, previous, outbox.parse_tails([r.thread_key for r in existing], read)


async def record_batch(conn: Any, settings: Settings, items: list[tuple[Webhook, str]]) -> list[Recorded]:
    """Record notifications (webhook, routed channel) in the caller's transaction, in list order per group.

    The webhooks must be redacted already (Recorder.submit does it): everything stored is made from them."""
    now = datetime.now(UTC)
    rows, previous, found_tails = await lock_groups(conn, items, now)
    new_rows: list[dict] = []
    rewrites: dict[int, dict] = {}
    groups = {
        r.group_key: Group(
            id=r.id,
            key=r.group_key,
            inserted=r.inserted,
            status=r.status,
            channel=r.channel,
            thread_key=r.thread_key,
            fired_at=r.fired_at,
            resolved_at=r.resolved_at,
            triage_state=r.triage_state,
            members=previous[r.id],
            thread=Thread(r.thread_key, r.channel, found_tails.get(r.thread_key), new_rows, rewrites),
            total=r.alerts_total,
            firing=r.alerts_firing,
        )
        for r in rows
    }
    results = [apply_notification(groups[hook.groupKey], hook, channel, settings, now) for hook, channel in items]

    restarted = [g.id for g in groups.values() if g.restarted]
    if restarted:
        await conn.execute("DELETE FROM alerts WHERE group_id = ANY($1::bigint[])", restarted)
    received = alert_columns(
        [
            (groups[hook.groupKey].id, alert)
            for hook, _ in items
            for alert in {a.fingerprint: a for a in hook.alerts}.values()
        ]
    )
    if len(received[0]) >= COPY_FROM:  # many rows: COPY writes them faster than the statement's unnest
        await conn.copy_records_to_table("alerts_received", records=zip(*received, strict=True), columns=RECEIVED)
        received = alert_columns([])
    upserts = alert_columns([(g.id, alert) for g in groups.values() for alert in g.upserts.values()])
    gone = [{"group_id": g.id, "fingerprint": fp} for g in groups.values() for fp in g.gone]
    notified = sorted({r.group_id for r in results if r.outcome in ("refired", "joined")})
    await conn.execute(
        WRITE_ALERTS,
        *received,
        *upserts,
        _JSON.encode(gone).decode(),
        _JSON.encode(moved_groups(groups.values())).decode(),
        *outbox.write_params(new_rows, list(rewrites.values()), redacted=True),  # made from redacted hooks
        notified,
    )
    return results


def moved_groups(groups: Iterable[Group]) -> list[dict]:
    """The rows of WRITE_ALERTS's `moved`: groups whose state moved on (everything), or only their counts."""
    moved = []
    for g in groups:
        if g.moved:
            moved.append(
                {
                    "id": g.id,
                    "status": g.status,
                    "thread_key": g.thread_key,
                    "channel": g.channel,
                    "fired_at": iso(g.fired_at),
                    "resolved_at": iso(g.resolved_at),
                    "group_labels": g.labels["group"],
                    "common_labels": g.labels["common"],
                    "annotations": g.payload["annotations"],
                    "external_url": g.payload["external_url"],
                    "receiver": g.payload["receiver"],
                    "triage_state": g.triage_state,
                    "alerts_total": g.total,
                    "alerts_firing": g.firing,
                }
            )
        elif g.upserts or g.gone or g.restarted:
            moved.append({"id": g.id, "alerts_total": g.total, "alerts_firing": g.firing})
    return moved


# what PostgreSQL may refuse in one notification (a value it cannot store), not in the whole batch
REFUSED_DATA = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)


class Recorder:
    """Records the notifications of concurrent webhook requests together (a group commit).

    `await recorder.submit(hook, channel)` redacts the hook in place and returns once the notification
    is committed, or raises when it could not be. While one batch is being written, the requests that
    arrive wait for the next; a batch that fails is retried one notification at a time, so one notification the
    database refuses cannot take others down with it."""

    def __init__(self, store: Store, settings: Settings, people: PeopleFirst, writers: int = 2, busy: int = 8):
        self.store = store
        self.settings = settings
        self.people = people  # a batch waits while a person's request goes first
        self.writers = writers  # batches written at once, each on its own connection ...
        self.busy = busy  # ... the next one only when this many notifications are waiting
        self._queue: deque[tuple[Webhook, str, asyncio.Future]] = deque()
        self._tasks: set[asyncio.Task] = set()
        # one connection per writer, kept: a batch costs no pool round trip and no reset query
        self._connections: list[asyncpg.Connection] = []

    async def submit(self, hook: Webhook, channel: str) -> Recorded:
        redact_webhook(hook)  # what is stored (and later posted) carries no secret the alert did
        future = asyncio.get_running_loop().create_future()
        self._queue.append((hook, channel, future))
        if not self._tasks or (len(self._tasks) < self.writers and len(self._queue) >= self.busy):
            task = asyncio.create_task(self._drain(), name="alert-recorder")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> list[tuple[Webhook, str, asyncio.Future]]:
        taken: list[tuple[Webhook, str, asyncio.Future]] = []
        alerts = 0
        while self._queue and len(taken) < MAX_BATCH_NOTIFICATIONS:
            alerts += len(self._queue[0][0].alerts)
            if taken and alerts > MAX_BATCH_ALERTS:
                break
            taken.append(self._queue.popleft())
        return taken

    async def _drain(self) -> None:
        while self._queue:
            await self.people.after_people()
            batch = self._take()
            try:
                await self._write(batch)
            except Exception as exc:
                if is_unreachable(exc):
                    _settle(batch, error=exc)  # the database is down: every one of them gets a 503
                    continue
                if len(batch) == 1:
                    _settle(batch, error=_refusal(exc))
                    continue
                for item in batch:  # find the one that cannot be recorded; record the others
                    try:
                        await self._write([item])
                    except Exception as single:
                        _settle([item], error=_refusal(single))

    async def _write(self, batch: Any) -> None:
        started = time.perf_counter()
        await self.store.ready()
        conn = await self._connection()
        try:
            async with conn.transaction():
                results = await record_batch(conn, self.settings, [(hook, channel) for hook, channel, _ in batch])
        finally:
            await self._give_back(conn)
        _settle(batch, results=results)
        log.debug(
            "alert_batch_recorded",
            notifications=len(batch),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _connection(self) -> asyncpg.Connection:
        while self._connections:
            conn = self._connections.pop()
            if not conn.is_closed():  # the database restarted meanwhile: a new one
                return conn
            await self.store.release_held(conn)
        return await self.store.hold()

    async def _give_back(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or conn.is_in_transaction():  # broken, or its rollback did not get through
            await self.store.release_held(conn)
        else:
            self._connections.append(conn)


def _refusal(exc: Exception) -> Exception:
    """What one notification's failure means: data that can never be stored is an IntakeError 400
    (Alertmanager would retry a 5xx for ever); anything else is left as it is."""
    if isinstance(exc, (*REFUSED_DATA, OverflowError)):
        return IntakeError(400, f"this notification cannot be stored: {describe_error(exc)}")
    return exc


def _settle(batch: Any, *, results: Any = None, error: Exception | None = None) -> None:
    for n, (_hook, _channel, future) in enumerate(batch):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(results[n])


# ---------------------------------------------------------------------- /erpgo alerts


async def open_groups(store: Store, limit: int = 25) -> tuple[list[OpenGroup], int]:
    async with store.acquire() as conn:
        rows = await conn.fetch(
            """SELECT g.id, g.common_labels, g.annotations, g.fired_at, g.channel, t.channel AS thread_channel, t.ts,
                      g.alerts_firing AS firing,
                      (SELECT string_agg(DISTINCT a.labels->>'alertname', ', ') FROM alerts a
                        WHERE a.group_id = g.id AND a.status = 'firing') AS names,
                      count(*) OVER () AS total
               FROM alert_groups g LEFT JOIN slack_threads t ON t.thread_key = g.thread_key
               WHERE g.status = 'firing' ORDER BY g.fired_at DESC LIMIT $1""",
            limit,
        )
    groups = []
    for r in rows:
        labels, annotations = json.loads(r["common_labels"]), json.loads(r["annotations"])
        groups.append(
            OpenGroup(
                r["id"],
                labels.get("alertname") or r["names"] or "alert",
                labels.get("severity", ""),
                annotations.get("summary", ""),
                r["firing"],
                r["fired_at"],
                r["thread_channel"] or r["channel"],
                r["ts"],
            )
        )
    return groups, (rows[0]["total"] if rows else 0)
