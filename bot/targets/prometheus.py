"""Prometheus's HTTP API: range queries for the charts (the alert's graph, `graph`, the reports' trends).

Unreachable (refused, reset, timed out) surfaces as an OSError/ConnectionError subclass so callers
report "unreachable"; an answer Prometheus refuses (bad PromQL, a query it cannot run) is a
:class:`PrometheusError` carrying Prometheus's own (redacted) message. An answer is never allowed to
load the bot: its body is read up to MAX_BODY_BYTES, a query matching more than MAX_SERIES_FETCHED
series is asked again for its highest ones only (`topk`), and what is kept is cut to a chart's worth.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.core.redact import redact
from bot.core.series import Series, highest, series_name
from bot.targets.http_service import HttpService

__all__ = ["Prometheus", "PrometheusError", "PrometheusUnreachable", "RangeAnswer", "range_step"]

MAX_BODY_BYTES = 8 * 1024 * 1024  # an answer larger than this is refused, not parsed
MAX_SERIES_FETCHED = 200  # a query matching more series is asked for its highest ones only
MAX_POINTS = 100_000  # what one answer may hold before it is cut down to the highest series
POINTS_PER_SERIES = 240  # the step is chosen so that a series has about this many points
_MAX_ERROR_TEXT = 500


class PrometheusError(Exception):
    """Prometheus refused the query; `text` is its own (redacted) explanation."""

    def __init__(self, status: int, text: str):
        super().__init__(text or f"Prometheus answered HTTP {status}")
        self.status = status
        self.text = text


class PrometheusUnreachable(ConnectionError):
    """The connection broke in a way aiohttp does not report as an OSError (e.g. server disconnected)."""


@dataclass
class RangeAnswer:
    """The series of a range query, at most `keep` of them (the highest), and how many more there were."""

    series: list[Series]
    more: int
    step: float


def range_step(seconds: float, points: int = POINTS_PER_SERIES) -> float:
    """A whole number of seconds between points that gives about `points` points over `seconds`."""
    return float(max(1, math.ceil(seconds / points)))


class Prometheus(HttpService):
    """A client for one Prometheus; every call is bounded by `timeout` seconds."""

    SERVICE = "Prometheus"

    # ------------------------------------------------------------------ API

    async def alerting_rules(self) -> list[dict[str, Any]]:
        """The alerting rules Prometheus has loaded (`/api/v1/rules`): each {"name", "labels", "group"}."""
        try:
            async with self._client().get(self.url + "/api/v1/rules", params={"type": "alert"}) as response:
                body = await response.content.read(MAX_BODY_BYTES + 1)
                status = response.status
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, OSError):
                raise
            raise PrometheusUnreachable(f"Prometheus connection failed: {type(error).__name__}") from None
        parsed = _json(body)
        if status >= 400 or parsed.get("status") != "success":
            raise PrometheusError(status, self._explain(parsed, body))
        groups = (parsed.get("data") or {}).get("groups") or []
        return [
            {"name": rule.get("name", ""), "labels": rule.get("labels") or {}, "group": group.get("name", "")}
            for group in groups
            for rule in group.get("rules", [])
            if rule.get("type") == "alerting"
        ]

    async def query_range(self, expr: str, start: float, end: float, *, keep: int = 8) -> RangeAnswer:
        """The `keep` highest series of `expr` from `start` to `end` (epoch seconds), about
        POINTS_PER_SERIES points each; `more` counts the series left out."""
        step = range_step(end - start)
        try:
            matched = await self.count(expr, end)
        except PrometheusError:  # a scalar, or bad PromQL: the range query says so in its own words
            matched = 0
        query = expr if matched <= MAX_SERIES_FETCHED else f"topk({keep}, {expr})"
        params = {"query": query, "start": _num(start), "end": _num(end), "step": _num(step)}
        data = await self._request("/api/v1/query_range", params)
        found = _matrix(data, MAX_POINTS)
        kept = highest(found, keep)
        return RangeAnswer(kept, max(matched, len(found)) - len(kept), step)

    async def count(self, expr: str, at: float | None = None) -> int:
        """How many series `expr` has at `at` (now): whether a range query may ask for all of them."""
        at = time.time() if at is None else at
        data = await self._request("/api/v1/query", {"query": f"count(({expr}))", "time": _num(at)})
        result = data.get("result") or []
        try:
            return int(float(result[0]["value"][1])) if result else 0
        except (KeyError, IndexError, TypeError, ValueError):
            return 0

    async def ready(self) -> bool:
        """Whether Prometheus says it is ready to serve queries; a cheap reachability probe."""
        async with self._client().get(self.url + "/-/ready") as response:
            return response.status == 200

    # ------------------------------------------------------------------ HTTP

    async def _request(self, path: str, params: dict[str, str]) -> dict:
        try:
            async with self._client().post(self.url + path, data=params) as response:
                body = await response.content.read(MAX_BODY_BYTES + 1)
                status = response.status
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, OSError):  # ClientConnectorError, ClientOSError: already "unreachable"
                raise
            raise PrometheusUnreachable(f"Prometheus connection failed: {type(error).__name__}") from None
        if len(body) > MAX_BODY_BYTES:
            raise PrometheusError(status, f"the answer is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        parsed = _json(body)
        if status >= 400 or parsed.get("status") != "success":
            raise PrometheusError(status, self._explain(parsed, body))
        data = parsed.get("data")
        return data if isinstance(data, dict) else {}

    def _explain(self, parsed: dict, body: bytes) -> str:
        """Prometheus's own error text ({"errorType", "error"}); never the credentials."""
        text = str(parsed.get("error") or body.decode(errors="replace")).strip()
        return redact(self._without_secrets(text))[:_MAX_ERROR_TEXT]


def _json(body: bytes) -> dict:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _matrix(data: dict, max_points: int) -> list[Series]:
    """The series of a matrix answer; once `max_points` are read, the rest is counted, not kept."""
    found: list[Series] = []
    points = 0
    for item in data.get("result") or []:
        if not isinstance(item, dict):
            continue
        values = item.get("values") or []
        if points + len(values) > max_points:
            found.append(Series(series_name(item.get("metric") or {}), []))
            continue
        parsed = [point for point in map(_point, values) if point is not None]
        points += len(parsed)
        found.append(Series(series_name(item.get("metric") or {}), parsed))
    return found


def _point(value: Any) -> tuple[float, float] | None:
    try:
        at, number = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (at, number) if math.isfinite(number) else None


def _num(value: float) -> str:
    return f"{value:.3f}"
