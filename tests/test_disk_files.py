"""`/erpgo disk`, steps 1 and 3 on real things: the largest files under ERPGO_DISK_PATHS on this machine's
filesystem (a link to / is never followed), and an unrotated json-file log of the suite's Docker engine
truncated through `docker.truncate_log` — or refused once the container is another one."""

from __future__ import annotations

import os

import pytest

from bot.core.findings import Status
from bot.core.registry import Refused
from bot.settings import load_settings
from runbooks.largest_files import walk
from tests import harness
from tests.db_support import one, run_verb, text_of
from tests.support import eventually

# about 1.5 MB of log lines, then quiet: the size is steady while the test looks at it
NOISY = "yes 'a log line that nobody rotates, written by a service without logging options' | head -n 20000; sleep 600"


async def test_the_largest_files_are_listed_and_links_are_never_followed(tmp_path):
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "deep" / "dump.sql").write_bytes(os.urandom(300_000))
    (tmp_path / "data" / "app.log").write_bytes(os.urandom(100_000))
    (tmp_path / "small.txt").write_bytes(b"x" * 10)
    (tmp_path / "root-link").symlink_to("/")

    findings = await run_verb("disk", None, erpgo_disk_paths=str(tmp_path), docker_host="unix:///nonexistent")

    largest = one(findings, f"Largest files {tmp_path}")
    paths = [entry["path"] for entry in largest.data["files"]]
    assert paths == [str(tmp_path / "data/deep/dump.sql"), str(tmp_path / "data/app.log"), str(tmp_path / "small.txt")]
    assert "dump.sql" in largest.title and largest.status is Status.OK
    assert largest.data["entries"] == 6, "the link to / was not walked"
    assert "never following links" in text_of(largest)


def test_a_walk_stops_at_its_bound_and_says_so(tmp_path):
    for index in range(20):
        (tmp_path / f"f{index}").write_bytes(b"x" * 4096)
    found = walk(str(tmp_path), max_entries=5)
    assert found.stopped == "stopped after 5 entries" and len(found.largest) == 5


@pytest.fixture
def noisy(docker_engine, names):
    """(name, id, log path) of a container whose json-file log is not rotated and holds about 1.5 MB."""
    name = names("noisy")
    container_id = docker_engine.run(name, NOISY)
    path = docker_engine.docker("inspect", "--format", "{{.LogPath}}", name).strip()

    def filled() -> bool:
        return os.path.exists(path) and os.stat(path).st_size > 1024**2

    return name, container_id, path, filled


async def test_an_unrotated_log_is_truncated_after_approval(docker_engine, names, noisy):
    name, _, path, filled = noisy
    rotated = names("rotated")
    docker_engine.run(rotated, NOISY, run_args=["--log-opt", "max-size=10m", "--log-opt", "max-file=3"])
    await eventually(filled, what="the log to hold a megabyte")

    finding = one(await run_verb("disk", None, docker_host=docker_engine.host), "Log rotation")

    assert finding.status is Status.WARN and "not rotated" in finding.title
    assert rotated not in text_of(finding), "a rotated log is not proposed"
    [proposal] = [p for p in finding.proposals if p.args["name"] == name]
    assert proposal.action == "docker.truncate_log" and f"truncate -s 0 {path}" in proposal.preview
    assert 'max-size: "10m"' in proposal.preview
    before = os.stat(path).st_size

    outcome = await harness.remediate(
        "docker.truncate_log", load_settings(docker_host=docker_engine.host), **proposal.args
    )

    assert f"truncated {name}'s log" in outcome and "→ 0 B" in outcome
    assert os.stat(path).st_size < before
    assert docker_engine.docker("inspect", "--format", "{{.State.Running}}", name).strip() == "true"


async def test_truncating_the_log_of_a_container_recreated_since_is_refused(docker_engine, noisy):
    name, container_id, path, filled = noisy
    await eventually(filled, what="the log to hold a megabyte")
    docker_engine.run(name, NOISY)  # someone re-created the service under the same name

    with pytest.raises(Refused, match="no longer exists"):
        await harness.remediate(
            "docker.truncate_log",
            load_settings(docker_host=docker_engine.host),
            name=name,
            container_id=container_id,
            log_path=path,
        )
