"""The watches' loop: every watch of ERPGO_WATCH runs once per interval slot, on the one replica that
claims the slot; its verb's checks and predictions run as a report would, and the result goes to the
watch's thread (threads.record_run)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.context import CheckContext
from bot.core.engine import run_checks
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, Status
from bot.core.logs import log
from bot.core.registry import Check
from bot.runtime import Runtime
from bot.watch import predict, schedule, threads

MAX_TICK_S = 5.0
MIN_TICK_S = 0.2
UNREACHABLE_TITLE = "unreachable — "  # what the engine and the checks call a target they cannot reach
KEEP_CLAIMS = timedelta(days=1)


def tick_of(watches: list[tuple[str, int]]) -> float:
    """How often the loop looks for due slots: a few times per shortest interval, at most every 5 s."""
    return max(MIN_TICK_S, min(MAX_TICK_S, min(interval for _, interval in watches) / 4))


def enabled(runtime: Runtime) -> bool:
    if not runtime.settings.watches():
        return False
    if not runtime.store.configured or not runtime.settings.erpgo_alert_channel:
        log.warning("watches_not_started", hint="watches need BOT_DATABASE_URL and ERPGO_ALERT_CHANNEL")
        return False
    return True


async def watch_forever(runtime: Runtime) -> None:
    watches = runtime.settings.watches()
    done: dict[str, datetime] = {}  # the newest slot of each watch this process has seen claimed
    while True:
        if not runtime.stopping:
            await run_due(runtime, watches, done, datetime.now(UTC))
        await asyncio.sleep(tick_of(watches))  # a period, not a synchronisation


async def run_due(runtime: Runtime, watches: list[tuple[str, int]], done: dict[str, datetime], now: datetime) -> None:
    for verb, interval in watches:
        slot = schedule.interval_slot(now, interval)
        if done.get(verb) == slot:
            continue
        try:
            async with runtime.store.acquire() as conn:
                won = await schedule.claim(conn, f"watch:{verb}", slot)
                if won:
                    await schedule.forget_old_slots(conn, f"watch:{verb}", slot, KEEP_CLAIMS)
        except Exception as exc:  # the database is down: the next tick tries again
            log.warning("watch_claim_failed", watch=verb, error=describe_error(exc))
            continue
        done[verb] = slot
        if won:
            runtime.tasks.spawn(run_watch(runtime, verb, now), name=f"watch:{verb}")


def measuring(check: Check) -> Check:
    """The check, with a target it cannot reach reported as not measured (an error finding) rather than
    critical: a watch speaks of what it measured; an outage is Alertmanager's to announce."""

    async def measure(ctx: CheckContext) -> Any:
        try:
            result = await check.func(ctx)
        except Exception as exc:
            if is_unreachable(exc):
                return Finding.error(check.component, "not measured — " + describe_error(exc))
            raise
        return [not_measured(f) for f in (result if isinstance(result, list) else [result])]

    return replace(check, func=measure)


def not_measured(finding: Finding) -> Finding:
    """A finding a check made of a target it could not reach ("unreachable — …") as not measured."""
    if finding.status is Status.CRIT and finding.title.startswith(UNREACHABLE_TITLE):
        return Finding.error(finding.component, "not measured — " + finding.title.removeprefix(UNREACHABLE_TITLE))
    return finding


async def watch_findings(runtime: Runtime, verb: str, now: datetime) -> list[Finding]:
    """The verb's checks and its predictions, as one report."""
    if verb == "disk":
        await predict.record_disk(runtime.store, list(runtime.settings.erpgo_disk_paths), now)
    checks = list(runtime.registry.verbs[verb].checks) + predict.prediction_checks(verb, runtime.store)
    checks = [measuring(check) for check in checks]
    return await run_checks(checks, CheckContext(runtime.targets, runtime.settings))


async def run_watch(runtime: Runtime, verb: str, now: datetime) -> None:
    try:
        findings = await watch_findings(runtime, verb, now)
        channel = runtime.settings.erpgo_alert_channel or ""
        async with runtime.store.acquire() as conn, conn.transaction():
            state = await threads.load_state(conn, verb)
            if state.thread_key is None:
                state.channel = channel
            queued = await threads.record_run(conn, state, findings, now)
    except Exception as exc:  # one failed run is logged; the next slot runs again
        log.error("watch_failed", watch=verb, error=describe_error(exc))
        return
    log.info("watch_ran", watch=verb, status=state.status, queued=queued)
    if queued:
        runtime.outbox.wake()
