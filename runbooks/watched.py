"""The containers the bot watches — every container of ERPGO_COMPOSE_PROJECT when that is set (stopped
ones included), otherwise ERPGO_CONTAINERS — and the argument of the verbs that read one of them."""

from __future__ import annotations

from bot.context import CheckContext
from bot.core.registry import ContainerArgs
from bot.targets import RoleNotFound

__all__ = ["ContainerArgs", "protected_containers", "watched_api", "watched_containers", "watched_projects"]


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
