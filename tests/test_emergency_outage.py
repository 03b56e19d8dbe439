"""`/erpgo outage` and `docker.restart_all` on the test engine, with containers labelled as Docker Compose
labels ERPGo's: the verdict names what failed first and what depends on it, from the times the engine
recorded; the emergency restart goes tier by tier, waits for health, and stops at the first container
that does not come back healthy."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import pytest

from bot.core.findings import Status
from bot.core.registry import Failed
from bot.local.text import render_text
from bot.targets.docker_models import parse_time
from runbooks.emergency.outage import said
from tests.db_support import one, run_verb, text_of
from tests.emergency_support import CHANNEL, POLICY, approval_messages, audit, click, current, remediate
from tests.support import eventually_sync

LONG_RUNNING = "trap 'exit 0' TERM; sleep 100000 & wait"
HEALTHY_API = "trap 'exit 0' TERM; touch /tmp/ok; sleep 100000 & wait"
# healthy when first started, unhealthy once restarted
API_BROKEN_BY_A_RESTART = (
    "trap 'exit 0' TERM; if [ -f /tmp/started ]; then rm -f /tmp/ok; else touch /tmp/started /tmp/ok; fi; "
    "sleep 100000 & wait"
)


class Deployment:
    def __init__(self, engine, names, api_script: str = HEALTHY_API):
        self.engine = engine
        self.project = f"em{uuid.uuid4().hex[:8]}"
        self.name = {
            service: names(service) for service in ("postgres", "redis", "api", "worker", "migrator", "prometheus")
        }
        self._run("postgres", LONG_RUNNING, health_cmd="true")
        self._run("redis", LONG_RUNNING)
        self._run("api", api_script, health_cmd="test -f /tmp/ok")
        self._run("worker", LONG_RUNNING)
        self._run("migrator", "exit 0")
        self._run("prometheus", LONG_RUNNING)
        for service in ("postgres", "api"):
            eventually_sync(lambda s=service: self.health(s) == "healthy", timeout=20, what=f"{service} healthy")

    def _run(self, service: str, script: str, health_cmd: str | None = None) -> None:
        labels = [
            "--label",
            f"com.docker.compose.project={self.project}",
            "--label",
            f"com.docker.compose.service={service}",
        ]
        self.engine.run(self.name[service], script, health_cmd=health_cmd, run_args=labels)

    def inspect(self, service: str, template: str) -> str:
        return self.engine.docker("inspect", "--format", template, self.name[service]).strip()

    def health(self, service: str) -> str:
        return self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def started_at(self, service: str) -> datetime:
        started = parse_time(self.inspect(service, "{{.State.StartedAt}}"))
        assert started is not None
        return started

    @property
    def settings(self) -> dict:
        return {"docker_host": self.engine.host, "erpgo_compose_project": self.project}


@pytest.fixture
def deployment(docker_engine, names) -> Deployment:
    return Deployment(docker_engine, names)


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


# --- /erpgo outage ----------------------------------------------------------------------------------


async def test_outage_verdict_names_the_database_first_and_what_depends_on_it(deployment):
    engine, name = deployment.engine, deployment.name
    engine.docker("stop", "-t", "5", name["postgres"])
    time.sleep(1.1)  # the failures must be a second apart: the engine records their times to the nanosecond
    engine.docker("exec", name["api"], "rm", "/tmp/ok")
    eventually_sync(lambda: deployment.health("api") == "unhealthy", timeout=20, what="api unhealthy")
    engine.docker("kill", name["worker"])

    started = time.perf_counter()
    findings = await run_verb("outage", None, **deployment.settings)
    elapsed = time.perf_counter() - started

    verdict = one(findings, "Verdict")
    assert verdict.status is Status.CRIT
    assert verdict.title.startswith(f"the database failed first ({name['postgres']} exited (exit code 0)")
    api_at = verdict.title.index("→ the API:")
    assert f"{name['api']} unhealthy" in verdict.title[api_at:]
    assert verdict.title.index("→ the workers:") > api_at and "exit code 137" in verdict.title
    assert "start with the database" in text_of(verdict)
    [proposal] = verdict.proposals
    assert proposal.action == "docker.restart_all"
    assert [c["name"] for c in proposal.args["containers"]][:2] == [name["postgres"], name["redis"]]
    assert name["migrator"] not in [c["name"] for c in proposal.args["containers"]]

    assert one(findings, f"Docker {name['migrator']}").status is Status.OK, "a one-shot that exited 0 is fine"
    assert one(findings, f"Docker {name['redis']}").status is Status.OK
    assert one(findings, f"Docker {name['worker']}").status is Status.CRIT
    engine_finding = one(findings, "Docker engine")
    assert engine_finding.title.startswith("answering, version") and "die" in engine_finding.title
    assert any(name["worker"] in line and "die" in line for line in engine_finding.evidence)
    for skipped in ("ERPGo API", "PostgreSQL", "Redis", "Filesystem"):
        assert one(findings, skipped).status is Status.SKIPPED
    assert one(findings, "Host memory").status in (Status.OK, Status.WARN, Status.CRIT)
    assert elapsed < 6, f"the report takes about as long as its slowest probe, not {elapsed:.1f} s"
    print(f"\noutage report of {len(findings)} findings in {elapsed:.2f} s")


async def test_outage_with_nothing_down_says_so(deployment):
    findings = await run_verb("outage", None, **deployment.settings)
    verdict = one(findings, "Verdict")
    assert verdict.title.startswith("no outage") and verdict.proposals == []
    engine = one(findings, "Docker engine")
    migrator = [e for e in engine.data["events"] if e["name"] == deployment.name["migrator"]]
    assert "completed" in {said(e) for e in migrator} and "die" not in {said(e) for e in migrator}
    assert "completed" in engine.title
    # the engine is shared with other tests: only their containers' deaths may colour it
    others_died = any(said(e) in ("die", "oom") for e in engine.data["events"])
    assert engine.status is (Status.WARN if others_died else Status.OK)


async def test_outage_with_the_engine_down_starts_there(tmp_path):
    findings = await run_verb("outage", None, docker_host=f"unix://{tmp_path}/docker.sock")
    verdict = one(findings, "Verdict")
    assert verdict.status is Status.CRIT and verdict.title.startswith("the Docker engine does not answer")
    assert "systemctl status docker" in text_of(verdict)


# --- docker.restart_all -------------------------------------------------------------------------------


async def test_emergency_restart_through_two_approvers_goes_tier_by_tier(
    start_bot, deployment, fresh_database, policy_file
):
    engine, name = deployment.engine, deployment.name
    engine.docker("stop", "-t", "5", name["worker"])
    before = {service: deployment.started_at(service) for service in name}
    bot_db = fresh_database("bot")
    bot = await start_bot(bot_database_url=bot_db, chatops_policy_file=policy_file, **deployment.settings)
    await bot.command("outage", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    assert "Verdict" in render_text(head) and "the workers failed first" in render_text(head)
    [message] = approval_messages(bot.slack, head["ts"])
    assert "Needs 2 approvals" in render_text(message) and "Restart the deployment's 5 containers" in render_text(
        message
    )

    await click(bot, message, "U0BOB")
    assert deployment.started_at("postgres") == before["postgres"], "one approval restarts nothing"
    restarting_from = str(int(time.time()))
    await click(bot, message, "U0CAROL")

    done = render_text(current(bot.slack, message))
    assert "approved by @U0BOB and @U0CAROL — executed: restarted 5 containers in dependency order" in done
    after = {service: deployment.started_at(service) for service in name}
    assert after["migrator"] == before["migrator"], "the one-shot job is left alone"
    assert all(after[s] > before[s] for s in ("postgres", "redis", "api", "worker", "prometheus"))
    data_tier = max(after["postgres"], after["redis"])
    assert data_tier < after["api"] < after["worker"] < after["prometheus"], after
    events = [
        json.loads(line)
        for line in engine.docker(
            "events",
            "--since",
            restarting_from,
            "--until",
            str(int(time.time()) + 1),
            "--filter",
            f"label=com.docker.compose.project={deployment.project}",
            "--format",
            "{{json .}}",
        ).splitlines()
    ]
    seen = [
        (e["Actor"]["Attributes"]["name"], e["Action"])
        for e in events
        if e["Action"] in ("start", "health_status: healthy")
    ]
    database_back = seen.index((name["postgres"], "health_status: healthy"), seen.index((name["postgres"], "start")))
    assert database_back < seen.index((name["api"], "start")), "the API waited for the database's health check"
    assert "/health: not checked" in done
    assert [r[1] for r in await audit(bot_db)][-2:] == ["executed", "verified"]


async def test_a_container_that_does_not_come_back_healthy_stops_the_sequence(docker_engine, names):
    deployment = Deployment(docker_engine, names, api_script=API_BROKEN_BY_A_RESTART)
    docker_engine.docker("stop", "-t", "5", deployment.name["worker"])
    before = {service: deployment.started_at(service) for service in deployment.name}
    verdict = one(await run_verb("outage", None, **deployment.settings), "Verdict")
    [proposal] = verdict.proposals

    with pytest.raises(Failed) as stopped:
        await remediate("docker.restart_all", None, proposal.args | {"grace_seconds": 1}, **deployment.settings)

    text = str(stopped.value)
    api = deployment.name["api"]
    assert text.startswith(f"stopped at step 2 of 4: {api} did not come back healthy"), text
    assert f"{api} (the API): unhealthy after the restart (last check: exit code 1" in text
    assert f"not restarted: {deployment.name['worker']}, {deployment.name['prometheus']}" in text
    after = {service: deployment.started_at(service) for service in deployment.name}
    assert after["postgres"] > before["postgres"] and after["api"] > before["api"]
    assert after["worker"] == before["worker"] and after["prometheus"] == before["prometheus"]
