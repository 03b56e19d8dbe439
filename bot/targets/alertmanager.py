"""Prometheus Alertmanager's API v2: silences, alerts and status.

Unreachable (refused, reset, timed out) surfaces as an OSError/ConnectionError subclass so callers
report "unreachable"; an HTTP error answer is an :class:`AlertmanagerError` whose text never holds
the credentials this client was given.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.core.redact import redact
from bot.targets.http_service import HttpService

__all__ = ["Alertmanager", "AlertmanagerError", "AlertmanagerUnreachable", "matcher_filter"]

# Prometheus label names; anything else would be rejected by Alertmanager or change the matcher's meaning.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MAX_ERROR_TEXT = 500


class AlertmanagerError(Exception):
    """Alertmanager answered with an HTTP error status; `text` is its (redacted) explanation."""

    def __init__(self, status: int, text: str):
        super().__init__(f"Alertmanager answered HTTP {status}" + (f": {text}" if text else ""))
        self.status = status
        self.text = text


class AlertmanagerUnreachable(ConnectionError):
    """The connection broke in a way aiohttp does not report as an OSError (e.g. server disconnected)."""


class Alertmanager(HttpService):
    """A client for one Alertmanager; every call is bounded by `timeout` seconds."""

    SERVICE = "Alertmanager"

    # ------------------------------------------------------------------ API

    async def create_silence(
        self,
        matchers: dict[str, str],
        starts_at: dt.datetime,
        ends_at: dt.datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Silence alerts whose labels equal every `matchers` item; returns the new silence's id."""
        if not matchers:
            raise ValueError("a silence needs at least one matcher (an empty one would silence everything)")
        body = {
            "matchers": [
                {"name": _label_name(name), "value": value, "isRegex": False, "isEqual": True}
                for name, value in matchers.items()
            ],
            "startsAt": _rfc3339(starts_at),
            "endsAt": _rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._request("POST", "/api/v2/silences", json_body=body)
        return str(answer["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        """End a silence now; expiring an already expired silence succeeds."""
        await self._request("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    async def get_silence(self, silence_id: str) -> dict:
        """The silence as Alertmanager keeps it: id, status.state (active/pending/expired), endsAt, matchers…"""
        silence: dict = await self._request("GET", f"/api/v2/silence/{quote(silence_id, safe='')}")
        return silence

    async def silences(self, matchers: dict[str, str] | None = None) -> list[dict]:
        """Silences (any state) whose matchers include every `matchers` item."""
        found: list[dict] = await self._request("GET", "/api/v2/silences", params=_filters(matchers))
        return found

    async def alerts(
        self,
        matchers: dict[str, str] | None = None,
        *,
        silenced: bool = True,
        inhibited: bool = True,
        active: bool = True,
    ) -> list[dict]:
        """Alerts whose labels equal every `matchers` item; each has status.state and status.silencedBy."""
        params = _filters(matchers)
        params += [("silenced", _flag(silenced)), ("inhibited", _flag(inhibited)), ("active", _flag(active))]
        found: list[dict] = await self._request("GET", "/api/v2/alerts", params=params)
        return found

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Send alerts as Prometheus does (`labels`, `annotations`, `startsAt`; an `endsAt` in the past
        resolves one)."""
        await self._request("POST", "/api/v2/alerts", json_body=alerts)

    async def status(self) -> dict:
        """Cluster, version and config status; a cheap "is it reachable" probe."""
        answer: dict = await self._request("GET", "/api/v2/status")
        return answer

    # ------------------------------------------------------------------ HTTP

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, params: list[tuple[str, str]] | None = None
    ) -> Any:
        try:
            async with self._client().request(method, self.url + path, json=json_body, params=params) as response:
                text = await response.text(errors="replace")
                status = response.status
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, OSError):  # ClientConnectorError, ClientOSError: already "unreachable"
                raise
            raise AlertmanagerUnreachable(f"Alertmanager connection failed: {type(error).__name__}") from None
        if status >= 400:
            raise AlertmanagerError(status, self._explain(text))
        return json.loads(text) if text.strip() else None

    def _explain(self, body: str) -> str:
        """Alertmanager's error text: a JSON string, or {"code", "message"}; never the credentials."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body
        if isinstance(parsed, dict):
            parsed = parsed.get("message", body)
        text = str(parsed).strip()
        return redact(self._without_secrets(text))[:_MAX_ERROR_TEXT]


def matcher_filter(name: str, value: str) -> str:
    """One equality matcher in Alertmanager's filter syntax: name="value" with the value escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{_label_name(name)}="{escaped}"'


def _filters(matchers: dict[str, str] | None) -> list[tuple[str, str]]:
    return [("filter", matcher_filter(name, value)) for name, value in (matchers or {}).items()]


def _label_name(name: str) -> str:
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"not a label name: {name[:60]!r}")
    return name


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _rfc3339(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("silence times must be timezone-aware")
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
