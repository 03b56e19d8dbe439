"""What the Docker Engine's answers mean, as plain data: inspect (state, env NAMES, ports, limits,
compose labels), host info, disk usage and prune previews, networks — parsed without any I/O."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"  # "True" on the containers of `docker compose run`
RESTART_EVENTS = ("die", "start")
ACTIVE_STATES = ("running", "paused", "restarting")  # what a container prune leaves alone
EnvPresence = Literal["set", "empty"]


def parse_time(value: str | None) -> datetime | None:
    """The engine's RFC 3339 times; its zero time '0001-01-01…' means never."""
    if not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- what inspect returns ---------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, paused, restarting, removing, exited, dead
    running: bool
    exit_code: int
    oom_killed: bool
    error: str  # e.g. "… port is already allocated" when the last start failed
    started_at: datetime | None
    finished_at: datetime | None
    restart_count: int
    health: str | None  # starting, healthy, unhealthy; None without a health check
    health_failing_streak: int

    @property
    def up(self) -> bool:
        """Running for real: the engine also says Running for a container its restart policy is restarting
        (status "restarting"), which has no memory to measure and whose `docker top` answers 409."""
        return self.running and self.status != "restarting"


@dataclass(frozen=True)
class PortBinding:
    container_port: str  # "8080"
    protocol: str  # "tcp"
    host_ip: str  # "" means every address
    host_port: str  # may be "" (a random port) or a range "8000-8010"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    image_id: str
    created: datetime | None
    state: ContainerState
    restart_policy: str  # "", no, always, unless-stopped, on-failure
    restart_max_retries: int
    env: dict[str, EnvPresence]  # names only, never values
    ports: list[PortBinding]
    labels: dict[str, str]
    networks: list[str]
    memory_limit: int  # bytes; 0 means no limit
    nano_cpus: int
    cpu_quota: int
    cpu_period: int
    log_path: str  # the json-file log on the engine's host ("" for other log drivers)

    @property
    def project(self) -> str | None:
        return self.labels.get(COMPOSE_PROJECT)

    @property
    def service(self) -> str | None:
        return self.labels.get(COMPOSE_SERVICE)

    @property
    def cpu_limit(self) -> float | None:
        """CPUs the container may use (`--cpus` or quota/period); None when unlimited."""
        if self.nano_cpus:
            return self.nano_cpus / 1e9
        if self.cpu_quota > 0 and self.cpu_period > 0:
            return self.cpu_quota / self.cpu_period
        return None


@dataclass(frozen=True)
class ListedContainer:
    """One row of `docker ps -a`: what the list call says, without an inspect per container."""

    id: str
    name: str
    service: str | None  # the compose service label
    project: str | None
    state: str  # running, exited, …
    one_off: bool  # started by `docker compose run`, not by `up`


def listed_container(row: Mapping[str, Any]) -> ListedContainer:
    labels = row.get("Labels") or {}
    return ListedContainer(
        id=row.get("Id", ""),
        name=(row.get("Names") or ["/" + row.get("Id", "")[:12]])[0].lstrip("/"),
        service=labels.get(COMPOSE_SERVICE) or None,
        project=labels.get(COMPOSE_PROJECT) or None,
        state=row.get("State", ""),
        one_off=str(labels.get(COMPOSE_ONEOFF, "")).lower() == "true",
    )


def env_names(inspect: Mapping[str, Any]) -> dict[str, EnvPresence]:
    """Which environment variables a container has, and whether each is empty — never the values."""
    names: dict[str, EnvPresence] = {}
    for entry in (inspect.get("Config") or {}).get("Env") or []:
        name, _, value = entry.partition("=")
        names[name] = "set" if value else "empty"
    return names


def _state(raw: Mapping[str, Any], restart_count: int) -> ContainerState:
    health = raw.get("Health") or {}
    return ContainerState(
        status=raw.get("Status", ""),
        running=bool(raw.get("Running")),
        exit_code=int(raw.get("ExitCode") or 0),
        oom_killed=bool(raw.get("OOMKilled")),
        error=raw.get("Error") or "",
        started_at=parse_time(raw.get("StartedAt")),
        finished_at=parse_time(raw.get("FinishedAt")),
        restart_count=restart_count,
        health=health.get("Status") or None,
        health_failing_streak=int(health.get("FailingStreak") or 0),
    )


def _port_bindings(host_config: Mapping[str, Any]) -> list[PortBinding]:
    bindings = []
    for port_proto, hosts in sorted((host_config.get("PortBindings") or {}).items()):
        port, _, proto = port_proto.partition("/")
        for host in hosts or []:
            bindings.append(PortBinding(port, proto or "tcp", host.get("HostIp") or "", host.get("HostPort") or ""))
    return bindings


