"""`/erpgo app` against the suite's own Docker engine, with containers made to be in each condition:
crash-looping, killed by its memory limit, stopped, missing JWT_SECRET, publishing a host port
another container holds, printing a growing log."""

from __future__ import annotations

import socket
import uuid

import pytest

from bot.core.findings import Finding, Status
from bot.local.text import render_text
from bot.slack import render
from bot.targets.docker import Docker
from demo.services import DockerEngine, ServiceError, free_port
from tests.db_support import one, run_verb, text_of
from tests.support import eventually

TERM_QUICKLY = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


async def app(docker_engine: DockerEngine, container: str, **settings) -> list[Finding]:
    """`/erpgo app <container>`, the container being one of the watched ones unless `settings` say otherwise."""
    settings.setdefault("erpgo_containers", container)
    return await run_verb(f"app {container}", None, docker_host=docker_engine.host, **settings)


def everything(findings: list[Finding]) -> str:
    return "\n".join(text_of(f) + "\n" + "\n".join(p.preview + p.summary for p in f.proposals) for f in findings)


async def test_crash_loop_shows_the_loop_its_last_errors_and_proposes_a_restart(docker, docker_engine, names):
    name = names("api")
    docker_engine.run(
        name,
        'echo "starting erpgo-api"; echo "FTL failed to connect to database error=\\"dial tcp 10.0.0.9:5432: '
        'connect: connection refused\\""; exit 1',
        restart="always",
    )
    await eventually(
        lambda: _restarted(docker, name, 3), timeout=20, what="the restart policy to restart it three times"
    )

    container = one(await app(docker_engine, name), f"Container {name}")

    assert container.status is Status.CRIT
    assert container.title.startswith("restart loop:") and "(restart policy always)" in container.title
    assert "exit code 1" in container.title
    assert any("FTL failed to connect to database" in line for line in container.evidence)
    [proposal] = container.proposals
    assert proposal.action == "docker.restart" and proposal.args["loop"] is True
    assert proposal.args["container_id"] == (await docker.inspect(name)).id
    assert f"docker restart --time 10 {proposal.args['container_id'][:12]}" in proposal.preview


async def _restarted(docker: Docker, name: str, times: int) -> bool:
    return (await docker.inspect(name)).state.restart_count >= times


async def test_memory_limit_kill_is_named_and_a_start_proposed(docker, docker_engine, names):
    name = names("hungry")
    docker_engine.run(name, "head -c 200m /dev/zero | tail", run_args=["--memory", "16m", "--memory-swap", "16m"])
    await eventually(lambda: _stopped(docker, name), what="the memory limit to kill it")

    container = one(await app(docker_engine, name), f"Container {name}")

    assert container.status is Status.CRIT
    assert "exit code 137 — killed by its memory limit (OOMKilled, limit 16.0 MB)" in container.title
    assert "OOMKilled yes; memory limit 16.0 MB" in container.details
    assert [p.action for p in container.proposals] == ["docker.start"]


async def _stopped(docker: Docker, name: str) -> bool:
    return not (await docker.inspect(name)).state.running


async def test_stopped_container_is_proposed_a_start_with_its_image(docker_engine, names):
    name = names("stopped")
    docker_engine.run(name, TERM_QUICKLY)
    docker_engine.docker("stop", "-t", "5", name)

    container = one(await app(docker_engine, name), f"Container {name}")

    assert container.status is Status.CRIT and container.title.startswith("exited: exit code 0 — exited cleanly")
    assert any(line.startswith(f"image {docker_engine.ensure_image()} (") for line in container.details)
    [proposal] = container.proposals
    assert proposal.action == "docker.start" and proposal.args["status"] == "exited"
    assert proposal.summary == f"Start container {name} ({proposal.args['container_id'][:12]})"


async def test_missing_jwt_secret_is_named_and_no_value_is_shown(docker_engine, names):
    name = names("api")
    password = "pw-" + uuid.uuid4().hex
    docker_engine.run(
        name,
        'echo "FTL JWT_SECRET is required"; exit 1',
        run_args=[
            "-e",
            f"DATABASE_URL=postgres://erpgo:{password}@postgres:5432/erp",
            "-e",
            "REDIS_URL=",
            "-e",
            "SERVER_PORT=8080",
            "-e",
            "GOMEMLIMIT=200MiB",
        ],
    )

    findings = await app(docker_engine, name)

    config = one(findings, f"Config {name}")
    assert config.status is Status.CRIT
    assert config.title == "JWT_SECRET missing, REDIS_URL empty — the API cannot start without it"
    assert config.details[:3] == ["set — DATABASE_URL, SERVER_PORT", "empty — REDIS_URL", "missing — JWT_SECRET"]
    assert any(line.startswith("Go runtime: GOMEMLIMIT set, GOGC not set") for line in config.details)
    assert password not in everything(findings) and password not in str([f.data for f in findings])
    shown = render_text(render.details("ERPGo app", findings))
    assert "missing — JWT_SECRET" in shown and "set — DATABASE_URL, SERVER_PORT" in shown and password not in shown
    assert any("FTL JWT_SECRET is required" in line for line in one(findings, f"Container {name}").evidence)


