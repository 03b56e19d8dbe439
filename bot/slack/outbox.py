"""The Slack outbox: durable, ordered, paced delivery of messages queued in the bot's database.

It is the one way the bot posts to Slack: reports and their threads, approval messages and their
updates, the results of clicks, alert threads and triage. (Ephemeral answers and response_url
answers go through bot.slack.client.SlackOut; without a bot database, bot.slack.memory keeps the
same rows in the process.) Producers insert rows into ``slack_outbox`` inside their own
transaction, so a message exists exactly when the state change it announces was committed, and
what is stored is already redacted: the stored copy is what is sent. Workers (bot/slack/delivery.py)
deliver them:

* **in order per thread** — rows with the same ``thread_key`` go out strictly by id; the first one
  (``op='post'``) is the thread's top-level message, whose ``ts`` the later ones (``reply`` and
  ``update``) take when they are sent, so no producer waits for Slack's answer. A reply may be
  named (``message_key``) so that a later ``update`` changes it (an approval message), and what a
  producer must learn of a sent row (an approval's message ts) is written by a delivery hook
  (:func:`on_delivery`) in the worker's transaction;
* **people first** — rows somebody waits for (``priority`` INTERACTIVE: reports, clicks) go before
  alert traffic queued in the same channel;
* **paced per channel** — at most one message per ``ERPGO_SLACK_CHANNEL_INTERVAL`` seconds in a
  channel, shared by every replica through ``slack_channels.next_at``;
* **coalesced** — several pending header versions of a thread become one ``chat.update`` (or are
  folded into the still unsent top-level post);
* **retried** — a 429 pauses the channel for exactly its ``Retry-After``, 5xx,
  timeouts and refused connections back off exponentially up to ``ERPGO_SLACK_MAX_BACKOFF`` and are
  retried for as long as it takes; the backlog is visible in ``/healthz`` and ``erpgo_slack_backlog``.
  This client has no slack_sdk retry handlers on purpose: their waits live in one process, while
  these retries are rows in the shared database, so every replica honours the same pause;
* **never twice** — a worker claims a row with ``FOR UPDATE SKIP LOCKED`` and marks it sent in the
  same transaction as the Slack call, so replicas sharing the table never send a row twice. (A
  process killed after Slack accepted a message but before the commit sends it again on restart:
  Slack's API offers no idempotency key to close that window.)

Producers must enqueue the rows of one thread one transaction at a time (the alert intake holds
the alert group's row lock; others can call :func:`lock_thread`), so that ids follow commit order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bot.core.redact import redact_any

INTERACTIVE, BACKGROUND = 1, 0  # row priorities: somebody is waiting for it / alert traffic

# ---------------------------------------------------------------------- producers (in a transaction)


async def lock_thread(conn: Any, thread_key: str) -> None:
    """Serialise the producers of one thread until the end of the caller's transaction.

    An alert thread's own producers (intake, triage, Ack/Silence) order its rows by the alert group's
    row lock: it is taken too, after the thread's lock (they never take that one, so no deadlock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7301117))", thread_key)
    await conn.execute("SELECT 1 FROM alert_groups WHERE thread_key = $1 FOR UPDATE", thread_key)


async def enqueue(
    conn: Any,
    thread_key: str,
    channel: str,
    op: str,
    message: dict,
    *,
    kind: str = "",
    data: Any = None,
    key: str | None = None,
    priority: int = BACKGROUND,
) -> int:
    """Queue one message (redacted); returns its id. `op`: post (the thread's head), reply, or update
    (of the head, or of the message named `key`); a post or reply with a `key` can be updated later."""
    return await conn.fetchval(
        "INSERT INTO slack_outbox (thread_key, channel, op, kind, message, data, message_key, priority)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8) RETURNING id",
        thread_key,
        channel,
        op,
        kind,
        json.dumps(redact_any(message)),
        json.dumps(redact_any(data)) if data is not None else None,
        key,
        priority,
    )


