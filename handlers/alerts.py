"""Alertmanager's webhook (POST /alerts/alertmanager) and the `/erpgo alerts` verb.

Answers, so that Alertmanager retries exactly when it should (it retries 5xx, not 4xx):

* 401 — no `Authorization: Bearer <ALERT_WEBHOOK_TOKEN>` or a wrong one (compared in constant time);
* 400 — not JSON, or not a version 4 webhook body (the message says which field), a body that is not
  what its Content-Encoding says, a time stamp out of range, or a notification the database refuses
  to store (its batch-mates are stored: only this one is refused, logged with its groupKey);
* 413 — a body over 32 MiB (set `max_alerts` in the webhook config);
* 503 — intake not configured (ALERT_WEBHOOK_TOKEN, BOT_DATABASE_URL, ERPGO_ALERT_CHANNEL): the route
  exists and says what to set, the rest of the bot keeps working; or the bot's database cannot
  record the alerts right now; or the bot is stopping (another replica, or this one restarted, takes
  the retry);
* 500 — anything else that kept the alerts from being recorded;
* 200 — only once every alert of the notification is committed to the database.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from typing import Any

import msgspec
from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.alerts.charts import queue_alert_chart
from bot.alerts.intake import Recorder, open_groups
from bot.alerts.messages import open_groups_message
from bot.alerts.triage import triage_group, unfinished_triage
from bot.alerts.webhook import IntakeError, group_key_of, parse_webhook, route_channel
from bot.approvals.publish import queue_proposals
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding
from bot.core.http import BodyRefused, read_bounded
from bot.core.logs import log
from bot.core.metrics import ALERT_ACCEPT_SECONDS, ALERT_WEBHOOKS
from bot.core.registry import Runbook, UsageError
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.interaction import Invocation
from bot.slack.outbox import ThreadRows

PATH = "/alerts/alertmanager"
MAX_BODY = 32 * 1024 * 1024
TRIAGE_SWEEP_S = 5.0  # how soon triage given back by a stopping replica, or left by a dead one, is taken up


bot_verbs = Runbook("alerts")  # the bot's own verb: alerts


def routes(runtime: Runtime) -> list[web.RouteDef]:
    recorder = Recorder(runtime.store, runtime.settings, runtime.tasks.people) if runtime.store.configured else None

    async def alertmanager(request: web.Request) -> web.Response:
        return await receive(runtime, recorder, request)

    return [web.post(PATH, alertmanager)]


def register(_app: AsyncApp, runtime: Runtime) -> None:
    """No Slack listeners; takes up triage nobody is doing — at start and every few seconds after
    (accepted but not started by a process that stopped or died, given back by one that stopped)."""
    if not runtime.store.configured or runtime.settings.alert_webhook_token is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    runtime.start_loop(resume_triage_forever(runtime), name="triage:resume")


async def resume_triage_forever(runtime: Runtime, interval: float = TRIAGE_SWEEP_S) -> None:
    while True:
        if not runtime.stopping:
            await resume_triage(runtime)
        await asyncio.sleep(interval)  # a period, not a synchronisation


async def resume_triage(runtime: Runtime) -> None:
    try:
        groups = await unfinished_triage(runtime.store)
    except Exception as exc:  # the database is down: the next sweep looks again
        log.warning("triage_resume_failed", error=describe_error(exc))
        return
    for group_id in groups:
        spawn_triage(runtime, group_id)


def spawn_triage(runtime: Runtime, group_id: int) -> None:
    name = f"triage:{group_id}"
    if not runtime.tasks.running(name):  # this process is on it already
        runtime.tasks.spawn(run_triage(runtime, group_id), name=name)


async def run_triage(runtime: Runtime, group_id: int) -> None:
    """Triage the group; its proposals become approval messages (requester "alertmanager") queued in
    the thread right after the triage report, in the same transaction."""

    async def proposals(rows: ThreadRows, findings: list[Finding]) -> None:
        await queue_proposals(runtime, rows, findings, requester="alertmanager")

    if await triage_group(runtime, group_id, also=proposals) is not None:
        await queue_alert_chart(runtime, group_id)  # after the report's text: it never waits for the chart


@functools.cache
def _counted(result: str) -> Any:
    return ALERT_WEBHOOKS.labels(result)  # a labelled child found once, not at every answer


_JSON = msgspec.json.Encoder()


def _answer(status: int, result: str, message: str, **extra: Any) -> web.Response:
    _counted(result).inc()
    body = {"status": result, "message": message} if status >= 300 else {"status": result, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="erpgo-chatops"'} if status == 401 else None
    return web.Response(body=_JSON.encode(body), status=status, headers=headers, content_type="application/json")


def authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    # compare_digest takes the same time whatever the mismatch; an empty token never matches
    return hmac.compare_digest(given.strip().encode(), token.encode()) and bool(given.strip())


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The raw (decoded) body, read as a stream (the app's 1 MiB cap is for Slack); IntakeError 413 over
    `limit`, 400 when it is not what its Content-Encoding says."""
    try:
        return await read_bounded(request, limit)
    except BodyRefused as exc:
        if exc.status == 413:
            raise IntakeError(
                413, f"body over {limit // (1024 * 1024)} MiB: set max_alerts in the webhook config"
            ) from None
        raise IntakeError(exc.status, exc.message) from None


