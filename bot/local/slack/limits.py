"""Faults and limits the local Slack can impose: injected 429s and 5xx, outages, slowness, and a
per-channel rate limit the way Slack documents it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from bot.local.slack.protocol import SERVER_ERRORS, ApiError


@dataclass(frozen=True)
class RateLimit:
    """Slack's per-channel limit on posting, as a token bucket per channel.

    Each channel's bucket holds at most `burst` tokens and gains `per_second` tokens a second
    (continuously); every call of one of `methods` to that channel takes a token, and a call that
    finds less than one token is answered HTTP 429 ``{"ok": false, "error": "ratelimited"}`` with
    ``Retry-After`` = the whole seconds until a token is back (at least 1). A refused call takes
    nothing. Slack documents "1 per second, short bursts >1 allowed" but not the burst size; 5 is
    this fake's choice, configurable.
    """

    per_second: float = 1.0
    burst: int = 5
    methods: frozenset[str] = frozenset({"chat.postMessage"})


@dataclass
class _Bucket:
    tokens: float
    updated: float  # time.monotonic() of the last refill


@dataclass
class _Fault:
    method: str | None
    status: int
    retry_after: int | None
    times: int


class Faults:
    """Fault injection and the rate limit; mixed into LocalSlack."""

    rate_limit: RateLimit | None
    ratelimited: int
    _buckets: dict[str, _Bucket]
    _faults: list[_Fault]
    _outage_status: int | None
    _delays: dict[str | None, float]

    def _init_faults(self, rate_limit: RateLimit | None) -> None:
        # Per-channel posting limit (None = unlimited) and how many HTTP 429s were answered, for any reason.
        self.rate_limit = rate_limit
        self.ratelimited = 0
        self._buckets = {}
        self._faults = []
        self._outage_status = None
        self._delays = {}

    def fail(self, method: str | None = None, status: int = 429, retry_after: int | None = 1, times: int = 1) -> None:
        """Make the next `times` calls of `method` (None = any) fail with `status`."""
        self._faults.append(_Fault(method, status, retry_after, times))

    def outage(self, status: int = 500) -> None:
        """Fail every call with `status` until recover()."""
        self._outage_status = status

    def recover(self) -> None:
        """End an outage, drop pending failures and delays."""
        self._outage_status = None
        self._faults.clear()
        self._delays.clear()

    def delay(self, seconds: float, method: str | None = None) -> None:
        """Answer every call of `method` (None = any) `seconds` late; delay(0) undoes it."""
        self._delays[method] = seconds

    def limit_rate(self, limit: RateLimit | None = RateLimit()) -> None:
        """Enforce `limit` from now on with full buckets; limit_rate(None) turns limiting off."""
        self.rate_limit = limit
        self._buckets.clear()

    def _delay_of(self, method: str) -> float:
        return self._delays.get(method, self._delays.get(None, 0))

    def _take_token(self, method: str, args: dict) -> None:
        """Spend one of the channel's tokens on this call, or refuse it with 429 and Retry-After."""
        limit = self.rate_limit
        if limit is None or method not in limit.methods:
            return
        channel = str(args.get("channel") or args.get("channel_id") or "")
        now = time.monotonic()
        bucket = self._buckets.setdefault(channel, _Bucket(float(limit.burst), now))
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))
        raise ApiError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    def _take_fault(self, method: str) -> tuple[int, dict, dict] | None:
        if self._outage_status is not None:
            return self._fault_answer(self._outage_status, None)
        for fault in self._faults:
            if fault.method in (None, method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return self._fault_answer(fault.status, fault.retry_after)
        return None

    @staticmethod
    def _fault_answer(status: int, retry_after: int | None) -> tuple[int, dict, dict]:
        if status == 429:
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return status, {"ok": False, "error": "ratelimited"}, headers
        return status, {"ok": False, "error": SERVER_ERRORS.get(status, "fatal_error")}, {}
