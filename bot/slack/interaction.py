"""One reading of what Slack sends when someone acts — a button click, a modal's submission — and one
way to answer that person alone. A payload's shape is never trusted: every field is read as a string
when it is one, and as "" (or None) otherwise."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.core.logs import log
from bot.core.parse import is_slack_channel_id
from bot.slack.client import SlackOut
from bot.slack.render import Message


def text_field(container: object, *keys: str) -> str:
    """body[k1][k2]… when it is a string; "" for anything else."""
    for key in keys:
        container = container.get(key) if isinstance(container, dict) else None
    return container if isinstance(container, str) else ""


@dataclass(frozen=True)
class Interaction:
    """Who acted, where (channel and the message clicked), on what (the action's id and value)."""

    user: str
    user_name: str
    channel: str | None  # a Slack channel id, or None when the payload names none that looks like one
    message_ts: str | None
    action_id: str
    value: str
    response_url: str | None
    trigger_id: str | None
    team_id: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Interaction:
        """A block_actions payload; a view_submission reads channel, message and value from the
        modal's private_metadata (`{"channel", "ts", "value"}`), written when the modal was opened."""
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        opened_from = _metadata(body)
        channel = text_field(body, "channel", "id") or text_field(container, "channel_id") or opened_from.get("channel")
        return cls(
            user=text_field(body, "user", "id"),
            user_name=text_field(body, "user", "username")
            or text_field(body, "user", "name")
            or text_field(body, "user", "id"),
            channel=channel if channel and is_slack_channel_id(channel) else None,
            message_ts=text_field(container, "message_ts") or opened_from.get("ts") or None,
            action_id=text_field(action, "action_id") or text_field(body, "view", "callback_id"),
            value=text_field(action, "value") or opened_from.get("value", ""),
            response_url=text_field(body, "response_url") or None,
            trigger_id=text_field(body, "trigger_id") or None,
            team_id=text_field(body, "team", "id") or text_field(body, "user", "team_id") or None,
        )


@dataclass(frozen=True)
class Invocation:
    """One /erpgo request: who typed what, where, and how to answer it outside the channel."""

    user_id: str
    channel_id: str
    text: str
    response_url: str | None
    request_id: str

    @classmethod
    def of(cls, command: dict[str, Any], request_id: str) -> Invocation:
        return cls(
            user_id=text_field(command, "user_id"),
            channel_id=text_field(command, "channel_id"),
            text=text_field(command, "text"),
            response_url=text_field(command, "response_url") or None,
            request_id=request_id,
        )


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    try:
        found = json.loads(text_field(body, "view", "private_metadata") or "{}")
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


async def tell(slack: SlackOut, who: Interaction, message: Message, thread_ts: str | None = None) -> None:
    """Only `who.user` sees it: chat.postEphemeral, or the interaction's response_url when that fails
    (the bot is not in the channel, or there is no channel). Never raises: a notice is not worth a crash."""
    try:
        if not who.channel:
            raise LookupError("no channel")
        await slack.ephemeral(who.channel, who.user, message | ({"thread_ts": thread_ts} if thread_ts else {}))
        return
    except (SlackApiError, LookupError) as exc:
        log.info("ephemeral_via_response_url", reason=type(exc).__name__)
    except Exception as exc:
        log.warning("ephemeral_failed", error=type(exc).__name__)
    if who.response_url:
        try:
            await slack.respond(who.response_url, message)
        except Exception as exc:
            log.warning("user_not_told", error=type(exc).__name__)