async def adopt(conn: Any, key: str, channel: str, ts: str) -> None:
    """Make a message already in Slack (channel, ts) addressable by `key`: as a thread to reply in, or
    as the message an update changes (approvals posted before the outbox knew them)."""
    await conn.execute(
        "INSERT INTO slack_threads (thread_key, channel, ts) VALUES ($1, $2, $3) ON CONFLICT (thread_key) DO NOTHING",
        key,
        channel,
        ts,
    )


@dataclass
class Outgoing:
    """One row of a thread as a producer writes it."""

    op: str  # post | reply | update | upload
    message: dict
    kind: str = ""
    data: Any = None
    key: str | None = None  # post/reply: the name it is kept under once sent; update: the message it changes
    content: bytes | None = None  # upload of a binary file (a chart): its bytes, sent as they are


class ThreadRows:
    """The rows a producer adds to one thread, written together, in order, when it is done.

    `conn` is the transaction they are written in (None for the in-process outbox), for the
    producer's other writes that must commit with them (e.g. the approvals a report proposes);
    `receipt` is set once they are queued."""

    def __init__(self, thread_key: str, channel: str, priority: int = INTERACTIVE, conn: Any = None):
        self.thread_key = thread_key
        self.channel = channel
        self.priority = priority
        self.conn = conn
        self.items: list[Outgoing] = []
        self.receipt: Receipt = Receipt([], [])

    def post(self, message: dict, **kw: Any) -> None:
        self.items.append(Outgoing("post", message, **kw))

    def reply(self, message: dict, **kw: Any) -> None:
        self.items.append(Outgoing("reply", message, **kw))

    def update(self, message: dict, **kw: Any) -> None:
        self.items.append(Outgoing("update", message, **kw))

    def upload(self, message: dict, **kw: Any) -> None:
        """A file shared in the thread: `message` is {"text", "file": {"filename", "title", "content"}}."""
        self.items.append(Outgoing("upload", message, **kw))

    def upload_bytes(self, message: dict, content: bytes, **kw: Any) -> None:
        """A binary file (a chart's PNG) shared in the thread: `message` is {"text", "file": {"filename",
        "title"}}; `content` goes to Slack byte for byte (redact what it shows before making it)."""
        self.items.append(Outgoing("upload", message, content=content, **kw))

    def rows(self) -> list[dict]:
        """As WRITE_CTES rows (redacted)."""
        return [
            {
                "thread_key": self.thread_key,
                "channel": self.channel,
                "op": item.op,
                "kind": item.kind,
                "message": item.message,
                "data": item.data,
                "message_key": item.key,
                "priority": self.priority,
            }
            for item in self.items
        ]

    async def write(self, conn: Any) -> list[int]:
        """Insert the rows in order in the caller's transaction; their ids."""
        if not self.items:
            return []
        sql = f"WITH {WRITE_CTES.format(rows='$1', rewrites='$2')} SELECT array(SELECT id FROM queued ORDER BY id)"
        ids = list(await conn.fetchval(sql, *write_params(self.rows(), [])))
        files = [(row_id, item.content) for row_id, item in zip(ids, self.items, strict=True) if item.content]
        if files:
            await conn.executemany("INSERT INTO slack_outbox_files (outbox_id, content) VALUES ($1, $2)", files)
        return ids


@dataclass
class Delivered:
    """What became of one row: sent (`ts` of the message) or given up (`error`)."""

    ok: bool
    op: str = ""
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None  # the thread head's ts (a post: its own)
    error: str | None = None


class Receipt:
    """The rows a producer queued, and a way for the same process to wait until Slack has them.

    Waiting is a convenience for whoever is in the same process (a test, the shell, a report that
    falls back to its response_url): the rows are delivered whether or not anyone waits, by
    whichever replica claims them."""

    def __init__(self, ids: list[int], futures: list[asyncio.Future]):
        self.ids = ids
        self.futures = futures

    async def wait(self, timeout: float) -> list[Delivered] | None:
        """What became of each row, in order; None when `timeout` ran out first (they stay queued)."""
        if not self.futures:
            return []
        _done, pending = await asyncio.wait(self.futures, timeout=timeout)
        if pending or any(future.cancelled() for future in self.futures):  # or the outbox stopped
            return None
        return [future.result() for future in self.futures]


