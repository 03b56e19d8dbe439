"""`/erpgo timeline [group | thread]`: the incident as it happened, from the bot's own records, written
up as a postmortem draft (Markdown) and shared as a file in the incident's thread.

The ack says what is being written; the draft is built in the background and queued in the outbox
as an `upload` row of the thread (files.getUploadURLExternal, the upload, files.completeUploadExternal),
so a Slack outage delays the file but does not lose it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from slack_bolt.async_app import AsyncApp

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.registry import Runbook, UsageError
from bot.incidents.postmortem import file_name, postmortem
from bot.incidents.timeline import Incident, load_group, load_thread, locate, parse_target
from bot.runtime import Runtime
from bot.slack import outbox, render
from bot.slack.interaction import Invocation

LOOKUP_TIMEOUT = 2.0
UPLOAD_KIND = "timeline"

bot_verbs = Runbook("incidents")  # the bot's own verb: timeline


def register(_app: AsyncApp, _runtime: Runtime) -> None:
    """No Slack listeners: the verb answers through the /erpgo router."""


@bot_verbs.bot_verb(
    "timeline",
    "the incident as the bot saw it (alerts, triage, commands, approvals) as a postmortem draft in its thread",
    usage="[group | thread link]",
)
async def timeline_verb(runtime: Runtime, inv: Invocation | None, args: list[str]) -> render.Message:
    try:
        target = parse_target(args)
    except ValueError as exc:
        raise UsageError(f"`timeline` {exc}") from None
    if not runtime.store.configured:
        return render.text_message("Timelines are built from the bot's database: set BOT_DATABASE_URL.")
    if inv is None:  # the command line: there is no Slack thread to share the draft in
        raise UsageError("`timeline` shares its postmortem draft in a Slack thread: run `/erpgo timeline` in Slack")
    try:
        await asyncio.wait_for(runtime.store.ready(), LOOKUP_TIMEOUT)
        async with runtime.store.acquire() as conn:
            found = await asyncio.wait_for(locate(conn, target), LOOKUP_TIMEOUT)
    except Exception as exc:
        return render.text_message(
            f":red_circle: Could not read the bot's records: {render.escape(describe_error(exc))}"
        )
    if found is None:
        what = (
            f"alert group #{target.group_id}"
            if target.group_id
            else ("that thread" if target.thread_ts else "any alert group")
        )
        return render.text_message(f":grey_question: The bot has no record of {what}.")
    runtime.tasks.spawn(write_timeline(runtime, found, inv.user_id if inv else "cli"), name=f"timeline:{found[1]}")
    where = f"alert group #{found[1]}" if found[0] == "group" else "that thread"
    return render.text_message(
        f":memo: Writing the timeline of {where}: the postmortem draft will be shared in its thread."
    )


async def load(conn: asyncpg.Connection, found: tuple[Any, ...]) -> Incident:
    kind, key, channel = found
    return await load_group(conn, int(key)) if kind == "group" else await load_thread(conn, channel, str(key))


async def write_timeline(runtime: Runtime, found: tuple, requester: str) -> None:
    try:
        async with runtime.store.acquire() as conn:
            incident = await load(conn, found)
            if incident.thread_ts is None:
                log.warning("timeline_not_shared", reason="its thread was never posted", target=str(found[1]))
                return
            text = postmortem(incident)
            async with conn.transaction():
                thread_key = incident.thread_key or f"report:{incident.channel}:{incident.thread_ts}"
                await conn.execute(
                    "INSERT INTO slack_threads (thread_key, channel, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    thread_key,
                    incident.channel,
                    incident.thread_ts,
                )
                await outbox.lock_thread(conn, thread_key)
                await outbox.enqueue(
                    conn,
                    thread_key,
                    incident.channel,
                    "upload",
                    {
                        "text": f":memo: Postmortem draft of {render.escape(incident.describe)}, asked for by <@{requester}>: "
                        f"{len(incident.events)} events, {len(incident.actions)} actions.",
                        "file": {
                            "content": text,
                            "filename": file_name(incident),
                            "title": f"Postmortem draft: {incident.title}",
                        },
                    },
                    kind=UPLOAD_KIND,
                )
        runtime.outbox.wake()
        log.info("timeline_queued", target=str(found[1]), events=len(incident.events), actions=len(incident.actions))
    except Exception as exc:  # a background task: say it in the log, the asker can run it again
        log.error("timeline_failed", target=str(found[1]), error=describe_error(exc))
