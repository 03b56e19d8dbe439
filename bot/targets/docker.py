"""The Docker Engine API via aiodocker: containers, events, exec, disk usage and prune, networks.

Every call runs under a timeout. An engine that cannot be reached raises `DockerUnreachable` (a
ConnectionError), a container that does not exist raises `ContainerNotFound`. Environment values
never leave this module except through `read_env_value`, whose callers keep them in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from bot.targets import NotConfigured

DEFAULT_SOCKET = "/var/run/docker.sock"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
MAX_EVENTS = 2000
MAX_EXEC_OUTPUT = 64 * 1024
TOOL_PROBE_SECONDS = 5.0
NOT_EXECUTABLE = (126, 127)  # the exit codes of "not found" / "cannot execute"
TOP_PS_ARGS = "-o pid,user,pcpu,pmem,rss,etime,args"
RESTART_EVENTS = ("die", "start")
ACTIVE_STATES = ("running", "paused", "restarting")  # what a container prune leaves alone
UNREACHABLE_STATUS = 900  # aiodocker's status for a connection that failed

EnvPresence = Literal["set", "empty"]
Filters = Mapping[str, str | Sequence[str]]


class DockerSocketMissing(ConnectionError):
    pass


class DockerUnreachable(ConnectionError):
    """The engine did not answer (socket refused, daemon down)."""


class ContainerNotFound(LookupError):
    def __init__(self, name: str):
        super().__init__(f"container not found: {name}")
        self.name = name


def _translated(exc: DockerError, container: str | None) -> Exception:
    if exc.status == UNREACHABLE_STATUS:
        return DockerUnreachable(exc.message)
    if exc.status == 404 and container is not None and "container" in exc.message.lower():
        return ContainerNotFound(container)
    return exc


def parse_time(value: str | None) -> datetime | None:
    """The engine's RFC 3339 times; its zero time '0001-01-01…' means never."""
    if not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _engine_timestamp(moment: datetime) -> str:
    """Seconds.nanoseconds since the epoch, the form the events API takes exactly."""
    nanos = int(moment.timestamp() * 1_000_000) * 1000
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def _filters_param(filters: Filters) -> str:
    return json.dumps({key: [value] if isinstance(value, str) else list(value) for key, value in filters.items()})


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
        networks=sorted(_endpoints(inspect)),
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
class PruneItem:
    kind: str  # container, image, build cache
    name: str
    size: int


@dataclass
class PruneResult:
    dry_run: bool
    items: list[PruneItem] = field(default_factory=list)
    bytes_reclaimable: int = 0  # what the preview expects
    bytes_reclaimed: int = 0  # what the engine reported (0 on a dry run)


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


