"""The shell shows what Slack shows: Slack's formatting as terminal styles, buttons and files as such,
and the bot's log lines in a file (or on stderr at warning level), never between the messages."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from bot.local.terminal import styled
from bot.local.text import render_text

CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT")


def spans(text: str) -> list[tuple[str, str]]:
    shown = styled(text)
    return [(shown.plain[s.start : s.end], str(s.style)) for s in shown.spans]


def test_slack_formatting_becomes_terminal_styles():
    assert spans("*bold* and _italic_ and ~gone~ and `code`") == [
        ("bold", "bold"),
        ("italic", "italic"),
        ("gone", "strike"),
        ("code", "bold cyan"),
    ]
    assert spans("2*3*4 and snake_case_name") == [], "marks inside words are not formatting"
    assert spans("```SELECT *\nFROM t```") == [("SELECT *", "cyan"), ("FROM t", "cyan")]
    assert styled("== ERPGo health: OK ==").plain == "ERPGo health: OK"


def test_buttons_and_files_are_shown_as_such():
    message = {
        "text": "x",
        "blocks": [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approval.approve",
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": "alert.ack",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "I'm on it"},
                    },
                ],
            }
        ],
        "files": [{"title": "evidence.txt", "lines": 40, "preview": "row 1\nrow 2", "lines_more": 38}],
    }
    shown = spans(render_text(message))
    assert ("[ Approve ]! (approval.approve)", "bold white on red") in shown
    assert ("[ I'm on it ]+ (alert.ack)", "bold white on green") in shown
    assert ("📎 evidence.txt (40 lines)", "bold magenta") in shown


def run_on_a_terminal(args: list[str], lines: list[str], env: dict, timeout: float = 60) -> tuple[str, str]:
    """Run erpgo-bot with its stdin and stdout on a pseudo-terminal; returns (terminal output, stderr)."""
    master, slave = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=base | env | {"TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(slave)
    seen = b""
    pending = list(lines)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and seen.count(b"erpgo> ") > len(lines) - len(pending):
                os.write(master, (pending.pop(0) + "\n").encode())
            if proc.poll() is not None and not ready:
                break
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    return seen.decode(errors="replace"), stderr


def test_interactive_shell_logs_to_a_file_and_styles_what_slack_would_style(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    shown, stderr = run_on_a_terminal(["shell", "--log-level", "info"], ["/erpgo help", "quit"], env)
    log_file = tmp_path / "state" / "erpgo-bot" / "shell.log"
    assert f"(the bot's logs go to {log_file})" in shown
    assert "usage: `/erpgo" not in shown and "usage: " in shown, "the backticks became a style"
    assert "\x1b[1;36m" in shown, "code shown in bold cyan"
    assert '"event"' not in shown and '"event"' not in stderr, "no log line between the messages"
    logged = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    assert any(entry.get("event") == "policy_not_configured" for entry in logged)


def test_interactive_shell_can_log_warnings_to_stderr(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    shown, stderr = run_on_a_terminal(["shell", "--log-file", "-"], ["/erpgo help", "quit"], env)
    assert "logs go to" not in shown and not (tmp_path / "state").exists()
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "policy_not_configured" in events, "warnings reach stderr"
    assert "listening" not in events and "migration_applied" not in events, "info lines do not"
