"""`/erpgo app` and the guide's Application Won't Start steps 1, 2 and 5 on the suite's own Docker engine: the
service's declared environment (from the compose file the engine's labels name) against the container's, the
holder of a host port named (a process of this machine) or stopped through an approval (a container), and a
rebuilt image a restart would not pick up."""

from __future__ import annotations

import os
import socket

import pytest
import yaml

from bot.core.findings import Finding, Status
from bot.settings import load_settings
from demo.services import ServiceError, free_port
from tests import harness
from tests.db_support import one, run_verb


async def app(docker_engine, container: str) -> list[Finding]:
    return await run_verb(f"app {container}", None, docker_host=docker_engine.host, erpgo_containers=container)


def compose_labels(directory: str, service: str = "api") -> list[str]:
    return [
        *("--label", "com.docker.compose.project=erpgo", "--label", f"com.docker.compose.service={service}"),
        *("--label", "com.docker.compose.project.config_files=docker-compose.yml"),
        *("--label", f"com.docker.compose.project.working_dir={directory}"),
    ]


async def test_a_setting_the_service_declares_but_the_container_lacks_is_named(docker_engine, names, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        yaml.safe_dump(
            {"services": {"api": {"environment": {"DATABASE_URL": "x", "SERVER_PORT": "8080", "PASSWORD_PEPPER": ""}}}}
        )
    )
    name = names("api")
    env = ["-e", "DATABASE_URL=postgres://erpgo:pw@postgres/erp", "-e", "SERVER_PORT=8080"]
    docker_engine.run(name, "exec sleep 100000", run_args=[*env, *compose_labels(str(tmp_path))])

    compose = one(await app(docker_engine, name), f"Compose {name}")

    assert compose.status is Status.WARN
    assert compose.title.startswith("PASSWORD_PEPPER missing in the container, though ")
    assert f"{tmp_path / 'docker-compose.yml'} (service api) declares them" in compose.title
    assert any("`docker-compose up -d api` recreates it" in line for line in compose.details)
    assert "pw@" not in str(compose.to_dict()), "names only, never a value"


async def test_a_compose_file_the_bot_cannot_read_is_said_with_where_it_is(docker_engine, names):
    name = names("api")
    docker_engine.run(name, "exec sleep 100000", run_args=compose_labels("/nonexistent/erpgo"))
    compose = one(await app(docker_engine, name), f"Compose {name}")
    assert compose.status is Status.SKIPPED
    assert compose.title.startswith("made from /nonexistent/erpgo/docker-compose.yml, which this bot cannot read")


async def test_a_host_process_holding_the_port_is_named(docker_engine, names, public_network):
    network = public_network()
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    try:
        blocked = names("blocked")
        docker_engine.docker(
            "create", "--name", blocked, "--network", network, "-p", f"127.0.0.1:{port}:8080",
            docker_engine.ensure_image(), "sleep", "100",
        )  # fmt: skip
        with pytest.raises(ServiceError):
            docker_engine.docker("start", blocked)
        ports = one(await app(docker_engine, blocked), f"Ports {blocked}")
    finally:
        listener.close()
    assert ports.status is Status.CRIT
    assert any(f"(pid {os.getpid()})" in line and f"host port {port}" in line for line in ports.details), ports.details
    assert ports.proposals == [], "a process is not the bot's to stop"


async def test_a_container_holding_the_port_is_proposed_a_stop_which_frees_it(
    docker, docker_engine, names, public_network
):
    network = public_network()
    holder, blocked = names("holder"), names("blocked")
    port = free_port()
    publish = ["-p", f"127.0.0.1:{port}:8080"]
    docker_engine.run(holder, "trap 'exit 0' TERM; while :; do sleep 0.1; done", network=network, run_args=publish)
    docker_engine.docker(
        "create", "--name", blocked, "--network", network, *publish, docker_engine.ensure_image(), "sleep", "100"
    )
    with pytest.raises(ServiceError, match="already allocated"):
        docker_engine.docker("start", blocked)

    [stop] = one(await app(docker_engine, blocked), f"Ports {blocked}").proposals
    assert stop.action == "docker.stop" and stop.args["name"] == holder
    result = await harness.remediate("docker.stop", load_settings(docker_host=docker_engine.host), **stop.args)

    assert result.startswith(f"stopped {holder}")
    assert not (await docker.inspect(holder)).state.running
    docker_engine.docker("start", blocked)  # the port is free now
    assert (await docker.inspect(blocked)).state.running


async def test_a_rebuilt_image_is_not_picked_up_by_a_restart_and_the_commands_are_said(docker_engine, names):
    name = names("api")
    tag = f"erpgo/{name}:latest"
    docker_engine.docker("tag", docker_engine.ensure_image(), tag)
    try:
        docker_engine.docker(
            "run", "-d", "--name", name, "--network", "none", *compose_labels("/srv/erpgo"), tag, "sleep", "100000"
        )
        fresh = one(await app(docker_engine, name), f"Image {name}")
        assert fresh.status is Status.OK and "the newest the tag names" in fresh.title
        docker_engine.docker("commit", name, tag)  # "rebuilt": the tag names another image now

        rebuilt = one(await app(docker_engine, name), f"Image {name}")
    finally:
        docker_engine.remove(name)
        docker_engine.docker("rmi", "-f", tag)
    assert rebuilt.status is Status.WARN
    assert rebuilt.title.startswith(f"{tag} now names image ") and "it was rebuilt or pulled since" in rebuilt.title
    why = rebuilt.details[0]
    assert "a restart reuses the container and so the image it was made from" in why
    assert "`docker-compose build api && docker-compose up -d api`" in why
