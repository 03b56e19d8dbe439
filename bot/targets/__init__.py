"""Adapters for the ERPGo components the bot inspects. Each call has a timeout; none keeps state
beyond a reusable client."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from bot.core.parse import shown
from bot.core.registry import UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.targets.firewall import FirewallBackend


class NotConfigured(Exception):
    """The target's setting is absent; reported as "not configured", never as a failure."""

    def __init__(self, setting: str):
        super().__init__(f"not configured (set {setting})")
        self.setting = setting


class NotWatched(UsageError):
    """A container the bot does not watch: it reads only the deployment's own containers."""

    def __init__(self, name: str, watched: list[str]):
        super().__init__(f"{shown(name, 128)} is not a watched container; watched: {', '.join(watched)}")
        self.name = name
        self.watched = watched


class Targets:
    """The ERPGo deployment as configured: built once per process, closed on shutdown."""

    def __init__(self, settings: Settings):
        from bot.targets.api import ErpgoApi
        from bot.targets.docker import Docker
        from bot.targets.postgres import Postgres
        from bot.targets.redis import Redis

        timeout = settings.erpgo_check_timeout
        self.settings = settings
        self._api = ErpgoApi(settings.erpgo_api_url, timeout) if settings.erpgo_api_url else None
        dsn = settings.secret("erpgo_database_url")
        self._pg = Postgres(dsn, timeout) if dsn else None
        redis_url = settings.secret("erpgo_redis_url")
        self._redis = Redis(redis_url, timeout) if redis_url else None
        self.docker = Docker(settings.docker_host, timeout)
        self.containers = settings.erpgo_containers
        self._firewall: FirewallBackend | None = None

    async def watched_names(self) -> list[str]:
        """The watched containers: every container of ERPGO_COMPOSE_PROJECT (stopped ones included)
        when that is set and has any, otherwise ERPGO_CONTAINERS."""
        project = self.settings.erpgo_compose_project
        if project:
            found = await self.docker.containers_of_project(project)
            if found:
                return found
        return list(self.containers)

    async def watched(self, name: str) -> str:
        """`name` when it is one of the watched containers; NotWatched (a UsageError) otherwise."""
        names = await self.watched_names()
        if name not in names and name not in self.containers:
            raise NotWatched(name, names)
        return name

    @property
    def api(self):
        if self._api is None:
            raise NotConfigured("ERPGO_API_URL")
        return self._api

    @property
    def pg(self):
        if self._pg is None:
            raise NotConfigured("ERPGO_DATABASE_URL")
        return self._pg

    @property
    def redis(self):
        if self._redis is None:
            raise NotConfigured("ERPGO_REDIS_URL")
        return self._redis

    @property
    def firewall(self) -> FirewallBackend:
        """Where bans go (ERPGO_FIREWALL): nftables through ERPGO_FIREWALL_COMMAND, or a fail2ban jail."""
        if self._firewall is None:
            self._firewall = _firewall_of(self.settings)
        return self._firewall

    async def close(self) -> None:
        for target in (self._api, self._redis, self.docker):
            if target is not None:
                await target.close()


def _firewall_of(settings: Settings) -> FirewallBackend:
    from bot.targets.firewall import Fail2ban, Nftables

    timeout = settings.erpgo_check_timeout
    if settings.erpgo_firewall == "nftables":
        command = shlex.split(settings.erpgo_firewall_command)
        if not command:
            raise NotConfigured("ERPGO_FIREWALL_COMMAND")
        return Nftables(command, timeout=timeout)
    if settings.erpgo_firewall == "fail2ban":
        if not settings.erpgo_fail2ban_jail:
            raise NotConfigured("ERPGO_FAIL2BAN_JAIL")
        return Fail2ban(jail=settings.erpgo_fail2ban_jail, socket=settings.erpgo_fail2ban_socket, timeout=timeout)
    raise NotConfigured("ERPGO_FIREWALL")
