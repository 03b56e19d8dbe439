"""Which containers the bot watches, and which of them runs the API, the database and the cache.

Two ways to say it (bot/settings.py): `ERPGO_CONTAINERS`, a list of names, or `ERPGO_COMPOSE_PROJECT`,
every container Docker Compose labelled with that project. In a compose project a container's role is
its compose service (`api`, `postgres`, `redis` in ERPGo's docker-compose.yml); a listed name has its
role by name (`erpgo-api`, `api`, `erpgo_api_1`, `erpgo-api-1`…). Resolved afresh for every report:
compose containers come and go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Role = Literal["api", "postgres", "redis"]
ROLES: tuple[Role, ...] = ("api", "postgres", "redis")
# what a compose service or a container name that runs the role is called
ROLE_NAMES: dict[Role, tuple[str, ...]] = {
    "api": ("api", "erpgo-api"),
    "postgres": ("postgres", "postgresql", "db", "database"),
    "redis": ("redis", "cache"),
}
ROLE_TITLES: dict[Role, str] = {"api": "the API", "postgres": "the database", "redis": "the cache"}


@dataclass(frozen=True)
class WatchedContainer:
    name: str
    service: str | None = None  # its compose service; None for a container listed by name


@dataclass(frozen=True)
class Watched:
    """The watched containers of one report."""

    containers: tuple[WatchedContainer, ...]
    project: str | None  # the compose project they were found by; None when ERPGO_CONTAINERS lists them

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.containers]

    @property
    def source(self) -> str:
        """Where the list came from, for messages: 'compose project erpgo' or 'ERPGO_CONTAINERS'."""
        return f"compose project {self.project}" if self.project else "ERPGO_CONTAINERS"

    def service_of(self, name: str) -> str | None:
        return next((c.service for c in self.containers if c.name == name), None)

    def of_role(self, role: Role) -> str | None:
        """The container that runs `role`: by compose service first, then by name; for the API, when
        a plain list names none, its first container (the convention of ERPGO_CONTAINERS)."""
        aliases = ROLE_NAMES[role]
        by_service = [c.name for c in self.containers if c.service and c.service.lower() in aliases]
        if by_service:
            return by_service[0]
        for matches in (_exactly, _by_suffix):
            found = [c.name for c in self.containers if matches(c.name.lower(), aliases)]
            if found:
                return found[0]
        if role == "api" and not self.project and self.containers:
            return self.containers[0].name
        return None


def _exactly(name: str, aliases: tuple[str, ...]) -> bool:
    return name in aliases or any(name == f"erpgo-{alias}" or name == f"erpgo_{alias}" for alias in aliases)


def _by_suffix(name: str, aliases: tuple[str, ...]) -> bool:
    """`myshop-api`, `erpgo_api_1`, `erpgo-postgres-1`: the role is the last word, before a replica number."""
    return any(re.search(rf"(^|[-_.]){re.escape(alias)}([-_.]\d+)?$", name) for alias in aliases)
