"""`/erpgo net` on a bridge network this test builds on the suite's own engine: the API container looks up
its peers and connects to them with the tools its (busybox) image has; published ports are knocked on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from bot.core.findings import Status
from bot.targets import container_probes as probes
from bot.targets.docker import Docker
from demo.services import DockerEngine, free_port
from runbooks.network import judge_reachability, url_targets
from tests.db_support import one, run_verb, text_of

LISTENER = "nc -ll -p {port} -e cat"  # a server that waits for the client to speak, as PostgreSQL does


@pytest.fixture
def bridge(public_network: Callable[[], str]) -> Callable[[], str]:
    """`bridge()` -> a new user-defined bridge network (its own subnet and interface), removed afterwards."""
    return public_network


def address_of(docker_engine: DockerEngine, name: str) -> str:
    return docker_engine.docker(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name
    ).strip()


@pytest.fixture
def services(docker_engine, names, bridge) -> dict:
    """api (configured with a DATABASE_URL naming `postgres`), db (alias postgres, listening on 5432, published),
    cache (alias redis, exposes 6379 where nothing listens, published), all of one compose project."""
    network, project = bridge(), "infnet" + uuid.uuid4().hex[:6]
    api, db, cache = names("api"), names("db"), names("cache")
    db_port, cache_port = free_port(), free_port()

    def labels(service: str) -> list[str]:
        return ["--label", f"com.docker.compose.project={project}", "--label", f"com.docker.compose.service={service}"]

    docker_engine.run(
        api,
        "sleep 1000",
        network=network,
        run_args=[*labels("api"), "-e", "DATABASE_URL=postgres://erpgo:db-secret-pw@postgres:5432/erp"],
    )
    docker_engine.run(
        db,
        LISTENER.format(port=5432),
        network=network,
        run_args=[
            *labels("postgres"),
            "--network-alias",
            "postgres",
            "--expose",
            "5432",
            "-p",
            f"127.0.0.1:{db_port}:5432",
        ],
    )
    docker_engine.run(
        cache,
        "sleep 1000",
        network=network,
        run_args=[
            *labels("redis"),
            "--network-alias",
            "redis",
            "--expose",
            "6379",
            "-p",
            f"127.0.0.1:{cache_port}:6379",
        ],
    )
    return {
        "network": network,
        "api": api,
        "db": db,
        "cache": cache,
        "db_port": db_port,
        "cache_port": cache_port,
        "addresses": {name: address_of(docker_engine, name) for name in (api, db, cache)},
    }


async def test_net_shows_the_network_resolves_and_connects_as_the_api_sees_it(docker_engine, services):
    missing = f"inf-missing-{uuid.uuid4().hex[:6]}"
    api, db, cache = services["api"], services["db"], services["cache"]
    findings = await run_verb(
        "net", None, docker_host=docker_engine.host, erpgo_containers=f"{api},{db},{cache},{missing}"
    )
    everything = "\n".join(text_of(f) for f in findings)
    assert "db-secret-pw" not in everything

    network = one(findings, f"Network {services['network']}")
    assert network.status is Status.OK and "bridge" in network.title and "3 containers" in network.title
    assert f"{db}: {services['addresses'][db]}; aliases: postgres" in text_of(network)

    to_db = one(findings, f"{api} → {db}")
    assert to_db.status is Status.OK, text_of(to_db)
    assert to_db.title == f"postgres resolves to {services['addresses'][db]} (via nc); TCP 5432 open"
    assert "DATABASE_URL (postgres:5432) points here" in text_of(to_db)
    assert "tools in the image: nc, wget, timeout" in text_of(to_db)
    assert to_db.data["dns_tool"] == "nc" and to_db.data["tcp"] == {"5432": {"state": "open", "tool": "nc"}}

    to_cache = one(findings, f"{api} → {cache}")
    assert to_cache.status is Status.CRIT
    assert to_cache.title.startswith("TCP 6379") and "refused via nc" in to_cache.title
    assert f"redis resolves to {services['addresses'][cache]}" in text_of(to_cache)

    gone = one(findings, f"{api} → {missing}")
    assert gone.status is Status.CRIT and "no such container" in gone.title

    published_db = one(findings, f"Published {db}")
    assert published_db.status is Status.OK
    assert published_db.title == f"127.0.0.1:{services['db_port']} → 5432/tcp: listening"
    published_cache = one(findings, f"Published {cache}")
    assert published_cache.status is Status.CRIT and "nothing in" in published_cache.title
    assert all(f.section.startswith("Network & Connectivity › Service Discovery Issues") for f in findings)


async def test_net_says_when_it_cannot_look_from_inside_the_api(docker_engine, names):
    api = names("api")
    docker_engine.run(api, "exit 3")
    docker_engine.docker("wait", api)
    findings = await run_verb("net", None, docker_host=docker_engine.host, erpgo_containers=api)
    discovery = one(findings, f"Service discovery from {api}")
    assert discovery.status is Status.CRIT and "cannot look from inside it" in discovery.title


async def test_a_tool_that_crashes_is_said_and_not_used_again(docker_engine, names):
    """busybox's static wget dies of SIGSEGV in the resolver: the probe says so instead of guessing."""
    name = names("wget")
    docker_engine.run(name, "sleep 100")
    docker = Docker(docker_engine.host, timeout=10)
    try:
        box = probes.Toolbox(name, {"wget"})
        connection = await probes.connect(docker, box, "127.0.0.1", 1)
        assert (
            connection.tool is None and connection.state == "unknown" and "no TCP tool that works" in connection.detail
        )
        assert box.crashed == {"wget"} and "wget crashed when used" in box.describe()
        nothing = await probes.resolve(docker, probes.Toolbox(name, set()), "postgres")
        assert nothing.resolved is None and nothing.tool is None and "no DNS tool" in nothing.detail
    finally:
        await docker.close()


