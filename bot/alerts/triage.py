"""Triage of a new alert group: the checks its alert names map to, run once (whichever replica claims
it), the report queued in the group's thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.alerts.messages import triage_messages
from bot.context import Actor, AlertScope, CheckContext
from bot.core.engine import run_checks
from bot.core.errors import Backoff, describe_error
from bot.core.findings import Finding
from bot.core.logs import log
from bot.core.registry import Check, Registry
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.outbox import BACKGROUND, ThreadRows
from bot.store.pool import Store

TRIAGE_CONCURRENCY = 4  # triage reports computed at once; an alert storm must not become a check storm
TRIAGE_LOOKBACK = timedelta(minutes=10)  # logs are read from this long before the alert fired
QUEUE_RETRY = Backoff(first=0.5, cap=10.0)  # the bot database blinked while the report was queued
# A claim is a lease: renewed every TRIAGE_LEASE_S / 3 while the triage runs, so a claim whose lease
# ran out belongs to a process that died, and any replica may take it.
TRIAGE_LEASE_S = 30.0

# In the report's transaction, after its messages: what else goes in the thread (the approvals).
AlsoQueue = Callable[[ThreadRows, list[Finding]], Awaitable[object]]


# ---------------------------------------------------------------------- triage

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


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


# A claim older than this without a lease is from before leases existed.
_ABANDONED = (
    "(triage_state = 'running' AND coalesce(triage_lease_until, triage_started_at + interval '10 minutes') < now())"
)

CLAIM_TRIAGE = f"""
UPDATE alert_groups SET triage_state = 'running', triage_started_at = now(),
       triage_lease_until = now() + make_interval(secs => $2)
