"""The README's guided tour, typed into `python -m demo` as a newcomer would: a lock terminated with two
people, a ban in nftables, an alert thread triaged, acknowledged and silenced on a real Alertmanager,
and the incident's timeline — then nothing of the demo is left running or mounted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo import faults

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT", "PROMETHEUS_", "ALERTMANAGER_")
SILENCE_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def tour_commands() -> list[str]:
    """The commands of README.md's guided tour, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### A guided tour", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    return [line.removeprefix("erpgo> ") for line in section.strip().splitlines()]


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[str, str, Path]:
    """(what the shell printed, what the launcher said, the demo's directory) for the tour plus
    `/erpgo bans`, which reads the ban back from the firewall, and an alert fired and resolved."""
    run_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)} | {"ERPGO_DEMO_DIR": str(run_dir)}
    lines = [*tour_commands(), "/erpgo bans", "fire BackupOverdue severity=warning", "resolve BackupOverdue"]
    done = subprocess.run(
        [sys.executable, "-m", "demo"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr, run_dir


def answer_to(stdout: str, command: str) -> str:
    """What the shell printed after `command`, up to the next prompt."""
    return stdout.split(f"erpgo> {command}\n", 1)[1].split("\nerpgo> ", 1)[0]


def test_the_tour_has_ten_commands():
    assert len(tour_commands()) == 10


def test_health_shows_the_crash_looping_worker(tour):
    stdout, _, _ = tour
    health = answer_to(stdout, "/erpgo health")
    # caught between two runs (restarting, exited: red) or in its split second of running (yellow)
    worker = re.search(r"^(🔴|🟡) \*Docker erpgo-worker\* — .*\b([1-9]\d*) restarts", health, re.MULTILINE)
    assert worker, health
    assert "== ERPGo health: OK ==" not in health
    assert "🟢 *ERPGo API* — healthy" in health


def test_a_lock_is_terminated_with_two_people(tour):
    stdout, _, _ = tour
    locks = answer_to(stdout, "/erpgo db locks")
    assert "(idle in transaction for" in locks and "application erpgo-worker" in locks
    assert "Approval #1 — Terminate backend" in locks
    assert "You requested this yourself" in answer_to(stdout, "approve 1")
    approved = answer_to(stdout, "/as U0BOB approve 1")
    assert "approved by @U0BOB — executed: terminated backend" in approved
    assert "the 1 session it blocked can proceed" in approved


def test_a_ban_goes_to_nftables_in_the_demo_namespace(tour):
    stdout, stderr, run_dir = tour
    assert "bans go to nftables in network namespace" in stderr, stderr
    approved = answer_to(stdout, "/as U0BOB approve 2")
    assert "approved by @U0BOB — executed: Banned 203.0.113.66 on nftables" in approved
    bans = answer_to(stdout, "/erpgo bans")
    assert "1 active ban on nftables" in bans and "203.0.113.66 — active" in bans
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert faults.edge_namespace_name(run_dir) not in namespaces  # removed on exit


def test_an_alert_thread_is_triaged_acknowledged_and_silenced_on_alertmanager(tour):
    stdout, stderr, _ = tour
    assert "Alertmanager on http://127.0.0.1:" in stderr
    fired = answer_to(stdout, "fire HighErrorRate")
    assert "sent to Alertmanager (firing): alertname=HighErrorRate" in fired
    assert "== :fire: FIRING: HighErrorRate ==" in fired
    assert "== Triage: HighErrorRate: CRITICAL ==" in fired and "Logs erpgo-api" in fired
    assert "Acknowledged by @U0YOU" in answer_to(stdout, "press alert.ack")
    silenced = answer_to(stdout, "press alert.silence.1h")
    assert re.search(rf"Silenced \*HighErrorRate\* for 1h 0m \({SILENCE_ID}\)", silenced)  # Alertmanager's id
    assert "Silenced by @U0YOU until" in silenced and "(alert.unsilence)" in silenced


def test_an_alert_resolved_through_alertmanager_closes_its_thread(tour):
    stdout, _, _ = tour
    fired = answer_to(stdout, "fire BackupOverdue severity=warning")
    assert "== Triage: BackupOverdue: CRITICAL ==" in fired and "3d 0h old" in fired  # the demo's old backup
    resolved = answer_to(stdout, "resolve BackupOverdue")
    assert "sent to Alertmanager (resolved): alertname=BackupOverdue severity=warning" in resolved
    assert "== :white_check_mark: RESOLVED: BackupOverdue ==" in resolved


def test_the_timeline_tells_the_incident(tour):
    stdout, _, _ = tour
    timeline = answer_to(stdout, "/erpgo timeline")
    assert "📎 Postmortem draft: HighErrorRate" in timeline
    assert "# Postmortem draft: HighErrorRate" in timeline


def test_the_demo_is_sick_in_every_way_and_leaves_nothing_behind(tour):
    _, stderr, run_dir = tour
    for said in ("idle in transaction", "a slow report runs", "days old", "94 % full", "expires in 5 days"):
        assert said in stderr
    assert "Prometheus on http://127.0.0.1:" in stderr and "scraping erpgo-api, erpgo-chatops" in stderr
    assert str(run_dir) not in Path("/proc/self/mountinfo").read_text()  # the full disk is unmounted
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(run_dir).encode() in _cmdline(pid)]
    assert left == [], "demo processes still running"


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
