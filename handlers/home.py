"""The App Home tab: on app_home_opened, publish (views.publish) what is firing, the approvals the
viewer may decide and the commands they ran lately. Each part that cannot be read says so; the tab
is published all the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.runtime import Runtime
from bot.slack.home import MAX_LISTED, HomeApproval, HomeCommand, HomeGroup, home_view
from bot.store.commands import recent_commands

READ_TIMEOUT = 3.0
LINK_TIMEOUT = 1.5

MAX_GROUPS_READ = 500  # firing groups read to find those the viewer may see; more than that, the newest
ALERTS_VERB = "alerts"  # who may run `/erpgo alerts` in a group's channel may see the group

OPEN_GROUPS = """
SELECT g.id, g.common_labels, g.annotations, g.fired_at, g.alerts_firing, coalesce(t.channel, g.channel) AS channel,
       t.ts, a.acked_by
FROM alert_groups g
LEFT JOIN slack_threads t ON t.thread_key = g.thread_key
LEFT JOIN alert_actions a ON a.thread_key = g.thread_key
WHERE g.status = 'firing' ORDER BY g.fired_at DESC LIMIT $1
"""


def register(app: AsyncApp, runtime: Runtime) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        runtime.tasks.spawn(publish_home(runtime, str(event["user"])), name="home")


async def publish_home(runtime: Runtime, user: str) -> None:
    notes: list[str] = []
    groups: list[HomeGroup] = []
    total = 0
    approvals: list[HomeApproval] = []
    commands: list[HomeCommand] = []
    if not runtime.store.configured:
        notes.append(
            ":information_source: Alerts, approvals and commands are kept in the bot's database: set BOT_DATABASE_URL."
        )
    else:
        results = await asyncio.gather(
            asyncio.wait_for(firing_groups(runtime, user), READ_TIMEOUT),
            asyncio.wait_for(decidable(runtime, user), READ_TIMEOUT),
            asyncio.wait_for(recent_commands(runtime.store, user), READ_TIMEOUT),
            return_exceptions=True,
        )
        for what, result in zip(("alert groups", "approvals", "recent commands"), results, strict=True):
            if isinstance(result, BaseException):
                notes.append(f":warning: Could not read the {what}: {describe_error(result)}")
        if not isinstance(results[0], BaseException):
            groups, total = results[0]
        if not isinstance(results[1], BaseException):
            approvals = results[1]
        if not isinstance(results[2], BaseException):
            commands = [HomeCommand(c.at, c.verb, c.text, c.channel) for c in results[2]]
    try:
        await runtime.slack.publish_home(user, home_view(groups, total, approvals, commands, notes))
    except Exception as exc:
        log.warning("app_home_not_published", error=describe_error(exc))


async def firing_groups(runtime: Runtime, user: str) -> tuple[list[HomeGroup], int]:
    """The newest firing groups `user` may see (the policy lets them run `/erpgo alerts` in the group's
    channel), and how many there are: a group of a channel the policy keeps them out of is not there."""
    await runtime.store.ready()
    async with runtime.store.acquire() as conn:
        rows = await conn.fetch(OPEN_GROUPS, MAX_GROUPS_READ)
    rows = [r for r in rows if runtime.policy.command_refusal(user, r["channel"] or "", ALERTS_VERB) is None]
    total, rows = len(rows), rows[:MAX_LISTED]
    links = await runtime.slack.permalinks(
        {r["id"]: (r["channel"], r["ts"]) for r in rows if r["ts"]}, timeout=LINK_TIMEOUT
    )
    groups = []
    for r in rows:
        labels, annotations = json.loads(r["common_labels"]), json.loads(r["annotations"])
        groups.append(
            HomeGroup(
                title=labels.get("alertname") or "alert group",
                severity=labels.get("severity", ""),
                summary=annotations.get("summary", ""),
                firing=r["alerts_firing"],
                since=r["fired_at"],
                link=links.get(r["id"]),
                acked_by=r["acked_by"],
            )
        )
    return groups, total


async def decidable(runtime: Runtime, user: str) -> list[HomeApproval]:
    """Pending approvals `user` may approve (an approver, and not their own unless self-approval is on)."""
    if not runtime.approvals.configured:
        return []
    policy = runtime.policy  # its user groups are up to date for `user` (the middleware)
    open_ones = await runtime.approvals.open_approvals()
    pending = [a for a in open_ones if a.state == "pending"]
    mine = [a for a in pending if policy.approval_refusal(user, a.action, a.requester) is None]
    # run under break glass: an approver other than the requester reviews them
    mine += [a for a in open_ones if a.unreviewed and a.requester != user and policy.may_decide(user, a.action)]
    links = await runtime.slack.permalinks(
        {a.id: (a.channel, a.message_ts) for a in mine if a.channel and a.message_ts}, timeout=LINK_TIMEOUT
    )
    return [
        HomeApproval(a.id, a.summary, a.action, a.requester, a.expires_at, links.get(a.id), a.review_due_at)
        for a in mine
    ]