DeliveryHook = Callable[[Any, Any, Delivered], Awaitable[None]]
DELIVERY_HOOKS: dict[str, DeliveryHook] = {}


def on_delivery(kind: str) -> Callable[[DeliveryHook], DeliveryHook]:
    """Register `async def hook(conn, data, delivered)` for rows of `kind`: called in the worker's
    transaction when such a row is sent or given up, so what the producer needs to know of the
    message (its ts) is recorded exactly when the row is marked sent, by whichever replica sent it."""

    def decorate(func: DeliveryHook) -> DeliveryHook:
        DELIVERY_HOOKS[kind] = func
        return func

    return decorate


class Courier:
    """What producers see of an outbox (durable: bot.slack.delivery.Outbox; in-process: bot.slack.memory)."""

    durable: bool = False

    def thread(self, thread_key: str, channel: str, *, priority: int = INTERACTIVE) -> Any:
        """`async with courier.thread(key, channel) as rows: rows.post(...)` — queued on exit."""
        raise NotImplementedError

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""

    def wake_soon(self) -> None:
        """Something that may wait a moment was queued (alert threads, paced per channel anyway): look
        soon, together with whatever else is queued meanwhile."""
        self.wake()

    async def health(self, timeout: float = 2.0) -> dict:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    async def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError


Renderer = Callable[[Any, Any, str], Awaitable["dict | None"]]
RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register `async def render(conn, data, thread_key) -> message | None` for rows of `kind`.

    Such rows are rendered when they are sent, from the state of that moment (their stored
    message is the fallback when rendering fails or returns None): a header that changes a hundred
    times while it waits is rendered once, with its last state."""

    def decorate(func: Renderer) -> Renderer:
        RENDERERS[kind] = func
        return func

    return decorate


# What a producer needs to know of threads' unsent rows before adding to them, as CTEs it may embed
# in a statement of its own ({keys}: the placeholder of a text[] of thread keys). The newest unsent
# reply and header rows come back locked (FOR UPDATE SKIP LOCKED) unless a worker is sending them
# right now, so what the producer changes is never already on its way to Slack.
TAIL_CTES = """
    tail AS (
        SELECT thread_key, bool_or(op = 'post') AS head_pending,
               max(id) FILTER (WHERE op = 'reply') AS last_reply,
               max(id) FILTER (WHERE op IN ('post', 'update')) AS last_header
        FROM slack_outbox WHERE thread_key = ANY({keys}::text[]) AND state = 'pending' GROUP BY thread_key),
    claimed AS (
        SELECT o.id, o.kind, o.data FROM slack_outbox o
        WHERE o.id = ANY (ARRAY(SELECT last_reply FROM tail UNION ALL SELECT last_header FROM tail))
          AND o.state = 'pending'
        FOR UPDATE SKIP LOCKED)
"""
TAIL_COLUMNS = """(SELECT coalesce(jsonb_agg(to_jsonb(tail)), '[]') FROM tail) AS tails,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'data', data)), '[]') FROM claimed) AS claimed"""

# New rows ({rows}: jsonb array of {seq, thread_key, channel, op, kind, message, data}, queued in seq
# order) and changed claimed rows ({rewrites}: jsonb array of {id, message?, data?}), as CTEs.
WRITE_CTES = """
    queued AS (
        INSERT INTO slack_outbox (thread_key, channel, op, kind, message, data, message_key, priority)
        SELECT x.thread_key, x.channel, x.op, coalesce(x.kind, ''), x.message, x.data, x.message_key,
               coalesce(x.priority, 0)
        FROM jsonb_to_recordset({rows}::jsonb) AS x(seq int, thread_key text, channel text, op text, kind text,
                                                     message jsonb, data jsonb, message_key text, priority smallint)
        ORDER BY x.seq RETURNING id),
    rewritten AS (
        UPDATE slack_outbox o SET message = coalesce(x.message, o.message), data = coalesce(x.data, o.data)
        FROM jsonb_to_recordset({rewrites}::jsonb) AS x(id bigint, message jsonb, data jsonb) WHERE o.id = x.id
        RETURNING o.id)
