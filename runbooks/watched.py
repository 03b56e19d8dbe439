"""The containers the bot watches — every container of ERPGO_COMPOSE_PROJECT when that is set (stopped
ones included), otherwise ERPGO_CONTAINERS — and a read shared by the checks of one report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.core.engine import CheckContext
from bot.targets import RoleNotFound

T = TypeVar("T")


async def watched_containers(ctx: CheckContext) -> list[str]:
    """Targets.watched(): the compose project's containers now, else ERPGO_CONTAINERS."""
    return (await ctx.targets.watched()).names or list(ctx.targets.containers)


def watched_projects(ctx: CheckContext) -> list[str]:
    project = ctx.settings.erpgo_compose_project
    return [project] if project else []


async def watched_api(ctx: CheckContext) -> tuple[str, list[str]]:
    """(the API container — by compose service, else by name —, every watched container)."""
    watched = await ctx.targets.watched()
    api = watched.of_role("api")
    if api is None:
        raise RoleNotFound("api", watched)
    return api, watched.names


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
