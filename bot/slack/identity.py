"""Who the bot is on Slack: `auth.test`, asked once at start (retried with backoff) and cached.

Bolt would otherwise call auth.test lazily on the first request it gets, inside that request: a
Slack that fails it (500, or 429 with Retry-After) then makes the asker's first command answer
"your installation is no longer available", late. Here Bolt is given an `authorize` function that
answers from the cache at once; until auth.test has answered, requests are still served with the
bot token (the bot's own ids are then unknown, and approvals refuse clicks until they are known).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import Backoff, describe_error
from bot.core.logs import log

# auth.test answers that no retry will change: the token itself is refused
TOKEN_REJECTED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
BACKOFF = Backoff(first=0.5, cap=30.0)


@dataclass(frozen=True)
class SlackIdentity:
    """The bot's account as auth.test describes it."""

    user_id: str  # the bot user (U…): never counts as a person
    bot_id: str | None  # B…
    team_id: str | None
    enterprise_id: str | None = None


UNKNOWN_IDENTITY = SlackIdentity("", None, None)  # until auth.test has answered


class TokenRejected(Exception):
    """Slack refuses SLACK_BOT_TOKEN (auth.test said e.g. invalid_auth); retrying will not help."""

    def __init__(self, error: str):
        super().__init__(f"Slack rejects SLACK_BOT_TOKEN (auth.test: {error})")
        self.error = error


async def auth_test(client: AsyncWebClient) -> SlackIdentity:
    """One auth.test; SlackApiError / connection errors as the client raises them."""
    response = await client.auth_test()
    user_id = response.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("auth.test answered without a user_id")
    return SlackIdentity(
        user_id=user_id,
        bot_id=response.get("bot_id") or None,
        team_id=response.get("team_id") or None,
        enterprise_id=response.get("enterprise_id") or None,
    )


async def identify(
    client: AsyncWebClient,
    backoff: Backoff = BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> SlackIdentity:
    """auth.test until it answers; TokenRejected when Slack refuses the token itself."""
    failures = 0
    while True:
        try:
            identity = await auth_test(client)
        except SlackApiError as exc:
            error = str((exc.response or {}).get("error") or "unknown")
            if error in TOKEN_REJECTED:
                raise TokenRejected(error) from None
            reason = error
        except Exception as exc:  # Slack down, slow or answering garbage: try again
            reason = describe_error(exc)
        else:
            log.info("slack_identity", user_id=identity.user_id, bot_id=identity.bot_id, team_id=identity.team_id)
            return identity
        delay = backoff.delay(failures)
        failures += 1
        log.warning("slack_auth_test_failed", error=reason, attempt=failures, retry_in_s=delay)
        await sleep(delay)


def authorizer(token: str, current: Callable[[], SlackIdentity]) -> Callable[..., Awaitable[AuthorizeResult]]:
    """Bolt's `authorize`: the cached identity, never a Slack call inside a request."""

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        identity = current()
        return AuthorizeResult(
            enterprise_id=identity.enterprise_id or enterprise_id,
            team_id=identity.team_id or team_id,
            bot_user_id=identity.user_id or None,
            bot_id=identity.bot_id,
            bot_token=token,
            user_id=user_id,
        )

    return authorize
