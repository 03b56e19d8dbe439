"""Background work started by a request (the report after the ack), tracked so that nothing is
dropped on shutdown and the shell can wait for a command to finish."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine

from bot.core.logs import log


class TaskTracker:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def spawn(self, coro: Coroutine, name: str = "") -> asyncio.Task:
        task = asyncio.create_task(coro, name=name or None)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", task=task.get_name(), error=repr(task.exception()))
        if not self._tasks:
            self._idle.set()

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until every spawned task (and any they spawned) has finished."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def running(self, name: str) -> bool:
        """Whether a task of that name is still running."""
        return any(task.get_name() == name for task in self._tasks)

    async def cancel_all(self, timeout: float) -> list[str]:
        """Cancel what is still running, give each up to `timeout` s to record that it was
        interrupted, and return the names of the tasks cancelled."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return sorted(task.get_name() for task in tasks)
