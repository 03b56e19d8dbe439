"""`/erpgo restart|stop|start <container>`: actions an engineer decides on, proposed for any watched container,
approved by a colleague over Slack and run on the suite's own Docker engine — and refused when the world
changed in between; `PostgreSQLDown` triage proposing the database container's start."""

from __future__ import annotations

import copy

import pytest

from bot.core.findings import Finding, Status
from bot.core.registry import Refused, UsageError
from bot.local.text import render_text
from bot.settings import load_settings
from bot.targets.docker import Docker
from runbooks.containers.ondemand import ActionArgs, parse_action
from tests import harness
from tests.support import eventually

CHANNEL = "C0OPS"
TERM_QUICKLY = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB]
verbs:
  "*": [everyone]
actions:
  "docker.*":
    approvers: [oncall]
"""


async def verb(docker_engine, words: str, *watched: str) -> Finding:
    settings = load_settings(docker_host=docker_engine.host, erpgo_containers=",".join(watched))
    [finding] = await harness.run_words(words, settings)
    return finding


async def remediate(docker_engine, action: str, args: dict) -> str:
    return await harness.remediate(action, load_settings(docker_host=docker_engine.host), **args)


async def test_stop_of_a_running_container_is_approved_and_it_stops(
    start_bot, fresh_database, tmp_path, docker, docker_engine, names
):
    name = names("api")
    docker_engine.run(name, TERM_QUICKLY)
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    bot = await start_bot(
        bot_database_url=fresh_database("bot"),
        chatops_policy_file=str(policy),
        docker_host=docker_engine.host,
        erpgo_containers=name,
    )
    await bot.command(f"stop {name}", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    [approval] = [copy.deepcopy(m) for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    before = await docker.inspect(name)
    text = render_text(approval)
    assert f"Stop container {name} ({before.id[:12]})" in text
    assert f"docker stop --time 10 {before.id[:12]}" in text and f"asked for with `/erpgo stop {name}`" in text
    assert before.state.running, "nothing is stopped before someone approves"

    await bot.slack.click(approval, "approval.approve", user_id="U0BOB")
    await bot.settle()

    after = await docker.inspect(name)
    assert not after.state.running and after.state.status == "exited"
    decided = render_text(bot.slack.messages[CHANNEL, approval["ts"]])
    assert f"approved by @U0BOB — executed: stopped {name}" in decided


async def test_stop_is_refused_once_someone_restarted_or_stopped_it(docker, docker_engine, names):
    name = names("api")
    docker_engine.run(name, TERM_QUICKLY)
    [proposal] = (await verb(docker_engine, f"stop {name}", name)).proposals
    assert proposal.action == "docker.stop"
    docker_engine.docker("restart", "-t", "1", name)
    with pytest.raises(Refused, match=r"was started again at .* someone acted on it meanwhile"):
        await remediate(docker_engine, "docker.stop", proposal.args)
    assert (await docker.inspect(name)).state.running, "left alone"

    docker_engine.docker("stop", "-t", "1", name)
    with pytest.raises(Refused, match=r"is exited now .* there is nothing to stop"):
        await remediate(docker_engine, "docker.stop", proposal.args)


async def test_each_verb_proposes_what_fits_the_state(docker_engine, names):
    running, stopped = names("api"), names("worker")
    docker_engine.run(running, TERM_QUICKLY)
    docker_engine.run(stopped, "exit 3")
    docker_engine.docker("wait", stopped)
    watched = (running, stopped)

    restart = await verb(docker_engine, f"restart {running}", *watched)
    assert [p.action for p in restart.proposals] == ["docker.restart"] and restart.status is Status.OK
    # a restart asked of a stopped container is a start, and a stopped container is not green
    start_instead = await verb(docker_engine, f"restart {stopped}", *watched)
    assert [p.action for p in start_instead.proposals] == ["docker.start"] and start_instead.status is Status.WARN
    assert "proposed a start instead" in " ".join(start_instead.details)
    assert (await verb(docker_engine, f"start {running}", *watched)).proposals == []
    assert (await verb(docker_engine, f"stop {stopped}", *watched)).proposals == []
    unknown = await verb(docker_engine, "restart not-watched-here", *watched)
    assert unknown.status is Status.SKIPPED and unknown.proposals == []


async def test_a_misbehaving_database_is_restarted_with_time_to_shut_down(docker, docker_engine, names):
    name = names("postgres")
    docker_engine.run(name, TERM_QUICKLY, health_cmd="false")
    [proposal] = (await verb(docker_engine, f"restart {name}", name)).proposals
    assert proposal.args["grace_seconds"] == 60 and "every connection is cut" in proposal.reason
    before = await docker.inspect(name)
    result = await remediate(docker_engine, "docker.restart", proposal.args)
    assert result.startswith(f"restarted {name}") and "with a 60 s grace period" in result
    assert (await docker.inspect(name)).state.started_at > before.state.started_at


async def test_postgresql_down_triage_proposes_the_database_containers_start(docker, docker_engine, names):
    name = names("postgres")
    project = name.replace("-", "")[-12:]
    labels = ["--label", f"com.docker.compose.project={project}", "--label", "com.docker.compose.service=postgres"]
    docker_engine.run(name, "exit 1", run_args=labels)
    await eventually(lambda: _exited(docker, name), what="the database container to stop")
    findings = await _triage(load_settings(docker_host=docker_engine.host, erpgo_compose_project=project))
    [database] = [f for f in findings if f.component == f"Database container {name}"]
    assert database.status is Status.CRIT and database.title.startswith("exited (exit code 1)")
    assert [p.action for p in database.proposals] == ["docker.start"]


async def _exited(docker: Docker, name: str) -> bool:
    return (await docker.inspect(name)).state.status == "exited"


async def _triage(settings) -> list[Finding]:
    from bot.alerts.triage import triage_checks
    from bot.app import build_registry
    from bot.context import Actor
    from bot.core.engine import run_checks
    from bot.targets import Targets

    targets = Targets(settings)
    try:
        checks = triage_checks(build_registry(), ["PostgreSQLDown"], {})
        ctx = harness.context(settings, targets, actor=Actor("alertmanager"))
        return await run_checks([c for c in checks if c.name == "database_container"], ctx)
    finally:
        await targets.close()


def test_one_container_name_is_required():
    assert parse_action(["erpgo-api"]) == ActionArgs("erpgo-api")
    for words in ([], ["a", "b"], ["../etc"]):
        with pytest.raises(UsageError):
            parse_action(words)
