"""Long evidence: the first lines stay in the message, the whole of it goes in one file shared in the
thread (an outbox upload row after the report)."""

from __future__ import annotations

from bot.alerts.messages import triage_file, triage_messages
from bot.core.findings import Finding
from bot.local.text import render_text
from bot.slack import render

ROWS = [f"pid {n} idle in transaction 00:0{n % 10}:00" for n in range(1, 41)]


def findings() -> list[Finding]:
    return [
        Finding.crit("PostgreSQL", "40 sessions idle in transaction", evidence=ROWS),
        Finding.ok("Redis", "answers PING", evidence=["PONG"]),
    ]


def test_the_message_keeps_the_first_lines_and_points_to_the_file():
    [message] = triage_messages("Triage: DatabaseConnectionPool", findings(), "automatic triage")
    shown = render_text(message)
    assert ROWS[14] in shown and ROWS[15] not in shown
    assert "… 25 more lines in the attached file" in shown
    plain = render_text(render.details("ERPGo db", findings()))
    assert "… 25 more lines" in plain and "attached file" not in plain, "no file promised where none is sent"


def test_the_file_holds_all_of_the_long_evidence_and_nothing_short():
    upload = triage_file("Triage: DatabaseConnectionPool", findings())
    assert upload is not None and upload["text"].startswith(":paperclip: Full evidence")
    file = upload["file"]
    assert file["filename"] == "triage-databaseconnectionpool.txt"
    assert all(row in file["content"] for row in ROWS) and "PONG" not in file["content"]
    assert triage_file("Triage: ok", [Finding.ok("Redis", "fine", evidence=["PONG"])]) is None
