"""`docker.restart` and `docker.start` through the approval engine: proposed by `/erpgo app`, approved
by a colleague over Slack (signed clicks to the bot's real endpoint), executed once on the suite's
own Docker engine, refused when the container changed in between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from bot.core.registry import Refused
from bot.local.text import render_text
from bot.settings import load_settings
from bot.targets.docker import Docker
from tests import harness
from tests.container_support import CHANNEL, STAYS_UP, proposed
from tests.support import eventually


def now_text(bot, message: dict) -> str:
    return render_text(bot.slack.messages[CHANNEL, message["ts"]])


async def audit(dsn: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT actor, event, action, outcome FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


async def unhealthy(docker: Docker, name: str) -> bool:
    return (await docker.inspect(name)).state.health == "unhealthy"


async def test_restart_approved_by_many_concurrent_clicks_runs_once(
    start_bot, docker_bot_settings, docker, docker_engine, names
):
    name = names("api")
    docker_engine.run(name, STAYS_UP, health_cmd="false")
    await eventually(lambda: unhealthy(docker, name), what="the health check to fail")
    bot = await start_bot(erpgo_containers=name, **docker_bot_settings)
    message = await proposed(bot, f"app {name}")
    before = await docker.inspect(name)
    text = render_text(message)
    assert f"Restart container {name} ({before.id[:12]})" in text
    assert f"docker restart --time 10 {before.id[:12]}" in text and "SIGTERM, up to 10 s to exit" in text
    assert "re-checked first: the same container id, still running, started" in text
    since = datetime.now(UTC)

    clicks = [bot.slack.click(message, "approval.approve", user_id=user) for user in ("U0BOB", "U0CAROL") * 4]
    answers = await asyncio.gather(*clicks)
    await bot.settle()

    assert all(answer.status == 200 and answer.within_ack_deadline for answer in answers)
    after = await docker.inspect(name)
    assert after.id == before.id and after.state.running
    assert after.state.started_at > before.state.started_at
    events = await docker.events(since, datetime.now(UTC), {"type": "container", "container": name})
    assert [e["Action"] for e in events].count("restart") == 1, "exactly one restart"
    assert [e["Action"] for e in events].count("start") == 1
    rows = await audit(docker_bot_settings["bot_database_url"])
    [approver] = [r[0] for r in rows if r[1] == "approved"]
    assert [r for r in rows if r[1] == "executed"] == [(approver, "executed", "docker.restart", "succeeded")]
    assert len([r for r in rows if r[1] == "refused" and r[3].startswith("already handled")]) == 7
    assert "— executed: restarted " + name in now_text(bot, message)
    assert "with a 10 s grace period: running again since" in now_text(bot, message)
    assert "Not fixed*: running but unhealthy" in now_text(bot, message), "its health check still fails"


async def test_stopped_container_started_through_an_approval(
    start_bot, docker_bot_settings, docker, docker_engine, names
):
    name = names("api")
    docker_engine.run(name, STAYS_UP)
    docker_engine.docker("stop", "-t", "5", name)
    bot = await start_bot(erpgo_containers=name, **docker_bot_settings)
    message = await proposed(bot, f"app {name}")
    before = await docker.inspect(name)
    assert f"Start container {name}" in render_text(message) and f"docker start {before.id[:12]}" in render_text(
        message
    )

    await bot.slack.click(message, "approval.approve", user_id="U0ALICE")  # the requester: refused
    await bot.settle()
    assert not (await docker.inspect(name)).state.running
    await bot.slack.click(message, "approval.approve", user_id="U0BOB")
    await bot.settle()

    after = await docker.inspect(name)
    assert after.state.running and after.state.started_at > before.state.started_at
    assert f"approved by @U0BOB — executed: started {name}" in now_text(bot, message)


# --- the world changed between the proposal and the click -----------------------------------------


async def run_remediation(docker_engine, action: str, args: dict) -> str:
    return await harness.remediate(action, load_settings(docker_host=docker_engine.host), **args)


async def proposal_args(docker_engine, name: str) -> dict:
    from tests.db_support import run_verb

    findings = await run_verb(f"app {name}", None, docker_host=docker_engine.host, erpgo_containers=name)
    [proposal] = [p for f in findings for p in f.proposals]
    return proposal.args


async def test_restart_is_refused_once_someone_restarted_it_already(docker, docker_engine, names):
    name = names("api")
    docker_engine.run(name, STAYS_UP, health_cmd="false")
    await eventually(lambda: unhealthy(docker, name), what="the health check to fail")
    args = await proposal_args(docker_engine, name)
    docker_engine.docker("restart", "-t", "5", name)
    restarted = await docker.inspect(name)

    with pytest.raises(Refused, match=f"{name} was started again at .* it has been restarted already"):
        await run_remediation(docker_engine, "docker.restart", args)

    assert (await docker.inspect(name)).state.started_at == restarted.state.started_at, "left alone"


async def test_start_is_refused_for_a_recreated_or_running_container(docker, docker_engine, names):
    name = names("api")
    docker_engine.run(name, "exit 3")
    docker_engine.docker("wait", name)
    args = await proposal_args(docker_engine, name)
    assert args["status"] == "exited"
    docker_engine.run(name, "sleep 100")  # removed, and a new container under the old name

    with pytest.raises(Refused, match="no longer exists: it was removed or recreated"):
        await run_remediation(docker_engine, "docker.start", args)

    docker_engine.docker("stop", "-t", "0", name)
    fresh = await proposal_args(docker_engine, name)
    docker_engine.docker("start", name)
    with pytest.raises(Refused, match=r"is running again .* there is nothing to start"):
        await run_remediation(docker_engine, "docker.start", fresh)
    restart = {"name": name, "container_id": fresh["container_id"], "status": "running", "grace_seconds": 999}
    with pytest.raises(Refused, match="grace period must be 0 to 300 seconds"):
        await run_remediation(docker_engine, "docker.restart", restart)


# --- alert triage -------------------------------------------------------------------------------


async def test_container_down_alert_is_triaged_with_a_start_to_approve(
    start_bot, docker_bot_settings, docker, docker_engine, names
):
    name = names("api")
    docker_engine.run(name, "exit 3")
    docker_engine.docker("wait", name)
    token = "am-token-" + name[-6:]
    bot = await start_bot(
        erpgo_containers=name,
        alert_webhook_token=token,
        erpgo_alert_channel="C0ALERTS",
        erpgo_slack_channel_interval=0.05,
        **docker_bot_settings,
    )
    labels = {"alertname": "DockerContainerDown", "severity": "critical", "name": name}
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="DockerContainerDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "DockerContainerDown"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"{name} is down"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{name} is down"},
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "container-down-1",
            }
        ],
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(
            bot.base_url + "/alerts/alertmanager", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 200

    def approval_posted() -> list[dict]:
        heads = bot.slack.channel_messages("C0ALERTS")
        thread = bot.slack.thread("C0ALERTS", heads[0]["ts"]) if heads else []
        return [m for m in thread if bot.slack.buttons(m)]

    [approval] = await eventually(approval_posted, timeout=30, what="the triage's approval message")
    thread = bot.slack.thread("C0ALERTS", bot.slack.channel_messages("C0ALERTS")[0]["ts"])
    report = "\n".join(render_text(m) for m in thread)
    assert "Triage: DockerContainerDown" in report
    assert f"Container {name}" in report and "exited: exit code 3" in report
    assert f"Start container {name}" in render_text(approval) and "Requested by alertmanager" in render_text(approval)
    await bot.settle()
