"""The containers the bot watches — every container of ERPGO_COMPOSE_PROJECT when that is set (stopped
ones included), otherwise ERPGO_CONTAINERS — and a read shared by the checks of one report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.core.engine import CheckContext
from runbooks.application import api_container

T = TypeVar("T")


async def watched_containers(ctx: CheckContext) -> list[str]:
    project = ctx.settings.erpgo_compose_project
    if project:
        found = await ctx.targets.docker.containers_of_project(project)
        if found:
            return found
    return list(ctx.targets.containers)


def watched_projects(ctx: CheckContext) -> list[str]:
    project = ctx.settings.erpgo_compose_project
    return [project] if project else []


async def watched_api(ctx: CheckContext) -> tuple[str, list[str]]:
    """(the API container, every watched container)."""
    names = await watched_containers(ctx)
    return api_container(names), names


async def protected_containers(ctx: CheckContext) -> list[str]:
    """Names no destructive step may remove: the watched containers and every name in ERPGO_CONTAINERS."""
    return sorted({*await watched_containers(ctx), *ctx.targets.containers})


async def once_per_report(ctx: CheckContext, key: str, read: Callable[[], Awaitable[T]]) -> T:
    """`read()` run once for all the checks of one report that need it (they run concurrently); a
    check that times out does not cancel it for the others."""
    task = ctx.params.get(key)
    if task is None:
        task = asyncio.ensure_future(read())
        task.add_done_callback(_retrieve)  # every check may have timed out by the time it fails
        ctx.params[key] = task
    result: T = await asyncio.shield(task)
    return result


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
