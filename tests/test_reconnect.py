"""`docker.reconnect` on a bridge network of the suite's own engine: the database container was attached by
hand without its service alias, so `postgres` does not resolve from the API container; `net` proposes the
reconnect, and after it the name resolves from inside the API — or the reconnect is refused once the
name resolves again by itself."""

from __future__ import annotations

import os
import uuid

import pytest

from bot.core.findings import Status
from bot.core.registry import Refused
from bot.settings import load_settings
from demo.services import ServiceError
from tests import harness
from tests.db_support import one, run_verb

LISTENER = "nc -ll -p 5432 -e cat"


@pytest.fixture
def broken_alias(docker_engine, names):
    """(settings, api, db, network): the API's DATABASE_URL names `postgres`; the db container is on the
    network without that alias, as after a hand-made `docker network connect`."""
    tag = f"{os.getpid() % 100000}r"
    network = f"inf-rc-{tag}"
    subnet = f"198.18.{os.getpid() % 250}.0/24"
    try:
        docker_engine.docker(
            "network", "create", "--subnet", subnet, "-o", f"com.docker.network.bridge.name=infr{tag}", network
        )
    except ServiceError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"this engine cannot create a bridge network: {exc}")
        pytest.skip(f"this engine cannot create a bridge network: {exc}")
    project = "infrc" + uuid.uuid4().hex[:6]
    api, db = names("api"), names("db")

    def labels(service: str) -> list[str]:
        return ["--label", f"com.docker.compose.project={project}", "--label", f"com.docker.compose.service={service}"]

    database_url = "DATABASE_URL=postgres://erpgo:pw@postgres:5432/erp"
    docker_engine.run(api, "sleep 1000", network=network, run_args=[*labels("api"), "-e", database_url])
    docker_engine.run(db, LISTENER, network=network, run_args=[*labels("postgres"), "--expose", "5432"])
    settings = {"docker_host": docker_engine.host, "erpgo_containers": f"{api},{db}"}
    yield settings, api, db, network
    docker_engine.remove(api, db)
    docker_engine.docker("network", "rm", network)


async def test_a_service_name_that_does_not_resolve_is_reconnected_and_resolves_after(broken_alias):
    settings, api, db, network = broken_alias
    finding = one(await run_verb("net", None, **settings), f"{api} → {db}")
    assert finding.status is Status.CRIT and finding.title.startswith("postgres")
    [proposal] = finding.proposals
    assert proposal.action == "docker.reconnect" and proposal.args["aliases"][0] == "postgres"
    assert f"docker network connect --alias postgres {network}" in proposal.preview

    outcome = await harness.remediate("docker.reconnect", load_settings(**settings), **proposal.args)

    assert f"reconnected {db}" in outcome and "postgres resolves to " in outcome
    again = one(await run_verb("net", None, **settings), f"{api} → {db}")
    assert again.status is Status.OK and again.proposals == []


async def test_a_reconnect_is_refused_once_the_name_resolves_again(broken_alias, docker_engine):
    settings, api, db, network = broken_alias
    [proposal] = one(await run_verb("net", None, **settings), f"{api} → {db}").proposals
    docker_engine.docker("network", "disconnect", network, db)
    docker_engine.docker("network", "connect", "--alias", "postgres", network, db)  # someone fixed it by hand

    with pytest.raises(Refused, match=r"resolves from .* now"):
        await harness.remediate("docker.reconnect", load_settings(**settings), **proposal.args)
