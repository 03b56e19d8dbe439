"""The rules every door of the Bolt app shares, written once as Bolt middleware instead of at every
listener: who and what a request is about goes into the log context; the Slack user groups the policy
names are brought up to date for the person acting; nothing new starts while the bot drains for a
restart; and an unexpected exception becomes one clear reply and one log line.

What is a handler's own stays in the handler: which verb, whether the policy lets this person run it
(the router knows the verb), what a click does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse

from bot.core.errors import describe_error
from bot.core.logs import log
from bot.core.metrics import COMMANDS
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.identity import SlackIdentity
from bot.slack.interaction import Interaction, tell, text_field

Next = Callable[[], Awaitable[None]]
COMMAND_STOPPING = ":hourglass_flowing_sand: The bot is restarting; run the command again in a few seconds."
CLICK_STOPPING = ":hourglass_flowing_sand: The bot is restarting: nothing was done. Click again in a few seconds."
FOREIGN_TEAM = ":no_entry: This bot answers its own Slack workspace only; nothing was done."
UNEXPECTED = ":warning: Something went wrong on the bot's side and nothing was done; it is in the bot's log ({ref})."


def install(app: AsyncApp, runtime: Runtime) -> None:
    """The shared rules, in the order they apply to every request Bolt dispatches."""
    app.use(log_context)
    app.use(own_workspace_only(runtime))
    app.use(policy_groups(runtime))
    app.use(stopping_gate(runtime))
    app.error(error_reply(runtime))


def user_of(body: dict[str, Any]) -> str:
    """The person acting: a slash command's user_id, an interaction's user, an event's user."""
    return (text_field(body, "user_id") or text_field(body, "user", "id") or text_field(body, "event", "user"))[:40]


def what_of(body: dict[str, Any]) -> str:
    """The command, action, modal or event a request is."""
    if text_field(body, "command"):
        return text_field(body, "command")
    interaction = Interaction.of(body)
    return (interaction.action_id or text_field(body, "event", "type") or text_field(body, "type"))[:60]


async def log_context(body: dict[str, Any], context: dict[str, Any], next: Next) -> None:
    """request_id, slack_user and what the request is, in every log line of the request and of the
    work it starts (tasks copy the context). Each request is dispatched in a context of its own."""
    request_id = uuid.uuid4().hex[:12]
    context["request_id"] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id, slack_user=user_of(body), slack_request=what_of(body))
    await next()


def foreign_origin(identity: SlackIdentity, body: dict[str, Any]) -> str | None:
    """The team or enterprise a request names that is not the bot's own, or None. Slack Connect or a
    forged payload: a person of another organisation never acts here, however the policy reads."""
    if not identity.team_id:
        return None  # auth.test has not answered yet; clicks wait for it anyway (the approvals' rule)
    teams = {text_field(body, "team_id"), text_field(body, "user", "team_id"), Interaction.of(body).team_id or ""}
    enterprises = {text_field(body, "enterprise_id"), text_field(body, "enterprise", "id")}
    teams.discard("")
    enterprises.discard("")
    if identity.enterprise_id:  # an org-wide install: any workspace of the organisation
        return next((e for e in enterprises if e != identity.enterprise_id), None)
    return next(iter(enterprises), None) or next((t for t in teams if t != identity.team_id), None)


def own_workspace_only(runtime: Runtime) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def gate(body: dict[str, Any], ack: AsyncAck, next: Next) -> BoltResponse | None:
        """A command, click or event from another team or enterprise is refused before anything reads it."""
        foreign = foreign_origin(runtime.identity, body)
        if foreign is None:
            await next()
            return None
        log.warning("slack_request_foreign_team", origin=foreign[:40])
        if text_field(body, "command"):
            return json_response(render.text_message(FOREIGN_TEAM))
        await ack()
        return BoltResponse(status=200, body="")

    return gate


def policy_groups(runtime: Runtime) -> Callable[..., Awaitable[None]]:
    async def resolve(body: dict[str, Any], next: Next) -> None:
        """The Slack user groups the policy names, up to date for this person before any decision."""
        user = user_of(body)
        if user:
            await runtime.policy.resolve(user)
        await next()

    return resolve


def stopping_gate(runtime: Runtime) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def gate(body: dict[str, Any], ack: AsyncAck, next: Next) -> BoltResponse | None:
        """While the bot drains for a restart nothing new starts: a command or a click is told so."""
        if not runtime.stopping:
            await next()
            return None
        if text_field(body, "command"):
            COMMANDS.labels("stopping", "stopping").inc()
            return json_response(render.text_message(COMMAND_STOPPING))
        await ack()
        if text_field(body, "type") == "block_actions":
            await tell(runtime.slack, Interaction.of(body), render.text_message(CLICK_STOPPING))
        return BoltResponse(status=200, body="")

    return gate


def error_reply(runtime: Runtime) -> Callable[..., Awaitable[BoltResponse]]:
    async def reply(error: Exception, body: dict[str, Any]) -> BoltResponse:
        """An exception no listener expected: one log line, and the person who acted is told once."""
        ref = uuid.uuid4().hex[:8]
        log.error("request_failed", ref=ref, error=describe_error(error), error_type=type(error).__name__)
        message = render.text_message(UNEXPECTED.format(ref=ref))
        if text_field(body, "command"):
            return json_response(message)
        if text_field(body, "type") == "block_actions":
            await tell(runtime.slack, Interaction.of(body), message)
        return BoltResponse(status=200, body="")

    return reply


def json_response(message: render.Message) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(message), headers={"content-type": "application/json"})
