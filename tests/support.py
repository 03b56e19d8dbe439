"""What many tests share: waiting for a condition that real services report, without sleeping as
a means of synchronisation. The condition is re-read until it holds or the deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], Awaitable[T] | T], timeout: float = 10.0, what: str = "condition", every: float = 0.05
) -> T:
    """The first truthy value of `condition()` (sync or async); AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s (last: {result!r})")
        await asyncio.sleep(every)


def eventually_sync(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """`eventually` for code outside the event loop (fixtures driving namespaces and processes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(0.05)