def _endpoints(inspect: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict((inspect.get("NetworkSettings") or {}).get("Networks") or {})


def _is_dangling(image: Mapping[str, Any]) -> bool:
    tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
    return not tags


def _preview_prune(df: Mapping[str, Any]) -> PruneResult:
    """What prune would remove, from `docker system df`: stopped containers, then the dangling
    images nothing else uses, then unused build cache. Volumes are never part of it."""
    result = PruneResult(dry_run=True)
    containers = df.get("Containers") or []
    for c in containers:
        if c.get("State") not in ACTIVE_STATES:
            name = (c.get("Names") or [c.get("Id", "")[:12]])[0].lstrip("/")
            result.items.append(PruneItem("container", name, int(c.get("SizeRw") or 0)))
    kept_images = {c.get("ImageID") for c in containers if c.get("State") in ACTIVE_STATES}
    images = df.get("Images") or []
    parents = {image.get("ParentId") for image in images}
    for image in images:
        if _is_dangling(image) and image["Id"] not in kept_images and image["Id"] not in parents:
            unique = int(image.get("Size") or 0) - max(0, int(image.get("SharedSize") or 0))
            result.items.append(PruneItem("image", image["Id"].removeprefix("sha256:")[:12], max(0, unique)))
    for cache in df.get("BuildCache") or []:
        if not cache.get("InUse") and not cache.get("Shared"):
            result.items.append(PruneItem("build cache", str(cache.get("ID", ""))[:12], int(cache.get("Size") or 0)))
    result.bytes_reclaimable = sum(item.size for item in result.items)
    return result


def _disk_categories(df: Mapping[str, Any]) -> list[DiskCategory]:
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


def _restarts(events: Iterable[Mapping[str, Any]]) -> int:
    """Each restart — by the restart policy or by `docker restart` — is a die followed by a start."""
    count, died = 0, False
    for event in sorted(events, key=lambda e: int(e.get("timeNano") or 0)):
        action = event.get("Action") or event.get("status")
        if action == "die":
            died = True
        elif action == "start" and died:
            count, died = count + 1, False
    return count


# --- the client -------------------------------------------------------------------------------


class Docker:
    def __init__(self, host: str | None, timeout: float):
        self.host = host
        self.timeout = timeout
        self._client: aiodocker.Docker | None = None

    def client(self) -> aiodocker.Docker:
        """The engine client; NotConfigured when nothing says where Docker is."""
        if self._client is None:
            host = self.host
            if host is None:
                if not os.path.exists(DEFAULT_SOCKET):
                    raise NotConfigured("DOCKER_HOST")
                host = "unix://" + DEFAULT_SOCKET
            if host.startswith("unix://") and not os.path.exists(urlsplit(host).path):
                raise DockerSocketMissing(f"Docker socket missing: {urlsplit(host).path}")
            self._client = aiodocker.Docker(url=host)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @contextlib.asynccontextmanager
    async def _call(
        self, seconds: float | None = None, container: str | None = None
    ) -> AsyncIterator[aiodocker.Docker]:
        """The client, under a deadline, with the engine's errors turned into ours."""
        async with asyncio.timeout(self.timeout if seconds is None else seconds):
            try:
                yield self.client()
            except DockerError as exc:
                ours = _translated(exc, container)
                if ours is exc:
                    raise
                raise ours from exc
            except aiohttp.ClientConnectionError as exc:
                raise DockerUnreachable(str(exc)) from exc

    async def _get(self, path: str, container: str | None = None, **params: str) -> Any:
        async with self._call(container=container) as client:
            return await client._query_json(path, params=params or None)

    # engine and host

    async def ping(self) -> bool:
        async with self._call() as client, client._query("_ping", versioned_api=False) as response:
            return (await response.text()).strip() == "OK"

    async def version(self) -> dict[str, Any]:
        async with self._call() as client:
            return await client.version()

    async def host_info(self) -> HostInfo:
        info = await self._get("info")
        running = int(info.get("ContainersRunning") or 0)
        return HostInfo(
            mem_total=int(info.get("MemTotal") or 0),
            ncpu=int(info.get("NCPU") or 0),
            server_version=info.get("ServerVersion", ""),
            operating_system=info.get("OperatingSystem", ""),
            kernel_version=info.get("KernelVersion", ""),
            cgroup_version=str(info.get("CgroupVersion", "")),
            containers_running=running,
            containers_stopped=int(info.get("Containers") or 0) - running,
            warnings=list(info.get("Warnings") or []),
        )

    # containers

    async def inspect_raw(self, name: str) -> dict[str, Any]:
        """`docker inspect` as the engine returns it — environment values included: keep it in memory."""
        result: dict[str, Any] = await self._get(f"containers/{name}/json", container=name)
        return result

    async def inspect(self, name: str) -> ContainerInfo:
        return container_info(await self.inspect_raw(name))

    async def read_env_value(self, name: str, var: str) -> str | None:
        """One environment value of a container (e.g. JWT_SECRET); for use in memory, never shown or logged."""
        for entry in ((await self.inspect_raw(name)).get("Config") or {}).get("Env") or []:
            key, sep, value = entry.partition("=")
            if key == var and sep:
                return value
        return None

    async def containers_of_project(self, project: str) -> list[str]:
        """Names of the compose project's containers, stopped ones included."""
        found = await self._get(
            "containers/json", all="1", filters=_filters_param({"label": f"{COMPOSE_PROJECT}={project}"})
        )
        return sorted((c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/") for c in found)

    async def container_names(self) -> list[str]:
        """Names of every container on the engine, stopped ones included."""
        found = await self._get("containers/json", all="1")
        return sorted((c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/") for c in found)

    async def top(self, name: str) -> list[dict[str, str]]:
        """`docker top`: the container's processes, one dict per process keyed by ps's titles."""
        try:
            result = await self._get(f"containers/{name}/top", container=name, ps_args=TOP_PS_ARGS)
        except DockerError as exc:
            if exc.status != 500:  # a ps on the engine's host that does not take these options
                raise
            result = await self._get(f"containers/{name}/top", container=name)
        titles = result.get("Titles") or []
        return [dict(zip(titles, row, strict=False)) for row in result.get("Processes") or []]

    async def start(self, name: str) -> None:
        async with self._call(container=name) as client, client._query(f"containers/{name}/start", method="POST"):
            pass

    async def stop(self, name: str, grace_seconds: int) -> None:
        async with (
            self._call(grace_seconds + self.timeout, container=name) as client,
            client._query(f"containers/{name}/stop", method="POST", params={"t": grace_seconds}, timeout=None),
        ):
            pass

    async def restart(self, name: str, grace_seconds: int) -> None:
        """`docker restart -t grace`: SIGTERM, up to `grace_seconds` to exit, then SIGKILL, then start."""
        async with (
            self._call(grace_seconds + self.timeout, container=name) as client,
            client._query(f"containers/{name}/restart", method="POST", params={"t": grace_seconds}, timeout=None),
        ):
            pass

    # events

    async def events(
        self, since: datetime, until: datetime, filters: Filters | None = None, limit: int = MAX_EVENTS
    ) -> list[dict[str, Any]]:
        """The engine's events between two moments (at most `limit`, the oldest first). An `until` in
        the future waits for it: the stream ends there."""
        params = {"since": _engine_timestamp(since), "until": _engine_timestamp(until)}
        if filters:
            params["filters"] = _filters_param(filters)
        wait = max(0.0, (until - datetime.now(UTC)).total_seconds())
        found: list[dict[str, Any]] = []
        async with (
            self._call(wait + self.timeout) as client,
            client._query("events", params=params, timeout=None) as response,
        ):
            try:
                async for line in response.content:
                    if line.strip():
                        found.append(json.loads(line))
                    if len(found) >= limit:
                        break
            finally:
                response.close()
        return found

    async def restarts_in_window(self, name: str, minutes: float) -> int:
        """How often the container was restarted (a die followed by a start) in the last `minutes`."""
        now = datetime.now(UTC)
        events = await self.events(
            now - timedelta(minutes=minutes),
            now,
            {"type": "container", "container": name, "event": list(RESTART_EVENTS)},
        )
        return _restarts(events)

    # exec

    async def exec_argv(
        self, name: str, argv: Sequence[str], timeout: float, max_output: int = MAX_EXEC_OUTPUT
    ) -> tuple[int, str]:
        """Run an argument list (no shell) in the container: its exit code and stdout+stderr, of which
        at most `max_output` bytes are kept. The command goes on running if the deadline passes."""
        if not argv:
            raise ValueError("exec needs a command")
        kept, dropped = bytearray(), 0
        async with self._call(timeout, container=name) as client:
            execution = await client.containers.container(name).exec(list(argv), stdout=True, stderr=True)
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    room = max(0, max_output - len(kept))
                    kept += message.data[:room]
                    dropped += max(0, len(message.data) - room)
            exit_code = await self._exit_code(execution)
        output = kept.decode("utf-8", "replace")
        if dropped:
            output += f"\n… {dropped} more bytes not kept"
        return exit_code, output

    @staticmethod
    async def _exit_code(execution: Any) -> int:
        """The exit code, which the engine may record a moment after the output stream closes."""
        while True:
            details = await execution.inspect()
            if details.get("ExitCode") is not None and not details.get("Running"):
                return int(details["ExitCode"])
            await asyncio.sleep(0.02)  # polling the engine's record; bounded by the caller's deadline

    async def has_tool(self, name: str, tool: str) -> bool:
        """Whether `tool` can be executed in the container, probed as `[tool, "--help"]` without a shell."""
        try:
            exit_code, _ = await self.exec_argv(name, [tool, "--help"], TOOL_PROBE_SECONDS, max_output=1024)
        except TimeoutError:
            return True  # it started and is still running: it exists
        return exit_code not in NOT_EXECUTABLE

    # disk

    async def _system_df(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._get("system/df")
        return result

    async def system_df(self) -> list[DiskCategory]:
        """`docker system df`: images, containers, volumes and build cache with sizes and reclaimable bytes."""
        return _disk_categories(await self._system_df())

    async def prune(self, dry_run: bool) -> PruneResult:
        """Remove stopped containers, dangling images and unused build cache — never volumes.
        A dry run only says what would go and how many bytes that frees."""
        preview = _preview_prune(await self._system_df())
        if dry_run:
            return preview
        reclaimed = 0
        steps = (
            ("containers/prune", None),
            ("images/prune", {"filters": _filters_param({"dangling": "true"})}),
            ("build/prune", None),
        )
        async with self._call(self.timeout * 6) as client:
            for path, params in steps:
                try:
                    answer = await client._query_json(path, method="POST", params=params)
                except DockerError as exc:
                    if path != "build/prune" or exc.status not in (404, 501):
                        raise
                    continue  # an engine without a build cache to prune
                reclaimed += int((answer or {}).get("SpaceReclaimed") or 0)
        return PruneResult(
            dry_run=False, items=preview.items, bytes_reclaimable=preview.bytes_reclaimable, bytes_reclaimed=reclaimed
        )

    # networks

    async def networks_of(self, project: str | None = None, names: Iterable[str] = ()) -> list[NetworkInfo]:
        """The networks the project's (or the named) containers are attached to, with every container
        on them, its aliases and IPv4 address."""
        wanted = list(names) or (await self.containers_of_project(project) if project else [])
        inspected = {raw["Id"]: raw for raw in await asyncio.gather(*(self.inspect_raw(name) for name in wanted))}
        network_ids = {
            endpoint.get("NetworkID") or net_name
            for raw in inspected.values()
            for net_name, endpoint in _endpoints(raw).items()
        }
        networks = [
            net
            for net in await asyncio.gather(*(self._get(f"networks/{i}") for i in sorted(network_ids)))
            if net.get("Driver") != "null"
        ]
        others = {cid for net in networks for cid in net.get("Containers") or {} if cid not in inspected}
        for raw in await asyncio.gather(*(self.inspect_raw(cid) for cid in others), return_exceptions=True):
            if isinstance(raw, ContainerNotFound):
                continue  # removed in the meantime
            if isinstance(raw, BaseException):
                raise raw
            inspected[raw["Id"]] = raw
        aliases = {
            (net_name, raw["Name"].lstrip("/")): list(endpoint.get("Aliases") or [])
            for raw in inspected.values()
            for net_name, endpoint in _endpoints(raw).items()
        }
        return sorted((self._network_info(net, aliases) for net in networks), key=lambda n: n.name)

    @staticmethod
    def _network_info(net: Mapping[str, Any], aliases: Mapping[tuple[str, str], list[str]]) -> NetworkInfo:
        attached = []
        for endpoint in (net.get("Containers") or {}).values():
            container = endpoint.get("Name", "")
            attached.append(
                Attachment(
                    container,
                    aliases.get((net["Name"], container), []),
                    (endpoint.get("IPv4Address") or "").split("/")[0],
                )
            )
        subnets = [c.get("Subnet", "") for c in ((net.get("IPAM") or {}).get("Config") or []) if c.get("Subnet")]
        return NetworkInfo(
            net["Name"],
            net.get("Id", ""),
            net.get("Driver", ""),
            bool(net.get("Internal")),
            subnets,
            sorted(attached, key=lambda a: a.container),
        )
