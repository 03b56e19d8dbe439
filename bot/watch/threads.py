"""A watch's thread in the alert channel, like an alert group's: opened with the report when the watched
check turns warning or critical; silent while it stays the same; a change of status or findings replies
in the thread and updates the header; back to OK replies "resolved" and closes it. The header has Ack
and Mute 24 h / 7 d: while muted, changes are recorded but not posted (a resolution still is).

Everything goes through the outbox in one transaction with the watch's row (locked), so replicas and
retries never post a change twice, and what is posted is redacted and paced like every other message."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, HeaderBlock

from bot.alerts.messages import mention, slack_date, triage_messages
from bot.approvals.rows import write_audit
from bot.core.findings import Finding, Status, worst
from bot.core.redact import redact
from bot.core.units import human_duration
from bot.slack import outbox, render

ACK_ACTION = "watch.ack"
MUTE_ACTION = "watch.mute"  # + "." + one of MUTE_CHOICES
MUTE_CHOICES = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
RAISING = (Status.WARN, Status.CRIT)  # what opens a thread; a check that could not finish does not

STATE = """SELECT watch, thread_key, channel, status, fingerprint, headline, opened_at, acked_by, acked_at,
                  muted_by, muted_until FROM watch_threads WHERE watch = $1"""


@dataclass
class WatchState:
    watch: str
    thread_key: str | None
    channel: str
    status: str
    fingerprint: str
    headline: str
    opened_at: datetime | None
    acked_by: str | None = None
    acked_at: datetime | None = None
    muted_by: str | None = None
    muted_until: datetime | None = None

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now


def raised(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status in RAISING]


def measured(findings: list[Finding]) -> bool:
    """Every check finished: a watch whose target could not be read is not resolved by it."""
    return not any(f.status is Status.ERROR for f in findings)


def fingerprint(findings: list[Finding]) -> str:
    """What the run found, without the figures that move every run (a percentage, an age)."""
    keys = sorted(f"{f.status.value}|{f.component}" for f in raised(findings))
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] if keys else ""


def headline_of(findings: list[Finding]) -> str:
    found = raised(findings)
    top = max(found, key=lambda f: f.status.rank) if found else None
    return redact(f"{top.component}: {top.title}")[:300] if top else "all OK"


async def load_state(conn: Any, watch: str) -> WatchState:
    """The watch's row, locked until the end of the caller's transaction (created when missing)."""
    await conn.execute("INSERT INTO watch_threads (watch) VALUES ($1) ON CONFLICT DO NOTHING", watch)
    row = await conn.fetchrow(STATE + " FOR UPDATE", watch)
    return WatchState(**dict(row))


async def record_run(conn: Any, state: WatchState, findings: list[Finding], now: datetime) -> int:
    """Apply one run's findings to the watch's thread; the number of messages queued."""
    status = worst(f.status for f in raised(findings)) if raised(findings) else Status.OK
    print_ = fingerprint(findings)
    changed = print_ != state.fingerprint
    state.status, state.fingerprint, state.headline = status.value, print_, headline_of(findings)
    queued = 0
    if state.thread_key is None and status in RAISING and not state.muted(now):
        queued = await open_thread(conn, state, findings, now)
    elif state.thread_key is not None and status not in RAISING and measured(findings):
        queued = await resolve_thread(conn, state, now)
    elif state.thread_key is not None and status in RAISING and changed and not state.muted(now):
        queued = await reply_change(conn, state, findings, now)
    await save(conn, state, now)
    return queued


async def open_thread(conn: Any, state: WatchState, findings: list[Finding], now: datetime) -> int:
    state.thread_key, state.opened_at = f"watch:{state.watch}:{uuid.uuid4().hex}", now
    state.acked_by = state.acked_at = None
    assert state.thread_key is not None
    await outbox.lock_thread(conn, state.thread_key)
    await outbox.enqueue(conn, state.thread_key, state.channel, "post", header_message(state, now), kind="watch.header")
    return 1 + await queue_report(conn, state, findings)


async def reply_change(conn: Any, state: WatchState, findings: list[Finding], now: datetime) -> int:
    assert state.thread_key is not None
    await outbox.lock_thread(conn, state.thread_key)
    queued = await queue_report(conn, state, findings, changed=True)
    await outbox.put_header(conn, state.thread_key, state.channel, header_message(state, now), kind="watch.header")
    return queued + 1


async def resolve_thread(conn: Any, state: WatchState, now: datetime) -> int:
    key = state.thread_key
    assert key is not None
    await outbox.lock_thread(conn, key)
    lasted = human_duration((now - state.opened_at).total_seconds()) if state.opened_at else "a while"
    text = f":white_check_mark: *Resolved* — `{state.watch}` is OK again after {lasted}."
    await outbox.enqueue(
        conn, key, state.channel, "reply", render.message(text.replace("*", ""), [render.section(text)])
    )
    await outbox.put_header(conn, key, state.channel, header_message(state, None, resolved=True), kind="watch.header")
    state.thread_key, state.opened_at, state.acked_by, state.acked_at = None, None, None, None
    return 2


async def queue_report(conn: Any, state: WatchState, findings: list[Finding], changed: bool = False) -> int:
    assert state.thread_key is not None
    title = f"watch {state.watch}" + (" — changed" if changed else "")
    messages = triage_messages(title, findings, f"scheduled watch `{state.watch}` (ERPGO_WATCH)")
    for message in messages:
        await outbox.enqueue(conn, state.thread_key, state.channel, "reply", message, kind="watch.report")
    return len(messages)


async def save(conn: Any, state: WatchState, now: datetime | None) -> None:
    """The state back in its row; `now`: when a run saw it (None: a click changed it)."""
    await conn.execute(
        """UPDATE watch_threads SET thread_key = $2, channel = $3, status = $4, fingerprint = $5, headline = $6,
               opened_at = $7, acked_by = $8, acked_at = $9, muted_by = $10, muted_until = $11,
               last_run_at = coalesce($12, last_run_at), updated_at = now()
           WHERE watch = $1""",
        state.watch,
        state.thread_key,
        state.channel,
        state.status,
        state.fingerprint,
        state.headline,
        state.opened_at,
        state.acked_by,
        state.acked_at,
        state.muted_by,
        state.muted_until,
        now,
    )


# ---------------------------------------------------------------------- Ack and Mute


async def act(conn: Any, watch: str, user: str, ts: str, mute: timedelta | None, now: datetime) -> tuple[bool, str]:
    """Acknowledge the watch's open thread, or mute the watch, when `ts` is that thread's header:
    (done, what the clicker is told). Audited, announced in the thread, the header updated."""
    state = await load_state(conn, watch)
    head = await conn.fetchrow("SELECT ts FROM slack_threads WHERE thread_key = $1", state.thread_key or "")
    if state.thread_key is None or head is None or head["ts"] != ts:
        return False, ":grey_question: This is not the open thread of that watch (it may be resolved)."
    if mute is None and state.acked_by:
        return False, f":eyes: {mention(state.acked_by)} acknowledged it already."
    if mute is None:
        state.acked_by, state.acked_at = user, now
        event, said = "acknowledged", f":eyes: {mention(user)} is on it."
    else:
        state.muted_by, state.muted_until = user, now + mute
        event = "muted"
        said = f":no_bell: {mention(user)} muted this watch until {slack_date(state.muted_until)}."
    await outbox.lock_thread(conn, state.thread_key)
    await save(conn, state, None)
    await write_audit(conn, user, event, said, action=f"watch.{event}", detail=f"watch {watch}", channel=state.channel)
    await outbox.enqueue(conn, state.thread_key, state.channel, "reply", render.text_message(said), kind="watch.action")
    await outbox.put_header(conn, state.thread_key, state.channel, header_message(state, now), kind="watch.header")
    return True, said


# ---------------------------------------------------------------------- the header


def header_message(state: WatchState, now: datetime | None, *, resolved: bool = False) -> render.Message:
    label = Status(state.status).label
    if resolved:
        heading, text = f":white_check_mark: RESOLVED: watch {state.watch}", f"RESOLVED: watch {state.watch}"
    else:
        heading, text = f":warning: {label}: watch {state.watch}", f"{label}: watch {state.watch} — {state.headline}"
    blocks: list[Any] = [HeaderBlock(text=render.clip(heading, 150))]
    if not resolved:
        blocks.append(render.section(render.escape(state.headline)))
    lines = [f"Since {slack_date(state.opened_at)}"] if state.opened_at else []
    if state.acked_by and state.acked_at:
        lines.append(f":eyes: Acknowledged by {mention(state.acked_by)} {slack_date(state.acked_at)}")
    if state.muted_until is not None and (now is None or state.muted(now)):
        lines.append(f":no_bell: Muted by {mention(state.muted_by)} until {slack_date(state.muted_until)}")
    if lines:
        blocks.append(render.context("\n".join(lines)))
    if not resolved:
        blocks.append(ActionsBlock(block_id=f"watch:{state.watch}", elements=header_buttons(state)))
    return render.message(render.escape(text), blocks)


def header_buttons(state: WatchState) -> list[ButtonElement]:
    buttons = []
    if not state.acked_by:
        buttons.append(ButtonElement(text=":eyes: Ack", action_id=ACK_ACTION, value=state.watch, style="primary"))
    for label in MUTE_CHOICES:
        buttons.append(
            ButtonElement(text=f":no_bell: Mute {label}", action_id=f"{MUTE_ACTION}.{label}", value=state.watch)
        )
    return buttons
