"""How the bot tells "that component is down" from "this is a bug", how it describes a failure in
one safe line, and the one retry backoff everything waits by."""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass

import aiohttp
import asyncpg

from bot.core.redact import redact

# Refused, reset, unresolvable, timed out, shutting down, out of connection slots: the component
# cannot be reached right now — a finding ("unreachable") or a retry, never a crash.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, socket.gaierror, aiohttp.ClientConnectorError, …
    asyncio.TimeoutError,
    aiohttp.ClientConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
)


class NotConfigured(Exception):
    """The target's setting is absent; reported as "not configured", never as a failure."""

    def __init__(self, setting: str):
        super().__init__(f"not configured (set {setting})")
        self.setting = setting


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """UNREACHABLE and, once redis-py is loaded, its ConnectionError and TimeoutError (neither an OSError).
    redis-py is loaded only with a Redis target (ERPGO_REDIS_URL): before, none of its errors can be raised."""
    errors = sys.modules.get("redis.exceptions")
    return UNREACHABLE if errors is None else (*UNREACHABLE, errors.ConnectionError, errors.TimeoutError)


def is_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, unreachable_errors())


def describe_error(exc: BaseException) -> str:
    """A one-line, redacted description of why something failed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)[:300]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: after the n-th consecutive failure, a wait drawn uniformly
    from [0, min(cap, first·2ⁿ)], so replicas that failed together do not retry together."""

    first: float = 0.5
    cap: float = 30.0

    def ceiling(self, failures: int) -> float:
        """The longest wait after `failures` consecutive failures (0 → first)."""
        return min(self.cap, self.first * 2 ** min(max(failures, 0), 30))

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures: anywhere from 0 to `ceiling(failures)`."""
        return random.uniform(0.0, self.ceiling(failures))