WHERE id = $1 AND status = 'firing' AND (triage_state = 'pending' OR {_ABANDONED})
RETURNING common_labels, fired_at, triage_started_at
"""
RENEW_LEASE = """
UPDATE alert_groups SET triage_lease_until = now() + make_interval(secs => $2)
WHERE id = $1 AND triage_state = 'running'
"""
RELEASE_CLAIM = """
UPDATE alert_groups SET triage_state = 'pending', triage_lease_until = NULL WHERE id = ANY($1::bigint[])
AND triage_state = 'running'
"""


@dataclass
class Triaged:
    findings: list[Finding]


async def triage_group(runtime: Runtime, group_id: int, also: AlsoQueue | None = None) -> Triaged | None:
    """Run the group's triage checks and queue the report in its thread (once, whichever replica claims it).

    None when there is nothing to do (already triaged, resolved meanwhile) or it could not be queued.
    At most TRIAGE_CONCURRENCY run at once, database work included: a storm of new groups waits its
    turn instead of crowding the bot's database pool. Cancelled (the bot is stopping), the claim is
    given back at once so that the next start or another replica takes it."""
    async with _triage_slots():
        try:
            return await _triage(runtime, group_id, also)
        except asyncio.CancelledError:
            try:
                await asyncio.wait_for(release_claims(runtime.store, [group_id]), 5)
                log.warning("triage_interrupted", group_id=group_id, claim="released")
            except Exception as exc:  # its lease runs out instead
                log.warning(
                    "triage_interrupted",
                    group_id=group_id,
                    claim="kept until its lease ends",
                    error=describe_error(exc),
                )
            raise


async def release_claims(store: Store, group_ids: list[int]) -> None:
    async with store.acquire() as conn:
        await conn.execute(RELEASE_CLAIM, group_ids)


async def _keep_lease(store: Store, group_id: int) -> None:
    while True:
        await asyncio.sleep(TRIAGE_LEASE_S / 3)  # a period, not a synchronisation
        try:
            async with store.acquire() as conn:
                await conn.execute(RENEW_LEASE, group_id, TRIAGE_LEASE_S)
        except Exception as exc:  # the lease may run out; another replica then does the triage again
            log.warning("triage_lease_not_renewed", group_id=group_id, error=describe_error(exc))


async def _triage(runtime: Runtime, group_id: int, also: AlsoQueue | None) -> Triaged | None:
    store = runtime.store
    async with store.acquire() as conn:
        group = await conn.fetchrow(CLAIM_TRIAGE, group_id, TRIAGE_LEASE_S)
        if group is None:
            return None
    lease = asyncio.create_task(_keep_lease(store, group_id), name=f"triage-lease:{group_id}")
    try:
        return await _run_and_queue(runtime, group_id, group, also)
    finally:
        lease.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lease


async def _run_and_queue(runtime: Runtime, group_id: int, group: Any, also: AlsoQueue | None) -> Triaged | None:
    """Run the checks the group's alerts get, then queue the report in its thread (retried while the bot's
    database blinks); None when another replica took the group meanwhile or the report could not be queued."""
    async with runtime.store.acquire() as conn:
        names = [
            r["name"]
            for r in await conn.fetch(
                "SELECT DISTINCT labels->>'alertname' AS name FROM alerts WHERE group_id = $1 AND status = 'firing'"
                " AND labels ? 'alertname' ORDER BY 1",
                group_id,
            )
        ]
    labels = json.loads(group["common_labels"])
    names = names or [labels.get("alertname", "alert")]
    checks = triage_checks(runtime.registry, names, labels)
    await runtime.tasks.people.after_people()  # alert traffic: a person's command goes first
    ctx = CheckContext(
        runtime.targets,
        runtime.settings,
        actor=Actor(requester="alertmanager"),
        alert=AlertScope(names=tuple(names), labels=labels, since=group["fired_at"] - TRIAGE_LOOKBACK),
    )
    started = time.perf_counter()
    findings = await run_checks(checks, ctx)
    elapsed = time.perf_counter() - started
    report = TriageReport(f"Triage: {', '.join(names[:3])}", findings, len(checks), elapsed)
    await runtime.tasks.people.after_people()
    for attempt in range(6):
        try:
            if not await _queue_report(runtime, group_id, group, report, also):
                return None
            break
        except Exception as exc:  # the bot database blinked: the report is kept and retried for a while
            if attempt == 5:
                log.error("triage_not_queued", group_id=group_id, error=describe_error(exc))
                return None
            await asyncio.sleep(QUEUE_RETRY.delay(attempt))
    runtime.outbox.wake()
    log.info(
        "alert_triaged",
        group_id=group_id,
        checks=len(checks),
        findings=len(findings),
        duration_ms=round(elapsed * 1000, 1),
    )
    return Triaged(findings)


@dataclass(frozen=True)
class TriageReport:
    title: str
    findings: list[Finding]
    checks: int
    seconds: float


async def _queue_report(
    runtime: Runtime, group_id: int, group: Any, report: TriageReport, also: AlsoQueue | None
) -> bool:
    """The report's messages (and its evidence file, and what `also` adds) in the group's thread, in the
    transaction that marks the triage done; False when the group's claim was lost meanwhile."""
    footer = f"automatic triage of the alert · {report.checks} checks · {report.seconds:.2f} s"
    messages = triage_messages(report.title, report.findings, footer)
    attachment = render.evidence_upload(report.title, report.findings)
    async with runtime.store.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT thread_key, channel, triage_state, triage_started_at FROM alert_groups WHERE id = $1 FOR UPDATE",
            group_id,
        )
        if (current["triage_state"], current["triage_started_at"]) != ("running", group["triage_started_at"]):
            log.warning("triage_claim_lost", group_id=group_id, hint="its lease ran out; another took it")
            return False
        rows = ThreadRows(current["thread_key"], current["channel"], BACKGROUND, conn)
        for message in messages:
            rows.reply(message, kind="triage")
        if attachment is not None:  # after the report: its first lines are already there
            rows.upload(attachment, kind="triage.file")
        if also is not None:
            await also(rows, report.findings)
        await rows.write(conn)
        await conn.execute(
            "UPDATE alert_groups SET triage_state = 'done' WHERE id = $1 AND triage_state = 'running'", group_id
        )
    return True


async def unfinished_triage(store: Store) -> list[int]:
    """Groups whose triage nobody is doing: accepted but not started, given back by a process that
    stopped, or claimed by one that died (its lease ran out)."""
    await store.ready()
    async with store.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT id FROM alert_groups WHERE status = 'firing' AND updated_at > now() - interval '1 day'
                AND (triage_state = 'pending' OR {_ABANDONED}) ORDER BY id"""
        )
    return [row["id"] for row in rows]
