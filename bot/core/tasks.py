"""Background work started by a request (the report after the ack), tracked so that nothing is
dropped on shutdown and the shell can wait for a command to finish."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress

from bot.core.logs import log

PEOPLE_FIRST_S = 0.25  # how long a person's request goes before new alert notifications
_FOR_A_PERSON: contextvars.ContextVar[bool] = contextvars.ContextVar("for_a_person", default=False)


class PeopleFirst:
    """A person's request — a command, a click, and the work it starts, up to the report in Slack —
    goes before the alert intake for its first PEOPLE_FIRST_S: a webhook that arrives meanwhile waits
    (`after_people`) instead of sharing the process's one event loop and the database with it. During a
    storm this keeps `/erpgo health` as quick as on a quiet bot; Alertmanager's answer waits at most
    PEOPLE_FIRST_S, and a long command (a restore) holds nothing after that."""

    def __init__(self, first_for: float = PEOPLE_FIRST_S):
        self.first_for = first_for
        self._until: dict[object, float] = {}  # each request being served -> when its precedence ends
        self._none = asyncio.Event()
        self._none.set()

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Around the handling of a person's request; tasks it spawns (TaskTracker) count too."""
        token = self.begin()
        marked = _FOR_A_PERSON.set(True)
        try:
            yield
        finally:
            _FOR_A_PERSON.reset(marked)
            self.end(token)

    def begin(self) -> object:
        token = object()
        self._until[token] = time.monotonic() + self.first_for
        self._none.clear()
        return token

    def end(self, token: object) -> None:
        self._until.pop(token, None)
        if not self._until:
            self._none.set()

    async def after_people(self) -> None:
        """Return once no person's request has precedence (at once, almost always)."""
        if not self._until:
            return
        now = time.monotonic()
        for token in [t for t, until in self._until.items() if until <= now]:
            self.end(token)
        if self._until:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._none.wait(), max(self._until.values()) - now)


class TaskTracker:
    def __init__(self) -> None:
        self.people = PeopleFirst()
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def spawn(self, coro: Coroutine, name: str = "") -> asyncio.Task:
        task = asyncio.create_task(coro, name=name or None)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)
        if _FOR_A_PERSON.get():  # started by a person's request: it goes first as that request did
            token = self.people.begin()
            task.add_done_callback(lambda _task: self.people.end(token))
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
