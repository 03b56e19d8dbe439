"""The Docker target against the suite's own engine, with containers made to be in each condition."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiodocker.exceptions import DockerError

from bot.targets.docker import ContainerNotFound, Docker, DockerSocketMissing, DockerUnreachable
from bot.targets.docker_models import ContainerInfo, PortBinding, container_info, env_names, log_size, port_conflicts
from demo.services import DockerEngine, ServiceError, free_port
from tests.support import eventually

TERM_QUICKLY = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


@pytest.fixture
def bridge_network(docker_engine: DockerEngine) -> Iterator[Callable[..., str]]:
    """`bridge_network(internal=...)` -> the name of a new bridge network, removed afterwards."""
    made: list[str] = []

    def make(*, internal: bool) -> str:
        tag = f"{os.getpid() % 100000}{len(made)}"
        name = f"dk-net-{tag}"
        subnet = f"198.19.{(os.getpid() + len(made)) % 250}.0/24"
        args = ["network", "create", "--subnet", subnet, "-o", f"com.docker.network.bridge.name=dock{tag}"]
        try:
            docker_engine.docker(*args, *(["--internal"] if internal else []), name)
        except ServiceError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"this engine cannot create a bridge network: {exc}")
            pytest.skip(f"this engine cannot create a bridge network: {exc}")
        made.append(name)
        return name

    yield make
    for name in made:  # a bridge left behind would outlive the engine on the host
        attached = docker_engine.docker(
            "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", name
        )
        docker_engine.remove(*attached.split())
        docker_engine.docker("network", "rm", name)


async def test_crash_loop_counts_restarts_from_state_and_events(docker, docker_engine, names):
    name = names("crashing")
    docker_engine.run(name, "echo starting; exit 1", restart="always")

    async def restarted_twice() -> ContainerInfo | None:
        info = await docker.inspect(name)
        return info if info.state.restart_count >= 2 else None

    info = await eventually(restarted_twice, what="the restart policy to restart it twice")
    assert info.restart_policy == "always"
    assert info.state.exit_code == 1 or info.state.running
    # the engine counts a restart when it schedules it, the start event follows after its back-off
    assert await docker.restarts_in_window(name, minutes=1) >= info.state.restart_count - 1 >= 1


async def test_memory_limit_kill_shows_oom_killed(docker, docker_engine, names):
    name = names("oom")
    docker_engine.run(name, "head -c 200m /dev/zero | tail", run_args=["--memory", "16m", "--memory-swap", "16m"])

    async def exited() -> ContainerInfo | None:
        info = await docker.inspect(name)
        return info if not info.state.running else None

    info = await eventually(exited, what="the container to be killed")
    assert info.state.oom_killed is True
    assert info.state.exit_code == 137
    assert info.memory_limit == 16 * 1024 * 1024


async def test_stopped_container_starts_again(docker, docker_engine, names):
    name = names("stopped")
    docker_engine.run(name, TERM_QUICKLY)
    docker_engine.docker("stop", "-t", "5", name)
    stopped = await docker.inspect(name)
    assert stopped.state.status == "exited" and not stopped.state.running

    await docker.start(name)

    started = await docker.inspect(name)
    assert started.state.running
    assert started.state.started_at is not None and stopped.state.started_at is not None
    assert started.state.started_at > stopped.state.started_at


async def test_restart_changes_start_time_exactly_once(docker, docker_engine, names):
    name = names("restarted")
    docker_engine.run(name, TERM_QUICKLY)
    before = await docker.inspect(name)
    since = datetime.now(UTC)

    await docker.restart(name, grace_seconds=5)

    after = await docker.inspect(name)
    assert after.id == before.id and after.state.running
    assert after.state.started_at > before.state.started_at
    events = await docker.events(since, datetime.now(UTC), {"type": "container", "container": name})
    assert [e["Action"] for e in events].count("start") == 1
    assert "restart" in [e["Action"] for e in events]
    assert await docker.restarts_in_window(name, minutes=1) == 1


async def test_events_until_the_future_ends_there(docker, docker_engine, names):
    name = names("evented")
    started = time.monotonic()
    since = datetime.now(UTC)
    until = since + timedelta(seconds=1.5)
    engine_call = asyncio.to_thread(docker_engine.run, name, "sleep 100")
    events, _ = await asyncio.gather(docker.events(since, until, {"container": name}), engine_call)
    assert time.monotonic() - started < 1.5 + 3
    assert {"create", "start"} <= {e["Action"] for e in events}


async def test_environment_names_without_values(docker, docker_engine, names):
    name = names("env")
    secret = "s3cr3t-" + uuid.uuid4().hex
    docker_engine.run(
        name,
        "sleep 100",
        run_args=[
            "-e",
            "DATABASE_URL=",
            "-e",
            f"REDIS_URL=redis://:{secret}@cache:6379",
            "-e",
            "SERVER_PORT=8080",
            "--label",
            "com.docker.compose.project=dkproj",
            "--label",
            "com.docker.compose.service=api",
        ],
    )

    info = await docker.inspect(name)

    assert info.env["DATABASE_URL"] == "empty"
    assert info.env["REDIS_URL"] == "set" and info.env["SERVER_PORT"] == "set"
    assert "JWT_SECRET" not in info.env
    assert secret not in repr(info)
    assert env_names(await docker.inspect_raw(name)) == info.env
    assert info.project == "dkproj" and info.service == "api"
    assert info.image == docker_engine.ensure_image() and info.created is not None
    assert await docker.read_env_value(name, "REDIS_URL") == f"redis://:{secret}@cache:6379"
    assert await docker.read_env_value(name, "DATABASE_URL") == ""
    assert await docker.read_env_value(name, "JWT_SECRET") is None
    assert await docker.containers_of_project("dkproj") == [name]


async def test_two_containers_publishing_one_host_port(docker, docker_engine, names, bridge_network):
    network = bridge_network(internal=False)  # an internal network publishes no ports
    first, second = names("first"), names("second")
    port = free_port()
    publish = ["-p", f"127.0.0.1:{port}:8080"]
    docker_engine.run(first, "while :; do nc -l -p 8080 -e echo hi; done", network=network, run_args=publish)
    docker_engine.docker(
        "create", "--name", second, "--network", network, *publish, docker_engine.ensure_image(), "sleep", "100"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the first one's port really is published on the host

    with pytest.raises(DockerError, match="already allocated"):
        await docker.start(second)

    infos = [await docker.inspect(first), await docker.inspect(second)]
    assert infos[0].ports == [PortBinding("8080", "tcp", "127.0.0.1", str(port))]
    assert "port is already allocated" in infos[1].state.error
    assert port_conflicts(infos) == [f"host port {port}/tcp is published by {', '.join(sorted([first, second]))}"]


def _published(name: str, *bindings: tuple[str, str, str]) -> ContainerInfo:
    ports: dict[str, list[dict[str, str]]] = {}
    for container_port, host_ip, host_port in bindings:
        ports.setdefault(container_port, []).append({"HostIp": host_ip, "HostPort": host_port})
    return container_info({"Id": name, "Name": "/" + name, "HostConfig": {"PortBindings": ports}})


def test_port_conflicts_know_wildcards_ranges_and_protocols():
    assert port_conflicts([_published("a", ("80/tcp", "", "8080")), _published("b", ("80/tcp", "127.0.0.1", "8080"))])
    assert port_conflicts([_published("a", ("80/tcp", "", "8000-8010")), _published("b", ("81/tcp", "", "8005"))])
    assert not port_conflicts([_published("a", ("53/udp", "", "5353")), _published("b", ("53/tcp", "", "5353"))])
    assert not port_conflicts(
        [_published("a", ("80/tcp", "127.0.0.1", "80")), _published("b", ("80/tcp", "127.0.0.2", "80"))]
    )
    assert not port_conflicts([_published("a", ("80/tcp", "", "")), _published("b", ("80/tcp", "", ""))])
    assert not port_conflicts([_published("a", ("80/tcp", "", "80"), ("443/tcp", "", "443"))])


async def test_growing_log_grows_on_disk(docker, docker_engine, names):
    name = names("chatty")
    docker_engine.run(name, "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.02; done")
    info = await docker.inspect(name)

    async def size_above(floor: int) -> int | None:
        size = log_size(info)
        return size if size is not None and size > floor else None

    first = await eventually(lambda: size_above(0), what="a log file with lines in it")
    await eventually(lambda: size_above(first), what="the log to grow")


async def test_exec_runs_argument_lists_with_bounded_output(docker, docker_engine, names):
    name = names("exec")
    docker_engine.run(name, "sleep 100")

    assert await docker.exec_argv(name, ["echo", "hello", "$HOME;", "ls"], timeout=5) == (0, "hello $HOME; ls\n")
    assert (await docker.exec_argv(name, ["sh", "-c", "echo oops >&2; exit 3"], timeout=5)) == (3, "oops\n")
    code, output = await docker.exec_argv(name, ["head", "-c", "300000", "/dev/zero"], timeout=5, max_output=1000)
    assert code == 0 and output.startswith("\0" * 1000) and output.endswith("299000 more bytes not kept")
    with pytest.raises(TimeoutError):
        await docker.exec_argv(name, ["sleep", "5"], timeout=0.5)


async def test_has_tool_probes_without_a_shell(docker, docker_engine, names):
    name = names("tools")
    docker_engine.run(name, "sleep 100")
    found = await asyncio.gather(
        *(docker.has_tool(name, tool) for tool in ("wget", "nc", "nslookup", "curl", "pg_isready"))
    )
    assert found == [True, True, False, False, False]


async def test_top_lists_the_processes(docker, docker_engine, names):
    name = names("top")
    docker_engine.run(name, "sleep 123")
    processes = await docker.top(name)
    assert any("sleep 123" in p.get("COMMAND", "") for p in processes)
    assert {"PID", "%CPU", "RSS"} <= set(processes[0])


async def test_missing_container_and_unreachable_engine(docker, tmp_path):
    with pytest.raises(ContainerNotFound):
        await docker.inspect("dk-no-such-container")
    with pytest.raises(ContainerNotFound):
        await docker.exec_argv("dk-no-such-container", ["true"], timeout=5)
    with pytest.raises(DockerSocketMissing):
        await Docker(f"unix://{tmp_path}/none.sock", timeout=2).ping()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))  # a socket file nothing listens on: connection refused
    gone = Docker(f"unix://{tmp_path}/dead.sock", timeout=2)
    try:
        with pytest.raises(DockerUnreachable):
            await gone.inspect("anything")
    finally:
        await gone.close()
        dead.close()


async def test_engine_and_host_info(docker):
    assert await docker.ping()
    version = await docker.version()
    info = await docker.host_info()
    assert info.server_version == version["Version"]
    assert info.mem_total > 0 and info.ncpu >= 1


async def test_system_df_counts_images_and_containers(docker, docker_engine, names):
    docker_engine.run(names("df"), "sleep 100")
    usage = {category.kind: category for category in await docker.system_df()}
    assert set(usage) == {"images", "containers", "volumes", "build cache"}
    assert usage["images"].count >= 1 and usage["images"].size > 0 and usage["images"].active >= 1
    assert usage["containers"].active >= 1
    assert 0 <= usage["images"].reclaimable <= usage["images"].size


async def test_networks_show_attached_containers_aliases_and_addresses(docker, docker_engine, names, bridge_network):
    network = bridge_network(internal=True)
    project = "dknet" + uuid.uuid4().hex[:6]
    api, db = names("api"), names("db")
    for name, service in ((api, "api"), (db, "postgres")):
        docker_engine.run(
            name,
            "sleep 100",
            network=network,
            run_args=[
                "--network-alias",
                service,
                "--label",
                f"com.docker.compose.project={project}",
                "--label",
                f"com.docker.compose.service={service}",
            ],
        )

    [found] = await docker.networks_of(project=project)

    assert found.name == network and found.driver == "bridge" and found.internal
    assert [a.container for a in found.containers] == sorted([api, db])
    by_name = {a.container: a for a in found.containers}
    assert "postgres" in by_name[db].aliases and "api" in by_name[api].aliases
    assert by_name[db].ipv4.startswith(found.subnets[0].rsplit(".", 1)[0] + ".")
    code, output = await docker.exec_argv(api, ["nc", "-w", "2", "postgres", "1"], timeout=5)
    assert code == 1 and f"({by_name[db].ipv4})" in output and "refused" in output  # the alias resolves
    assert await docker.networks_of(names=[api]) == [found]
