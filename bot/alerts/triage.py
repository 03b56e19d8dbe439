"""Triage of a new alert group: the checks its alert names map to, run once (whichever replica claims
it), the report queued in the group's thread."""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta

from bot.alerts.messages import triage_file, triage_messages
from bot.core.engine import CheckContext, run_checks
from bot.core.errors import Backoff, describe_error
from bot.core.findings import Finding
from bot.core.logs import log
from bot.core.registry import Check, Registry
from bot.slack import outbox

TRIAGE_CONCURRENCY = 4  # triage reports computed at once; an alert storm must not become a check storm
TRIAGE_LOOKBACK = timedelta(minutes=10)  # logs are read from this long before the alert fired
QUEUE_RETRY = Backoff(first=0.5, cap=10.0)  # the bot database blinked while the report was queued
QUEUE_RETRY = Backoff(first=0.5, cap=10.0)  # the bot database blinked while the report was queued
TRIAGE_STALE = "10 minutes"  # a triage 'running' for longer was abandoned by a process that died


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
    since = group["fired_at"] - TRIAGE_LOOKBACK
    ctx = CheckContext(
        runtime.targets,
        runtime.settings,
        {"requester": "alertmanager", "since": since, "alert_labels": labels, "alertnames": names},
    )
    started = time.perf_counter()
    findings = await run_checks(checks, ctx)
    elapsed = time.perf_counter() - started
    title = f"Triage: {', '.join(names[:3])}"
    footer = f"automatic triage of the alert · {len(checks)} checks · {elapsed:.2f} s"
    messages = triage_messages(title, findings, footer)
    attachment = triage_file(title, findings)
    last_row = 0
    for attempt in range(6):
        try:
            async with store.acquire() as conn:
                async with conn.transaction():
                    current = await conn.fetchrow(
                        "SELECT thread_key, channel FROM alert_groups WHERE id = $1 FOR UPDATE", group_id
                    )
                    for message in messages:
                        last_row = await outbox.enqueue(
                            conn, current["thread_key"], current["channel"], "reply", message, kind="triage"
                        )
                    if attachment is not None:  # after the report: its first lines are already there
                        last_row = await outbox.enqueue(
                            conn, current["thread_key"], current["channel"], "upload", attachment, kind="triage.file"
                        )
                    await conn.execute(
                        "UPDATE alert_groups SET triage_state = 'done' WHERE id = $1 AND triage_state = 'running'",
                        group_id,
                    )
            break
        except Exception as exc:  # the bot database blinked: the report is kept and retried for a while
            if attempt == 5:
                log.error("triage_not_queued", group_id=group_id, error=describe_error(exc))
                return None
            await asyncio.sleep(QUEUE_RETRY.delay(attempt))
    if runtime.outbox is not None:
        runtime.outbox.wake()
    log.info(
        "alert_triaged",
        group_id=group_id,
        checks=len(checks),
        findings=len(findings),
        duration_ms=round(elapsed * 1000, 1),
    )
    return Triaged(findings, last_row)


async def unfinished_triage(store) -> list[int]:
    """Groups whose triage a previous process accepted but did not finish (it stopped or died)."""
    await store.ready()
    async with store.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT id FROM alert_groups WHERE status = 'firing' AND updated_at > now() - interval '1 day'
                AND (triage_state = 'pending'
                     OR (triage_state = 'running' AND triage_started_at < now() - interval '{TRIAGE_STALE}'))"""
        )
    return [row["id"] for row in rows]
