"""What a check or a remediation is given: the targets and settings, the verb's parsed arguments,
who acted, the alert being triaged, and — for a remediation running under an approval — the
approval's hooks. Typed fields, no bag of keys: a check reads `ctx.arg(LogsArgs).minutes`,
`ctx.actor.requester` or `ctx.alert.labels`.

Built by the doors (the /erpgo router, alert triage, the approval engine, `erpgo-bot check`), never
by a runbook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bot.core.registry import NO_ARGS, Args
from bot.settings import Settings
from bot.targets import Targets

A = TypeVar("A", bound=Args)
T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who asked, and for a remediation who approved it under which approval."""

    requester: str = ""
    approver: str = ""
    approval_id: int | None = None
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertScope:
    """The alert group being triaged: its alert names, its common labels and when it started."""

    names: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None


@dataclass(frozen=True)
class ApprovalHooks:
    """What a long remediation (a restore) may ask of the approval engine while it runs."""

    # async (step, state): its progress, stored in the approval's row
    record: Callable[[str, dict[str, Any]], Awaitable[None]]
    # async (approval id) -> the approval if it stopped mid-way and nobody runs it, else None
    interrupted: Callable[[int], Awaitable[Any]]
    # async (approval id, result) settles such an approval, naming this one as who settled it
    settle_interrupted: Callable[..., Awaitable[Any]]


@dataclass
class CheckContext:
    targets: Targets
    settings: Settings
    args: Args = NO_ARGS
    actor: Actor = Actor()
    alert: AlertScope | None = None
    approval: ApprovalHooks | None = None
    _shared: dict[str, asyncio.Future[Any]] = field(default_factory=dict, repr=False)

    @property
    def check_timeout(self) -> float:
        return self.settings.erpgo_check_timeout

    def arg(self, kind: type[A]) -> A:
        """The verb's arguments when they are a `kind` (or a subclass); otherwise `kind`'s defaults —
        a check shared by several verbs, or run by triage, reads what applies to it."""
        return self.args if isinstance(self.args, kind) else kind()

    async def shared(self, key: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()` run once for all the checks of one report that need it (they run concurrently);
        a check that times out does not cancel it for the others."""
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            task.add_done_callback(_retrieve)  # every check may have timed out by the time it fails
            self._shared[key] = task
        result: T = await asyncio.shield(task)
        return result


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
