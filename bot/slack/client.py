"""What the bot says to one person (ephemeral messages, response_url answers) and the permalinks it
reads: redacted, counted, retried by slack_sdk. Messages in channels and threads go through the
outbox (bot/slack/outbox.py), never through here."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.core.logs import log
from bot.core.metrics import SLACK_API_ERRORS
from bot.core.redact import redact_any
from bot.slack.render import Message
from bot.slack.web import PooledWebClient, close_connections


def web_client(token: str, base_url: str, timeout: float = 10.0) -> AsyncWebClient:
    client = PooledWebClient(token=token, base_url=base_url, timeout=int(timeout))
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


K = TypeVar("K", bound=Hashable)


class SlackOffline(ConnectionError):
    """This process has no Slack to talk to (e.g. `erpgo-bot check approvals`)."""


class SlackOut:
    def __init__(self, client: AsyncWebClient | None):
        self._client = client

    @classmethod
    def offline(cls) -> SlackOut:
        return cls(None)

    @property
    def offline_mode(self) -> bool:
        return self._client is None

    async def close(self) -> None:
        await close_connections(self._client)

    @property
    def client(self) -> AsyncWebClient:
        if self._client is None:
            raise SlackOffline("no Slack in this process")
        return self._client

    async def _call(self, method: str, **kwargs: Any) -> dict:
        try:
            response = await self.client.api_call(method, json=redact_any(kwargs))
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
            SLACK_API_ERRORS.labels(method, error).inc()
            log.warning("slack_api_error", method=method, error=error)
            raise
        except Exception as exc:
            SLACK_API_ERRORS.labels(method, type(exc).__name__).inc()
            log.warning("slack_api_error", method=method, error=type(exc).__name__)
            raise
        assert isinstance(response.data, dict)  # JSON methods only
        return response.data

    async def ephemeral(self, channel: str, user: str, msg: Message) -> dict:
        return await self._call("chat.postEphemeral", channel=channel, user=user, **msg)

    async def usergroup_members(self, usergroup: str) -> list[str]:
        """The user ids in a Slack user group (usergroups.users.list, scope usergroups:read)."""
        response = await self._call("usergroups.users.list", usergroup=usergroup)
        return [str(user) for user in response.get("users") or []]

    async def publish_home(self, user: str, view: dict) -> dict:
        """Show `view` in `user`'s App Home tab (views.publish)."""
        return await self._call("views.publish", user_id=user, view=view)

    async def permalinks(self, messages: dict[K, tuple[str, str]], timeout: float) -> dict[K, str]:
        """Links to posted messages ({key: (channel, ts)}); what Slack does not answer in time goes without."""

        async def one(key: K, channel: str, ts: str) -> tuple[K, str | None]:
            try:
                response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
                return key, response.get("permalink")
            except Exception:  # a link is a nicety: the list is shown without it
                return key, None

        if not messages:
            return {}
        tasks = [asyncio.ensure_future(one(key, channel, ts)) for key, (channel, ts) in messages.items()]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        return {key: link for key, link in (t.result() for t in done) if link}

    async def respond(
        self, response_url: str, msg: Message, *, replace_original: bool = False, in_channel: bool = False
    ) -> None:
        """Answer through a response_url (works where the bot is not a channel member)."""
        webhook = AsyncWebhookClient(response_url, timeout=10)
        response = await webhook.send(
            **redact_any(msg),
            response_type="in_channel" if in_channel else "ephemeral",
            replace_original=replace_original,
        )
        if response.status_code >= 300:
            SLACK_API_ERRORS.labels("response_url", str(response.status_code)).inc()
            log.warning("slack_response_url_error", status=response.status_code)
