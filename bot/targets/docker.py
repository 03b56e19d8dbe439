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
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError
from aiodocker.networks import DockerNetwork

from bot.core.errors import NotConfigured
from bot.targets.docker_models import (
    Attachment,
    ContainerInfo,
    DiskCategory,
    HostInfo,
    ListedContainer,
    NetworkInfo,
    container_info,
    disk_categories,
    endpoints_of,
    listed_container,
    restarts_from_events,
)

DEFAULT_SOCKET = "/var/run/docker.sock"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
MAX_EVENTS = 2000
MAX_EXEC_OUTPUT = 64 * 1024
TOOL_PROBE_SECONDS = 5.0
NOT_EXECUTABLE = (126, 127)  # the exit codes of "not found" / "cannot execute"
TOP_PS_ARGS = (
    "-ww -o pid,user,pcpu,pmem,rss,etime,args"  # -ww: ps would cut the command line, and a secret in it, at 80 columns
)
RESTART_EVENTS = ("die", "start")
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


def translated(exc: BaseException, container: str | None = None) -> BaseException:
    """An error of the raw aiodocker client as this module raises it (an engine that cannot be
    reached is DockerUnreachable, a ConnectionError: "unreachable", never a bug)."""
    if isinstance(exc, DockerError):
        return _translated(exc, container)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return DockerUnreachable(str(exc))
    return exc


def _engine_timestamp(moment: datetime) -> str:
    """Seconds.nanoseconds since the epoch, the form the events API takes exactly."""
    nanos = int(moment.timestamp() * 1_000_000) * 1000
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def _filters_param(filters: Filters) -> str:
    return json.dumps({key: [value] if isinstance(value, str) else list(value) for key, value in filters.items()})


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

    async def image_id(self, reference: str) -> str | None:
        """The id the image `reference` (e.g. `erpgo/api:latest`) names now; None when no such image."""
        try:
            result: dict[str, Any] = await self._get(f"images/{reference}/json")
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise
        return str(result.get("Id") or "") or None

    async def log_lines(
        self, name: str, *, tail: int, since: datetime | None = None, seconds: float | None = None
    ) -> list[str] | None:
        """A container's stdout and stderr, its newest `tail` lines (since `since`); None when there is
        no such container."""
        since_arg = int(since.timestamp()) if since is not None else 0  # 0: from the start
        try:
            async with self._call(seconds, container=name) as client:
                container = await client.containers.get(name)
                pieces = await container.log(stdout=True, stderr=True, tail=tail, since=since_arg)
        except ContainerNotFound:
            return None
        return "".join(pieces).splitlines()

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

    async def project_containers(self, project: str) -> list[ListedContainer]:
        """The compose project's containers (stopped ones included) with their service labels, by name."""
        found = await self._get(
            "containers/json", all="1", filters=_filters_param({"label": f"{COMPOSE_PROJECT}={project}"})
        )
        return sorted((listed_container(row) for row in found), key=lambda c: c.name)

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

    async def reconnect(self, network: str, container_id: str, endpoint: dict[str, Any]) -> None:
        """`docker network disconnect` then `connect` with the given endpoint settings (aliases, static
        addresses): the engine registers the container's names in the network's DNS anew."""
        async with self._call(container=container_id) as client:
            attached = DockerNetwork(client, network)
            await attached.disconnect({"Container": container_id, "Force": False})
            await attached.connect({"Container": container_id, "EndpointConfig": endpoint})

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
        return restarts_from_events(events)

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
        return disk_categories(await self._system_df())

    async def disk_usage_raw(self, seconds: float | None = None) -> dict[str, Any]:
        """`docker system df` as the engine returns it (every image, container, volume and cache record).
        It can take long on a busy host, hence its own deadline."""
        async with self._call(seconds) as client:
            result: dict[str, Any] = await client._query_json("system/df", timeout=None)
        return result

    async def remove_container(self, container_id: str) -> None:
        """`docker rm` without force and without volumes: the engine refuses (409) a running container."""
        async with (
            self._call(container=container_id) as client,
            client._query(f"containers/{container_id}", method="DELETE"),
        ):
            pass

    async def remove_image(self, image_id: str) -> None:
        """`docker rmi` without force: the engine refuses (409) an image a container still uses."""
        async with self._call() as client, client._query(f"images/{image_id}", method="DELETE"):
            pass

    async def prune_build_cache(self) -> int:
        """`docker builder prune -f`: unused build cache; the bytes the engine says it freed (0 without one)."""
        async with self._call(self.timeout * 6) as client:
            try:
                answer = await client._query_json("build/prune", method="POST")
            except DockerError as exc:
                if exc.status not in (404, 501):
                    raise
                return 0
        return int((answer or {}).get("SpaceReclaimed") or 0)

    # networks

    async def networks_of(self, project: str | None = None, names: Iterable[str] = ()) -> list[NetworkInfo]:
        """The networks the project's (or the named) containers are attached to, with every container
        on them, its aliases and IPv4 address."""
        wanted = list(names) or (await self.containers_of_project(project) if project else [])
        inspected = {raw["Id"]: raw for raw in await asyncio.gather(*(self.inspect_raw(name) for name in wanted))}
        network_ids = {
            endpoint.get("NetworkID") or net_name
            for raw in inspected.values()
            for net_name, endpoint in endpoints_of(raw).items()
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
            for net_name, endpoint in endpoints_of(raw).items()
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