async def test_a_host_port_published_by_a_running_container_stops_the_other(docker_engine, names, public_network):
    network = public_network()
    holder, blocked = names("holder"), names("blocked")
    port = free_port()
    publish = ["-p", f"127.0.0.1:{port}:8080"]
    docker_engine.run(holder, "while :; do nc -l -p 8080 -e echo hi; done", network=network, run_args=publish)
    docker_engine.docker(
        "create", "--name", blocked, "--network", network, *publish, docker_engine.ensure_image(), "sleep", "100"
    )
    with pytest.raises(ServiceError, match="already allocated"):
        docker_engine.docker("start", blocked)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    findings = await app(docker_engine, blocked)

    ports = one(findings, f"Ports {blocked}")
    assert ports.status is Status.CRIT
    assert ports.title == (
        f"host port {port}/tcp is published by {', '.join(sorted([holder, blocked]))} ({holder} is running)"
    )
    assert f"8080/tcp → 127.0.0.1:{port}" in ports.details
    assert (
        f"host port {port} accepts connections while {blocked} is stopped: held by container {holder}" in ports.details
    )
    assert any("port is already allocated" in line for line in ports.details)
    assert "its last start failed" in one(findings, f"Container {blocked}").title
    assert one(await app(docker_engine, holder), f"Ports {holder}").status is Status.WARN  # the other one is stopped


async def test_growing_log_shows_the_newest_error_lines_before_the_exit(docker, docker_engine, names):
    name = names("chatty")
    docker_engine.run(
        name,
        'i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo "INF GET /api/v1/products 200 line $i"; done; '
        'echo "ERR failed to start server error=\\"listen tcp :8080: bind: address already in use\\""; exit 2',
    )
    await eventually(lambda: _stopped(docker, name), what="it to exit")

    container = one(await app(docker_engine, name), f"Container {name}")

    assert "exit code 2" in container.title
    assert any("bind: address already in use" in line for line in container.evidence)
    assert not any("line 1 " in line + " " for line in container.evidence)
    assert any("401 log lines since" in line for line in container.details)


async def test_a_healthy_container_its_dependencies_and_no_proposal(docker_engine, names, erp_dsn, redis_server):
    name = names("api")
    docker_engine.run(
        name,
        "sleep 100",
        run_args=["-e", "DATABASE_URL=x", "-e", "REDIS_URL=y", "-e", "JWT_SECRET=z", "-e", "SERVER_PORT=8080"],
    )

    findings = await app(docker_engine, name, erpgo_database_url=erp_dsn, erpgo_redis_url=redis_server.url)

    container = one(findings, f"Container {name}")
    assert container.status is Status.OK and container.title.startswith("running (up ")
    assert container.proposals == [] and container.evidence == []
    assert one(findings, f"Config {name}").title == "DATABASE_URL, REDIS_URL, JWT_SECRET, SERVER_PORT set"
    assert one(findings, f"Ports {name}").title == "publishes no host ports"
    database = one(findings, f"PostgreSQL (for {name})")
    assert database.status is Status.OK and database.title.startswith("reachable — PostgreSQL 15")
    assert one(findings, f"Redis (for {name})").title.startswith("reachable — Redis")
    assert all(f.section == "Application Issues › Application Won't Start" for f in findings)

    without = await app(docker_engine, name)
    assert one(without, f"PostgreSQL (for {name})").status is Status.SKIPPED
    assert one(without, f"Redis (for {name})").title == "not configured (set ERPGO_REDIS_URL)"


async def test_unreachable_dependencies_and_missing_container(docker_engine, names):
    closed = free_port()
    findings = await app(
        docker_engine,
        "app-no-such-container",
        erpgo_database_url=f"postgresql://erpgo@127.0.0.1:{closed}/erp",
        erpgo_redis_url=f"redis://127.0.0.1:{closed}/0",
    )
    container = one(findings, "Container app-no-such-container")
    assert container.status is Status.CRIT and container.title == "container not found"
    assert [f.component for f in findings] == [
        "Container app-no-such-container",
        "PostgreSQL (for app-no-such-container)",
        "Redis (for app-no-such-container)",
    ]
    assert all(f.status is Status.CRIT and f.title.startswith("unreachable — ") for f in findings[1:])


async def test_an_engine_that_cannot_be_reached_is_said_once(tmp_path):
    for verb in ("app", "memory", "cpu"):
        findings = await run_verb(verb, None, docker_host=f"unix://{tmp_path}/none.sock")
        docker = [f for f in findings if f.component == "Docker"]
        assert [(f.status, f.title) for f in docker] == [
            (Status.CRIT, f"unreachable — DockerSocketMissing: Docker socket missing: {tmp_path}/none.sock")
        ], verb
        per_container = [f for f in findings if not f.component.endswith(" trend")]  # the trends say "no series"
        assert not any(f.component.startswith(("Container", "Config", "Ports", "Memory", "CPU")) for f in per_container)


async def test_a_container_the_bot_does_not_watch_is_not_read(docker_engine, names):
    name = names("other")
    docker_engine.run(name, "sleep 100", run_args=["-e", "JWT_SECRET=x"])
    findings = await app(docker_engine, name, erpgo_containers="erpgo-api,postgres")
    reading = [f for f in findings if not f.component.startswith(("PostgreSQL", "Redis"))]
    assert {(f.status, f.title) for f in reading} == {
        (Status.SKIPPED, f"`{name}` is not a watched container; watched: erpgo-api, postgres")
    }
