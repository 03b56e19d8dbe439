"""Containers as ERPGo's docker-compose.yml runs them: `/erpgo health` and `/erpgo logs` by the default
ERPGO_CONTAINERS and by ERPGO_COMPOSE_PROJECT, a one-shot migrator, roles found by compose service."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from bot.settings import load_settings
from bot.targets import RoleNotFound, Targets
from bot.targets.watched import Watched, WatchedContainer
from demo.launch import compose_labels
from demo.services import DockerEngine

GREEN, RED, GREY = ":large_green_circle:", ":red_circle:", ":white_circle:"
LINE = re.compile(r"^(:[a-z_]+:) \*(.+?)\* — (.*)$")
REAL_CONTAINERS = {"erpgo-api", "erpgo-postgres", "erpgo-redis", "erpgo-worker", "erpgo-migrator"}


def docker_lines(message: dict) -> dict[str, tuple[str, str]]:
    """{container: (emoji, title)} of the Docker lines of a report headline."""
    lines = {}
    for block in message["blocks"]:
        if block["type"] == "section":
            for line in block["text"]["text"].splitlines():
                match = LINE.match(line)
                if match and match.group(2).startswith("Docker"):
                    lines[match.group(2).removeprefix("Docker").strip()] = (match.group(1), match.group(3))
    return lines


async def report(bot, text: str) -> dict:
    bot.slack.reset()
    await bot.command(text)
    [head] = bot.slack.channel_messages("C0OPS")
    return head


def content(message: dict) -> str:
    return message.get("text", "") + str(message.get("blocks", ""))


@pytest.fixture
def completed_migrator(docker_engine: DockerEngine, erpgo_containers: str) -> str:
    """erpgo-migrator as `docker compose up` leaves it: run once, exited 0 (made afresh: a prune elsewhere in
    the suite may have removed the stopped one)."""
    docker_engine.run("erpgo-migrator", "echo migrations applied", run_args=compose_labels("migrator"))
    docker_engine.docker("wait", "erpgo-migrator")
    return "erpgo-migrator"


@pytest.fixture
def failed_migrator(docker_engine: DockerEngine, erpgo_containers: str) -> Iterator[str]:
    """erpgo-migrator as it is when a migration failed (exit 1); the one that exited 0 is back afterwards."""
    docker_engine.run("erpgo-migrator", "echo 'migration 0042 failed' >&2; exit 1", run_args=compose_labels("migrator"))
    docker_engine.docker("wait", "erpgo-migrator")
    yield "erpgo-migrator"
    docker_engine.run("erpgo-migrator", "echo migrations applied", run_args=compose_labels("migrator"))
    docker_engine.docker("wait", "erpgo-migrator")


async def test_the_default_containers_are_the_real_compose_names_and_all_green(start_bot, healthy_targets):
    assert load_settings().erpgo_containers == ["erpgo-api", "erpgo-postgres", "erpgo-redis"]
    bot = await start_bot(**healthy_targets)
    lines = docker_lines(await report(bot, "health"))
    assert set(lines) == {"erpgo-api", "erpgo-postgres", "erpgo-redis"}
    assert all(emoji == GREEN for emoji, _ in lines.values()), lines


async def test_compose_project_watches_every_container_and_the_migrator_is_completed(
    start_bot, healthy_targets, completed_migrator
):
    bot = await start_bot(**healthy_targets, erpgo_compose_project="erpgo")
    head = await report(bot, "health")
    lines = docker_lines(head)
    assert set(lines) == REAL_CONTAINERS
    assert all(emoji == GREEN for emoji, _ in lines.values()), lines
    assert lines["erpgo-migrator"][1].startswith("completed (exit code 0, a one-shot container), finished")
    assert lines["erpgo-worker"][1].startswith("running")
    assert "CRITICAL" not in content(head)


async def test_a_migrator_that_failed_is_red_in_both_modes(start_bot, healthy_targets, failed_migrator):
    by_project = await start_bot(**healthy_targets, erpgo_compose_project="erpgo")
    lines = docker_lines(await report(by_project, "health"))
    assert lines[failed_migrator][0] == RED and "exited (exit code 1)" in lines[failed_migrator][1]
    assert all(emoji == GREEN for name, (emoji, _) in lines.items() if name != failed_migrator), lines

    by_name = await start_bot(**healthy_targets, erpgo_containers=f"erpgo-api,erpgo-postgres,{failed_migrator}")
    lines = docker_lines(await report(by_name, "health"))
    assert lines[failed_migrator][0] == RED and set(lines) == {"erpgo-api", "erpgo-postgres", failed_migrator}


@pytest.fixture
def compose_project(docker_engine: DockerEngine) -> Iterator[str]:
    """A compose project of its own whose containers are not named after their services."""
    project = f"shop{uuid.uuid4().hex[:6]}"
    made = [f"{project}-backend-1", f"{project}-db-1", f"{project}-migrate-run-3f2a1c"]
    docker_engine.run(
        made[0],
        'echo \'2025-11-30T01:02:03.000Z ERR Failed to login user error="UNAUTHORIZED: invalid credentials" '
        "email=shop@example.com'; sleep 100000",
        run_args=compose_labels("api", project),
    )
    docker_engine.run(made[1], "sleep 100000", run_args=compose_labels("postgres", project))
    # what `docker compose run migrate` leaves behind: not part of what `up` runs
    docker_engine.run(
        made[2], "exit 2", run_args=[*compose_labels("migrate", project), "--label", "com.docker.compose.oneoff=True"]
    )
    yield project
    docker_engine.remove(*made)


async def test_roles_come_from_the_compose_service_not_the_name(start_bot, docker_engine, compose_project):
    bot = await start_bot(docker_host=docker_engine.host, erpgo_compose_project=compose_project)
    lines = docker_lines(await report(bot, "health"))
    assert set(lines) == {f"{compose_project}-backend-1", f"{compose_project}-db-1"}, "the one-off run is left out"

    head = await report(bot, "logs")
    assert f"Logs {compose_project}-backend-1" in content(head) and "1 failed login" in content(head)

    targets = Targets(bot.settings)
    try:
        assert await targets.container_of("postgres") == f"{compose_project}-db-1"
        with pytest.raises(RoleNotFound, match=f"compose project {compose_project} has no service redis"):
            await targets.container_of("redis")
    finally:
        await targets.close()


async def test_a_project_without_an_api_says_so_instead_of_guessing(start_bot, docker_engine, names):
    project = f"empty{uuid.uuid4().hex[:6]}"
    worker = names("worker")
    docker_engine.run(worker, "sleep 100000", run_args=compose_labels("worker", project))
    bot = await start_bot(docker_host=docker_engine.host, erpgo_compose_project=project)
    head = await report(bot, "logs")
    assert f"no watched container runs api (compose project {project} has no service api)" in content(head)
    assert GREY in content(head)

    nothing = await start_bot(docker_host=docker_engine.host, erpgo_compose_project="no-such-project")
    lines = docker_lines(await report(nothing, "health"))
    assert lines[""] == (RED, "no containers in compose project no-such-project")


def watched(*names: str, services: tuple[str | None, ...] = (), project: str | None = None) -> Watched:
    padded = list(services) + [None] * (len(names) - len(services))
    return Watched(tuple(WatchedContainer(n, s) for n, s in zip(names, padded, strict=True)), project)


@pytest.mark.parametrize(
    "names, api, postgres, redis",
    [
        (("erpgo-api", "erpgo-postgres", "erpgo-redis"), "erpgo-api", "erpgo-postgres", "erpgo-redis"),
        (("api", "postgres", "redis"), "api", "postgres", "redis"),
        (("erpgo_api_1", "erpgo_postgres_1", "erpgo_redis_1"), "erpgo_api_1", "erpgo_postgres_1", "erpgo_redis_1"),
        (("erpgo-redis-1", "erpgo-db-1", "erpgo-api-2"), "erpgo-api-2", "erpgo-db-1", "erpgo-redis-1"),
        (("shop", "mongodb"), "shop", None, None),  # the API is the first listed; no guessing from "db" inside a word
    ],
)
def test_roles_by_name_in_a_list(names, api, postgres, redis):
    found = watched(*names)
    assert (found.of_role("api"), found.of_role("postgres"), found.of_role("redis")) == (api, postgres, redis)


def test_roles_by_compose_service():
    found = watched("a-1", "b-1", "c-1", services=("redis", "api", "postgres"), project="p")
    assert (found.of_role("api"), found.of_role("postgres"), found.of_role("redis")) == ("b-1", "c-1", "a-1")
    assert watched("x-1", services=("worker",), project="p").of_role("api") is None
