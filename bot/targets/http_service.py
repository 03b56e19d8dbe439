"""What the HTTP APIs the bot calls with credentials share (Alertmanager's, Prometheus's): one base URL,
basic or bearer authentication (never both), one session, every call under the same timeout, and the
credentials known so they can be kept out of what an error says."""

from __future__ import annotations

import base64

import aiohttp

from bot.core.redact import MASK


class HttpService:
    SERVICE = "the service"  # its name in what an error says

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        timeout: float,
    ):
        if bearer_token and (username or password):
            raise ValueError(f"{self.SERVICE} auth: give either a username/password or a bearer token, not both")
        if password and not username:
            raise ValueError(f"{self.SERVICE} auth: a password needs a username")
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        authorization = None
        if username:
            authorization = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        elif bearer_token:
            authorization = f"Bearer {bearer_token}"
        self._headers = {"Authorization": authorization} if authorization else {}
        self._secrets = [s for s in (password, bearer_token, authorization) if s]
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self._headers)
        return self._session

    def _without_secrets(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