"""


def write_params(rows: list[dict], rewrites: list[dict], *, redacted: bool = False) -> tuple[str, str]:
    """The {rows} and {rewrites} parameters of WRITE_CTES, their content redacted (what is stored is what
    is sent) unless the producer made them from redacted data only (`redacted`: the alert intake)."""
    clean = (lambda row: row) if redacted else _redacted
    return (
        _JSON.encode([dict(clean(row), seq=n) for n, row in enumerate(rows)]).decode(),
        _JSON.encode([clean(row) for row in rewrites]).decode(),
    )


_JSON = msgspec.json.Encoder()  # a storm writes these at every batch: msgspec, not json.dumps


def _redacted(row: dict) -> dict:
    return {name: redact_any(value) if name in ("message", "data") else value for name, value in row.items()}


@dataclass
class Tail:
    """A thread's unsent rows as a producer sees them."""

    head_pending: bool = False  # its top-level message has not been posted yet
    last_reply: int | None = None  # the newest unsent reply
    last_header: int | None = None  # the newest unsent post or update of the head
    claimed: dict[int, dict] = field(default_factory=dict)  # of those two, the ones locked for the producer

    @property
    def reply(self) -> dict | None:
        """The newest unsent reply ({"id", "kind", "data"}), if the producer may still change it."""
        return self.claimed.get(self.last_reply) if self.last_reply is not None else None

    @property
    def header_claimed(self) -> bool:
        return self.last_header is not None and self.last_header in self.claimed


def parse_tails(thread_keys: list[str], row: Any) -> dict[str, Tail]:
    """{thread_key: Tail} from the TAIL_COLUMNS of a row (an empty Tail when nothing of it is pending)."""
    claimed = {item["id"]: item for item in msgspec.json.decode(row["claimed"])}
    found = {key: Tail() for key in thread_keys}
    for item in msgspec.json.decode(row["tails"]):
        found[item["thread_key"]] = Tail(
            bool(item["head_pending"]),
            item["last_reply"],
            item["last_header"],
            {i: claimed[i] for i in (item["last_reply"], item["last_header"]) if i in claimed},
        )
    return found


async def tails(conn: Any, thread_keys: list[str]) -> dict[str, Tail]:
    row = await conn.fetchrow(f"WITH {TAIL_CTES.format(keys='$1')} SELECT {TAIL_COLUMNS}", list(thread_keys))
    return parse_tails(thread_keys, row)


async def tail(conn: Any, thread_key: str) -> Tail:
    return (await tails(conn, [thread_key]))[thread_key]


async def write_many(conn: Any, rows: list[dict], rewrites: list[dict] | None = None) -> int:
    """Queue `rows` ({thread_key, channel, op, kind, message, data}) in list order and apply `rewrites`
    ({id, message?, data?}) to rows the producer claimed, in one statement. Returns how many were queued."""
    if not rows and not rewrites:
        return 0
    sql = f"WITH {WRITE_CTES.format(rows='$1', rewrites='$2')} SELECT (SELECT count(*) FROM queued)"
    return await conn.fetchval(sql, *write_params(rows, list(rewrites or [])))


async def enqueue_many(conn: Any, rows: list[dict]) -> int:
    return await write_many(conn, rows)


async def rewrite_many(conn: Any, rows: list[dict]) -> None:
    await write_many(conn, [], rows)


async def rewrite(conn: Any, row_id: int, message: dict | None = None, data: Any = None) -> None:
    """Replace the content (message and/or data) of a row the producer claimed (Tail.claimed)."""
    await write_many(conn, [], [{"id": row_id, "message": message, "data": data}])


async def put_header(
    conn: Any,
    thread_key: str,
    channel: str,
    message: dict,
    state: Tail | None = None,
    *,
    kind: str = "header",
    data: Any = None,
) -> int:
    """Make the thread's top-level message show `message` (or, for a rendered kind, its state when sent):
    folded into an unsent post or update when there is one, else a new update."""
    state = state or await tail(conn, thread_key)
    if state.header_claimed and state.last_header is not None:
        if kind not in RENDERERS:
            await rewrite(conn, state.last_header, message, data)
        return state.last_header
    return await enqueue(conn, thread_key, channel, "update", message, kind=kind, data=data)