async def receive(runtime: Runtime, recorder: Recorder | None, request: web.Request) -> web.Response:
    started = time.perf_counter()
    if runtime.stopping:  # Alertmanager retries a 503 (here after the restart, or at another replica)
        return _answer(503, "stopping", "the bot is stopping; retry")
    settings = runtime.settings
    token = settings.secret("alert_webhook_token")
    if not token:
        return _answer(503, "not_configured", "alert intake not configured: set ALERT_WEBHOOK_TOKEN")
    if not authorized(request.headers.get("Authorization"), token):
        log.warning("alert_webhook_unauthorized", remote=request.remote)
        return _answer(401, "unauthorized", "missing or wrong bearer token")
    if recorder is None:
        return _answer(503, "not_configured", "alert intake not configured: set BOT_DATABASE_URL")
    if not settings.erpgo_alert_channel:
        return _answer(503, "not_configured", "alert intake not configured: set ERPGO_ALERT_CHANNEL")
    await runtime.tasks.people.after_people()
    raw = b""
    try:
        raw = await read_body(request)
        hook = parse_webhook(raw)
    except IntakeError as exc:
        log.warning("alert_webhook_invalid", error=exc.message, status=exc.status, group_key=group_key_of(raw))
        answer = _answer(exc.status, "too_large" if exc.status == 413 else "invalid", exc.message)
        if exc.status == 400 and "Content-Encoding" in exc.message:
            answer.force_close()  # the connection's framing is no longer trusted
        return answer
    channel = route_channel(settings, hook.commonLabels)
    if channel is None:
        return _answer(
            503, "unavailable", "no ERPGO_ALERT_ROUTES rule matches these alerts and ERPGO_ALERT_CHANNEL is unset"
        )
    try:
        recorded = await recorder.submit(hook, channel)
    except IntakeError as exc:  # this notification can never be stored; its batch-mates were
        log.warning("alert_not_storable", group_key=hook.groupKey[:200], alerts=len(hook.alerts), error=exc.message)
        return _answer(exc.status, "invalid", exc.message)
    except Exception as exc:
        error = describe_error(exc)
        log.error("alert_not_recorded", group_key=hook.groupKey[:200], alerts=len(hook.alerts), error=error)
        if is_unreachable(exc):
            return _answer(
                503, "unavailable", f"alerts not recorded, the bot's database is unavailable ({error}); retry"
            )
        return _answer(500, "error", f"alerts not recorded ({error}); retry")
    ALERT_ACCEPT_SECONDS.observe(time.perf_counter() - started)
    if recorded.triage:
        spawn_triage(runtime, recorded.group_id)
    elif recorded.outcome == "resolved":  # the chart that shows the recovery
        runtime.tasks.spawn(queue_alert_chart(runtime, recorded.group_id), name=f"chart:{recorded.group_id}")
    if recorded.queued:
        runtime.outbox.wake_soon()
    return _answer(200, "accepted", "", alerts=recorded.alerts, group=recorded.group_id, outcome=recorded.outcome)


# ---------------------------------------------------------------------- /erpgo alerts


@bot_verbs.bot_verb("alerts", "the alert groups firing now, with links to their threads")
async def alerts_verb(runtime: Runtime, _invocation: Invocation | None, args: list[str]) -> render.Message:
    if args:
        raise UsageError("`alerts` takes no arguments")
    if not runtime.store.configured:
        return render.text_message("Alert threads are kept in the bot's database: set BOT_DATABASE_URL.")
    try:
        await asyncio.wait_for(runtime.store.ready(), 2)
        groups, total = await asyncio.wait_for(open_groups(runtime.store), 2)
    except Exception as exc:
        return render.text_message(
            f":red_circle: Could not read the alert threads: {render.escape(describe_error(exc))}"
        )
    links = await runtime.slack.permalinks({g.group_id: (g.channel, g.ts) for g in groups if g.ts}, timeout=1.5)
    return open_groups_message(groups, total, links)
