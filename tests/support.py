"""What many tests share: waiting for a condition that real services report, without sleeping as
a means of synchronisation. The condition is re-read until it holds or the deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
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


# a policy of three on-call people who may approve the database actions
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB, U0CAROL]
verbs:
  "*": [everyone]
actions:
  "db.*":
    approvers: [oncall]
"""


CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT")


def run_bot(*args: str, env: dict | None = None, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=timeout,
    )


async def run_bot_async(*args: str, env: dict | None = None, stdin: str = "", timeout: float = 60):
    """Like run_bot, without blocking the event loop that serves the in-process ERPGo simulator."""
    import asyncio

    base = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env=base | (env or {}),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
