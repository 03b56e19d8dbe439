"""Adapters for the ERPGo components the bot inspects. Each call has a timeout; none keeps state
beyond a reusable client, except the Docker stats sampler (the newest sample of each watched container)."""

from __future__ import annotations

import asyncio
import shlex
from typing import TYPE_CHECKING

from bot.core.errors import NotConfigured
from bot.core.parse import shown
from bot.core.registry import UsageError
from bot.settings import ConfigError, Settings

__all__ = ["NotConfigured", "NotWatched", "RoleNotFound", "Targets"]

if TYPE_CHECKING:
    from bot.targets.alertmanager import Alertmanager
    from bot.targets.api import ErpgoApi
    from bot.targets.docker_stats import StatsSample
    from bot.targets.firewall import FirewallBackend
    from bot.targets.postgres import Postgres
    from bot.targets.prometheus import Prometheus
    from bot.targets.redis import Redis
    from bot.targets.watched import Role, Watched


class NotWatched(UsageError):
    """A container the bot does not watch: it reads only the deployment's own containers."""

    def __init__(self, name: str, watched: list[str]):
        super().__init__(f"{shown(name, 128)} is not a watched container; watched: {', '.join(watched)}")
        self.name = name
        self.watched = watched


class RoleNotFound(NotConfigured):
    """No watched container runs the API (or the database, the cache): reported as not configured."""

    def __init__(self, role: Role, watched: Watched):
        from bot.targets.watched import ROLE_NAMES

        if watched.project:
            where = f"compose project {watched.project} has no service {role}"
        else:
            where = f"ERPGO_CONTAINERS names none called {' or '.join(ROLE_NAMES[role][:2])}"
        Exception.__init__(self, f"no watched container runs {role} ({where})")
        self.setting = "ERPGO_COMPOSE_PROJECT" if watched.project else "ERPGO_CONTAINERS"
        self.role = role


class Targets:
    """The ERPGo deployment as configured: built once per process, closed on shutdown."""

    def __init__(self, settings: Settings):
        from bot.targets.alertmanager import Alertmanager
        from bot.targets.api import ErpgoApi
        from bot.targets.docker import Docker
        from bot.targets.docker_stats import StatsSampler
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
        self._alertmanager = None
        if settings.alertmanager_url:
            try:
                self._alertmanager = Alertmanager(
                    settings.alertmanager_url,
                    username=settings.alertmanager_username,
                    password=settings.secret("alertmanager_password"),
                    bearer_token=settings.secret("alertmanager_bearer_token"),
                    timeout=timeout,
                )
            except ValueError as exc:  # both kinds of auth, or a password without a user
                raise ConfigError(f"configuration error: {exc}") from None
        self._prometheus = _prometheus_of(settings)
        self.containers = settings.erpgo_containers
        self.stats = StatsSampler(self.docker)  # follows self.containers once start_sampling() ran
        self._firewall: FirewallBackend | None = None
        self._sampling = False

    @property
    def api(self) -> ErpgoApi:
        if self._api is None:
            raise NotConfigured("ERPGO_API_URL")
        return self._api

    @property
    def pg(self) -> Postgres:
        if self._pg is None:
            raise NotConfigured("ERPGO_DATABASE_URL")
        return self._pg

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise NotConfigured("ERPGO_REDIS_URL")
        return self._redis

    async def watched(self) -> Watched:
        """The watched containers now: every container of ERPGO_COMPOSE_PROJECT (asked of the engine,
        under the check timeout; `docker compose run` leftovers excluded), else ERPGO_CONTAINERS."""
        from bot.targets.watched import Watched, WatchedContainer

        project = self.settings.erpgo_compose_project
        if not project:
            return Watched(tuple(WatchedContainer(name) for name in self.containers), None)
        async with asyncio.timeout(self.settings.erpgo_check_timeout):
            listed = await self.docker.project_containers(project)
        watched = Watched(tuple(WatchedContainer(c.name, c.service) for c in listed if not c.one_off), project)
        if self._sampling:  # the project's containers come and go: sample the ones there are now
            self.stats.update(list(watched.names))
        return watched

    async def container_of(self, role: Role) -> str:
        """The name of the watched container that runs `role` (api, postgres, redis); RoleNotFound
        (a NotConfigured) when none does."""
        watched = await self.watched()
        name = watched.of_role(role)
        if name is None:
            raise RoleNotFound(role, watched)
        return name

    async def ensure_watched(self, name: str) -> str:
        """`name` when it is one of the watched containers; NotWatched (a UsageError) otherwise."""
        watched = await self.watched()
        if name not in watched.names and name not in self.containers:
            raise NotWatched(name, list(watched.names) or list(self.containers))
        return name

    @property
    def alertmanager(self) -> Alertmanager:
        """Alertmanager's API (silences from alert threads)."""
        if self._alertmanager is None:
            raise NotConfigured("ALERTMANAGER_URL")
        return self._alertmanager

    @property
    def prometheus(self) -> Prometheus:
        """Prometheus's query API (charts of alerts, `graph`, trends)."""
        if self._prometheus is None:
            raise NotConfigured("PROMETHEUS_URL")
        return self._prometheus

    @property
    def firewall(self) -> FirewallBackend:
        """Where bans go (ERPGO_FIREWALL): nftables through ERPGO_FIREWALL_COMMAND, or a fail2ban jail."""
        if self._firewall is None:
            self._firewall = _firewall_of(self.settings)
        return self._firewall

    def start_sampling(self) -> bool:
        """Keep the watched containers' Docker stats sampled in the background (one stream each), so
        that no report waits for the engine's 1-second tick. False when Docker is not configured."""
        try:
            self.docker.client()
        except NotConfigured:
            return False
        except ConnectionError:
            pass  # the socket is not there yet: the streams retry with a growing pause
        self.stats.start(self.containers)
        self._sampling = True
        return True

    async def container_stats(self, name: str) -> StatsSample:
        """The newest background sample of a container when it is fresh and has a CPU %, else a reading now
        (up to a second with an earlier sample to compare with, about two without)."""
        sample = self.stats.latest(name)
        if sample is None or sample.cpu_percent is None:  # not sampled yet, or only its first reading
            sample = await self.stats.one_shot(name)
        return sample

    async def close(self) -> None:
        await self.stats.close()
        for target in (self._api, self._redis, self.docker, self._alertmanager, self._prometheus):
            if target is not None:
                await target.close()


def _prometheus_of(settings: Settings) -> Prometheus | None:
    from bot.targets.prometheus import Prometheus

    if not settings.prometheus_url:
        return None
    try:
        return Prometheus(
            settings.prometheus_url,
            username=settings.prometheus_username,
            password=settings.secret("prometheus_password"),
            bearer_token=settings.secret("prometheus_bearer_token"),
            timeout=settings.erpgo_check_timeout,
        )
    except ValueError as exc:  # both kinds of auth, or a password without a user
        raise ConfigError(f"configuration error: {exc}") from None


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