# --- what the tools print ---------------------------------------------------------------------


def test_getent_and_nslookup_outputs():
    found = probes.parse_getent("postgres", 0, "198.19.5.3      postgres  postgres\n")
    assert (found.resolved, found.addresses, found.tool) == (True, ["198.19.5.3"], "getent")
    assert probes.parse_getent("nope", 2, "").resolved is False

    busybox = (
        "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\nName:\tpostgres\n"
        "Address: 198.19.5.3\n"
    )
    assert probes.parse_nslookup("postgres", 0, busybox).addresses == ["198.19.5.3"]
    old_busybox = "Server:    127.0.0.11\nAddress 1: 127.0.0.11\n\nName:      redis\nAddress 1: 198.19.5.4 redis.net\n"
    assert probes.parse_nslookup("redis", 0, old_busybox).addresses == ["198.19.5.4"]
    missing = probes.parse_nslookup(
        "nope", 1, "Server:\t127.0.0.11\nAddress:\t127.0.0.11:53\n\n** server can't find nope: NXDOMAIN\n"
    )
    assert missing.resolved is False and "NXDOMAIN" in missing.detail


def test_nc_outputs():
    refused = probes.parse_nc("postgres", 1, 1, "nc: can't connect to remote host (198.19.5.3): Connection refused\n")
    assert (refused.state, refused.address) == ("refused", "198.19.5.3")
    assert probes.resolution_from_nc("postgres", refused).addresses == ["198.19.5.3"]
    unresolved = probes.parse_nc("nope", 1, 1, "nc: bad address 'nope'\n")
    assert unresolved.state == "unresolved" and probes.resolution_from_nc("nope", unresolved).resolved is False
    assert probes.parse_nc("x", 1, 1, "nc: timed out\n").state == "timeout"
    assert probes.parse_nc("x", 1, 0, "").state == "open"
    assert probes.parse_nc("x", 1, 124, "").state == "open"  # `timeout` ended a connection the server kept open
    assert (
        probes.parse_wget("198.19.5.3", 80, 1, "wget: can't connect to remote host: Connection refused").state
        == "refused"
    )
    assert probes.parse_wget("198.19.5.3", 5432, 1, "wget: error getting response").state == "open"


def test_a_name_resolving_elsewhere_than_the_container_is_critical():
    resolution = probes.Resolution("postgres", "getent", True, ["10.0.0.9"], "")
    status, line = judge_reachability(resolution, [], {"198.19.5.3"})
    assert status is Status.CRIT and "stale or foreign" in line


def test_only_host_and_port_are_taken_from_the_urls():
    raw = {
        "Config": {
            "Env": [
                "DATABASE_URL=postgres://erpgo:s3cret@postgres/erp?sslmode=disable",
                "REDIS_URL=redis://:pw@cache:6380/0",
                "JWT_SECRET=postgres://looks-like-a-url",
                "NATS_URL=nats://nats:bad-port",
            ]
        }
    }
    assert url_targets(raw) == [("DATABASE_URL", "postgres", 5432), ("REDIS_URL", "cache", 6380)]
