"""`/erpgo disk` against the suite's own Docker engine, PostgreSQL and this machine's filesystem: a log that
grows, a dangling image pruned through a real approval, watched stopped containers kept, statvfs read."""

from __future__ import annotations

import copy
import os
import shutil
import uuid

import pytest

from bot.core.findings import Status
from bot.core.registry import Refused
from bot.local.text import render_text
from bot.settings import load_settings
from runbooks.disk import DISK_CRIT_PCT, DISK_WARN_PCT, Usage, read_usage, usage_finding, usage_status
from tests import harness
from tests.db_support import one, run_verb, text_of
from tests.support import eventually

CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB]
verbs:
  "*": [everyone]
actions:
  docker.prune:
    approvers: [oncall]
"""
CHATTY = "i=0; while :; do i=$((i+1)); echo line $i of a log nobody rotates; sleep 0.01; done"


def image_ids(docker_engine) -> str:
    return docker_engine.docker("images", "-aq", "--no-trunc")


def container_names(docker_engine) -> list[str]:
    return docker_engine.docker("ps", "-a", "--format", "{{.Names}}").split()


@pytest.fixture
def dangling_image(docker_engine, names):
    """(the id of a dangling image only stopped containers use, its tag's name): the tag moved on to a newer commit."""
    tag = f"inf-disk:{uuid.uuid4().hex[:6]}"
    dangling = ""
    for role in ("old", "new"):
        name = names(role)
        docker_engine.run(name, "head -c 700000 /dev/urandom > /blob")
        docker_engine.docker("wait", name)
        docker_engine.docker("commit", name, tag)
        if role == "old":
            dangling = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
    yield dangling, tag
    docker_engine.docker("rmi", "-f", tag)


@pytest.fixture
def deployment(docker_engine, names):
    """Watched containers as a compose project has them: the API running and logging, a one-shot migrator of
    the same project that exited 0, and a watched container that is stopped."""
    project = "infdisk" + uuid.uuid4().hex[:6]
    labels = ["--label", f"com.docker.compose.project={project}"]
    api, migrator, stopped = names("api"), names("migrator"), names("stopped")
    docker_engine.run(api, CHATTY, run_args=labels)
    docker_engine.run(migrator, "echo migrations applied", run_args=labels)
    docker_engine.run(stopped, "exit 0")
    for name in (migrator, stopped):
        docker_engine.docker("wait", name)
    return {"api": api, "migrator": migrator, "stopped": stopped, "project": project}


async def test_prune_through_an_approval_reclaims_the_dangling_image_and_keeps_watched_containers(
    start_bot, docker_engine, fresh_database, tmp_path, dangling_image, deployment
):
    dangling, tag = dangling_image
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    bot = await start_bot(
        bot_database_url=fresh_database("bot"),
        chatops_policy_file=str(policy),
        docker_host=docker_engine.host,
        erpgo_containers=f"{deployment['api']},{deployment['stopped']}",
        erpgo_disk_paths=str(tmp_path),
    )

    await bot.command("disk", user_id="U0ALICE")

    head = bot.slack.channel_messages(CHANNEL)[-1]
    report = render_text(head)
    assert "Docker disk" in report and "a prune frees" in report
    details = "\n".join(render_text(m) for m in bot.slack.thread(CHANNEL, head["ts"]))
    assert "Container logs" in report and deployment["api"] in details  # other tests' logs may be larger
    assert f"Filesystem {tmp_path}" in report
    [approval] = [m for m in bot.slack.thread(CHANNEL, head["ts"]) if bot.slack.buttons(m)]
    approval = copy.deepcopy(approval)
    shown = render_text(approval)
    short = dangling.removeprefix("sha256:")[:12]
    assert "Prune Docker:" in shown and "dangling image" in shown and "reclaimable" in shown
    assert f"docker rmi {short}" in shown and "What will run" in shown
    assert f"{deployment['migrator']} (compose project {deployment['project']})" in shown
    assert f"{deployment['stopped']} (watched)" in shown
    assert "never: volumes" in shown
    assert dangling in image_ids(docker_engine), "nothing is removed before someone approves"

    result = await bot.slack.click(approval, "approval.approve", user_id="U0BOB")
    assert result.status == 200
    await bot.settle()

    decided = render_text(bot.slack.messages[CHANNEL, approval["ts"]])
    assert "approved by @U0BOB — executed: reclaimed" in decided
    assert "dangling image" in decided and short in decided and "volumes untouched" in decided
    assert dangling not in image_ids(docker_engine)
    assert docker_engine.docker("image", "inspect", "--format", "{{.Id}}", tag).strip(), "a tagged image is kept"
    still_there = container_names(docker_engine)
    assert deployment["migrator"] in still_there and deployment["stopped"] in still_there
    assert deployment["api"] in still_there


async def test_the_largest_log_is_found_and_grows_between_two_reports(docker_engine, deployment):
    settings = {"docker_host": docker_engine.host, "erpgo_containers": deployment["api"]}

    async def api_log() -> int | None:
        finding = one(await run_verb("disk", None, **settings), "Container logs")
        sizes = {log["container"]: log["size"] for log in finding.data["logs"]}
        return sizes.get(deployment["api"]) or None

    first = await eventually(api_log, what="the API's log to have lines")
    later = await eventually(lambda: _grown(api_log, first), what="the log to grow")
    assert later > first
    finding = one(await run_verb("disk", None, **settings), "Container logs")
    assert f"{deployment['api']}: " in text_of(finding) and "not rotated" in text_of(finding)
    assert "max-size: 10m" in text_of(finding)
    assert finding.status is Status.WARN, "a log that grows until the disk is full is not green"


async def _grown(read, floor: int) -> int | None:
    size = await read()
    return size if size and size > floor else None


async def test_prune_refuses_when_what_was_approved_is_no_longer_prunable(docker_engine, names):
    gone = names("gone")
    docker_engine.run(gone, "exit 0")
    docker_engine.docker("wait", gone)
    container_id = docker_engine.docker("inspect", "--format", "{{.Id}}", gone).strip()
    finding = one(await run_verb("disk", None, docker_host=docker_engine.host), "Docker disk")
    [proposal] = finding.proposals
    assert proposal.args["containers"].get(container_id) == gone
    docker_engine.remove(gone)  # someone removed it by hand before the approval

    only_gone = {"containers": {container_id: gone}, "images": {}, "build_cache": 0, "reclaimable": 1}
    with pytest.raises(Refused, match=f"{gone}: no longer prunable"):
        await harness.remediate("docker.prune", load_settings(docker_host=docker_engine.host), **only_gone)


# --- filesystems ------------------------------------------------------------------------------


def test_statvfs_is_read_as_df_reads_it(tmp_path):
    usage = read_usage(str(tmp_path))
    total, used, free = shutil.disk_usage(tmp_path)
    assert usage.total == total
    assert abs(usage.available - free) < 64 * 1024**2  # other processes write while we read
    assert abs(usage.used - used) < 64 * 1024**2
    assert 0 < usage.percent < 100 and usage.inodes_total > 0
    assert usage.device == os.stat(tmp_path).st_dev


def _usage(used_pct: float, inodes_pct: float = 1.0) -> Usage:
    total = 1000 * 1024**2
    used = int(total * used_pct / 100)
    return Usage("/data", 1, total, used, total - used, 1000, int(10 * inodes_pct))


def test_thresholds_are_the_guides_85_and_90_percent():
    assert (DISK_WARN_PCT, DISK_CRIT_PCT) == (85.0, 90.0)
    assert usage_status(84.9) is Status.OK
    assert usage_status(85.0) is Status.WARN and usage_status(89.9) is Status.WARN
    assert usage_status(90.0) is Status.CRIT and usage_status(100.0) is Status.CRIT
    assert usage_finding(_usage(50), []).status is Status.OK
    assert usage_finding(_usage(86), []).status is Status.WARN
    crit = usage_finding(_usage(95), ["/var/lib/docker"])
    assert crit.status is Status.CRIT and "95.0 % used" in crit.title
    assert "same filesystem: /var/lib/docker" in text_of(crit) and "find /data -xdev" in text_of(crit)
    inodes = usage_finding(_usage(10, inodes_pct=92), [])
    assert inodes.status is Status.CRIT and "of inodes used" in inodes.title


async def test_configured_paths_are_judged_and_a_missing_path_is_said(tmp_path):
    (tmp_path / "sub").mkdir()
    findings = await run_verb("disk", None, erpgo_disk_paths=f"{tmp_path},{tmp_path}/sub,/no/such/path")
    disk = [f for f in findings if f.component.startswith("Filesystem")]
    assert [f.component for f in disk] == ["Filesystem /no/such/path", f"Filesystem {tmp_path}"]
    missing, real = disk
    assert missing.status is Status.ERROR and "no such path" in missing.title
    assert real.status is usage_status(read_usage(str(tmp_path)).percent)
    assert f"same filesystem: {tmp_path}/sub" in text_of(real)
    assert real.section == "Infrastructure Issues › Disk Space Issues › Check Disk Usage"


async def test_nothing_configured_is_skipped_never_a_crash():
    findings = await run_verb("disk", None, docker_host="unix:///nonexistent/docker.sock")
    by_component = {f.component: f for f in findings}
    assert (
        by_component["Filesystem"].status is Status.SKIPPED and "ERPGO_DISK_PATHS" in by_component["Filesystem"].title
    )
    assert by_component["PostgreSQL disk"].status is Status.SKIPPED
    assert by_component["Docker disk"].status is Status.CRIT and "unreachable" in by_component["Docker disk"].title


# --- the database -----------------------------------------------------------------------------


async def test_database_and_wal_sizes_and_what_a_plain_role_cannot_see(fresh_database, postgres_server):
    dsn = fresh_database("disk")
    finding = one(await run_verb("disk", dsn), "PostgreSQL disk")
    assert finding.status is Status.OK
    assert finding.data["size"] > 0 and finding.data["wal_bytes"] > 0 and finding.data["wal_files"] >= 1
    assert "WAL:" in text_of(finding) and "max_wal_size" in text_of(finding)

    role = "inf_plain_" + uuid.uuid4().hex[:6]
    postgres_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'plain-pw'")
    try:
        plain = postgres_server.dsn(dsn.rsplit("/", 1)[1], user=role, password="plain-pw")
        limited = one(await run_verb("disk", plain), "PostgreSQL disk")
        assert limited.data["wal_bytes"] is None and "WAL size not visible" in limited.title
        assert f"GRANT pg_monitor TO {role}" in text_of(limited)
        assert "plain-pw" not in text_of(limited)
    finally:
        postgres_server.psql(f"DROP ROLE {role}")
