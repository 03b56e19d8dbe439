"""Long evidence: the first lines stay in the message, the whole of it goes in one file shared in the
thread (an outbox upload row after the report)."""

from __future__ import annotations

import asyncpg

from bot.alerts.messages import triage_messages
from bot.core.findings import Finding
from bot.local.text import render_text
from bot.slack import render
from tests.support import eventually

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
    upload = render.evidence_upload("Triage: DatabaseConnectionPool", findings())
    assert upload is not None and upload["text"].startswith(":paperclip: Full evidence")
    file = upload["file"]
    assert file["filename"] == "triage-databaseconnectionpool.txt"
    assert all(row in file["content"] for row in ROWS) and "PONG" not in file["content"]
    assert render.evidence_upload("Triage: ok", [Finding.ok("Redis", "fine", evidence=["PONG"])]) is None


async def test_a_command_report_shares_its_long_evidence_as_a_file_in_its_thread(start_bot, fresh_database):
    dsn = fresh_database("longout")
    sessions = [await asyncpg.connect(dsn, server_settings={"application_name": f"worker-{n}"}) for n in range(20)]
    try:
        for session in sessions:
            await session.execute("BEGIN; SELECT 1")  # 20 sessions idle in transaction: 20 evidence lines
        bot = await start_bot(bot_database_url=fresh_database("bot"), erpgo_database_url=dsn)
        await bot.command("db connections")
        [shared] = await eventually(lambda: list(bot.slack.files.values()), timeout=30, what="the evidence file")
        [head] = bot.slack.channel_messages("C0OPS")
        assert shared["channel"] == "C0OPS" and shared["thread_ts"] == head["ts"]
        content = shared["content"].decode()
        assert all(f"worker-{n}" in content for n in range(20)), "every session is in the file"
        thread = "\n".join(render_text(m) for m in bot.slack.thread("C0OPS", head["ts"]))
        assert "more lines in the attached file" in thread
    finally:
        for session in sessions:
            await session.close()