def container_info(inspect: Mapping[str, Any]) -> ContainerInfo:
    """The parts of `docker inspect` the checks use (environment reduced to names)."""
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    policy = host.get("RestartPolicy") or {}
    return ContainerInfo(
        id=inspect["Id"],
        name=inspect.get("Name", "").lstrip("/"),
        image=config.get("Image", ""),
        image_id=inspect.get("Image", ""),
        created=parse_time(inspect.get("Created")),
        state=_state(inspect.get("State") or {}, int(inspect.get("RestartCount") or 0)),
        restart_policy=policy.get("Name") or "",
        restart_max_retries=int(policy.get("MaximumRetryCount") or 0),
        env=env_names(inspect),
        ports=_port_bindings(host),
        labels=dict(config.get("Labels") or {}),
        networks=sorted(endpoints_of(inspect)),
        memory_limit=int(host.get("Memory") or 0),
        nano_cpus=int(host.get("NanoCpus") or 0),
        cpu_quota=int(host.get("CpuQuota") or 0),
        cpu_period=int(host.get("CpuPeriod") or 0),
        log_path=inspect.get("LogPath") or "",
    )


def log_size(info: ContainerInfo) -> int | None:
    """Bytes of the container's log file, when the bot runs on the engine's host and may read it."""
    if not info.log_path:
        return None
    try:
        return os.stat(info.log_path).st_size
    except OSError:
        return None


def _host_ports(spec: str) -> set[int]:
    low, _, high = spec.partition("-")
    try:
        return set(range(int(low), int(high or low) + 1))
    except ValueError:
        return set()


def _same_address(a: str, b: str) -> bool:
    wildcard = ("", "0.0.0.0", "::")
    return a == b or a in wildcard or b in wildcard


def port_conflicts(containers: Iterable[ContainerInfo]) -> list[str]:
    """Host ports that more than one container publishes on overlapping addresses."""
    published = [
        (info.name, binding, port)
        for info in containers
        for binding in info.ports
        for port in _host_ports(binding.host_port)
    ]
    clashes: dict[tuple[int, str], set[str]] = {}
    for i, (name_a, a, port) in enumerate(published):
        for name_b, b, other in published[i + 1 :]:
            if name_a != name_b and port == other and a.protocol == b.protocol and _same_address(a.host_ip, b.host_ip):
                clashes.setdefault((port, a.protocol), set()).update((name_a, name_b))
    return [
        f"host port {port}/{proto} is published by {', '.join(sorted(names))}"
        for (port, proto), names in sorted(clashes.items())
    ]


# --- other results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HostInfo:
    mem_total: int
    ncpu: int
    server_version: str
    operating_system: str
    kernel_version: str
    cgroup_version: str
    containers_running: int
    containers_stopped: int
    warnings: list[str]


@dataclass(frozen=True)
class DiskCategory:
    kind: str  # images, containers, volumes, build cache
    count: int
    active: int
    size: int
    reclaimable: int


@dataclass(frozen=True)
class Attachment:
    container: str
    aliases: list[str]
    ipv4: str  # "198.18.0.2", "" when none


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    id: str
    driver: str
    internal: bool
    subnets: list[str]
    containers: list[Attachment]


def endpoints_of(inspect: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict((inspect.get("NetworkSettings") or {}).get("Networks") or {})


def _is_dangling(image: Mapping[str, Any]) -> bool:
    tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
    return not tags


def disk_categories(df: Mapping[str, Any]) -> list[DiskCategory]:
    images = df.get("Images") or []
    used_images = [i for i in images if int(i.get("Containers") or 0) > 0]
    layers = int(df.get("LayersSize") or 0)
    in_use = sum(max(0, int(i.get("Size") or 0) - max(0, int(i.get("SharedSize") or 0))) for i in used_images)
    containers = df.get("Containers") or []
    running = [c for c in containers if c.get("State") in ACTIVE_STATES]
    volumes = df.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    caches = df.get("BuildCache") or []
    return [
        DiskCategory("images", len(images), len(used_images), layers, max(0, layers - in_use)),
        DiskCategory(
            "containers",
            len(containers),
            len(running),
            sum(int(c.get("SizeRw") or 0) for c in containers),
            sum(int(c.get("SizeRw") or 0) for c in containers if c.get("State") not in ACTIVE_STATES),
        ),
        DiskCategory(
            "volumes",
            len(volumes),
            sum(1 for u in usage if int(u.get("RefCount") or 0) > 0),
            sum(max(0, int(u.get("Size") or 0)) for u in usage),
            sum(max(0, int(u.get("Size") or 0)) for u in usage if int(u.get("RefCount") or 0) == 0),
        ),
        DiskCategory(
            "build cache",
            len(caches),
            sum(1 for c in caches if c.get("InUse")),
            sum(int(c.get("Size") or 0) for c in caches),
            sum(int(c.get("Size") or 0) for c in caches if not c.get("InUse") and not c.get("Shared")),
        ),
    ]


def restarts_from_events(events: Iterable[Mapping[str, Any]]) -> int:
    """Each restart — by the restart policy or by `docker restart` — is a die followed by a start."""
    count, died = 0, False
    for event in sorted(events, key=lambda e: int(e.get("timeNano") or 0)):
        action = event.get("Action") or event.get("status")
        if action == "die":
            died = True
        elif action == "start" and died:
            count, died = count + 1, False
    return count
