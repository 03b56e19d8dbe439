"""Every action is verified: once it ran, the check that proposed it runs again on the same target
after the remediation's settle time, and the thread and the approval message say Verified (before →
after) or Not fixed — recorded with the approval and in the audit; a verification interrupted by a
stop is finished by another replica."""

from __future__ import annotations

import asyncpg

from bot.local.text import render_text
from tests.container_support import CHANNEL, STAYS_UP, proposed
from tests.support import eventually


async def rows(dsn: str, sql: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def thread_texts(bot, message: dict) -> list[str]:
    return [render_text(m) for m in bot.slack.thread(CHANNEL, message["thread_ts"])]


async def test_start_of_a_container_whose_command_exits_at_once_is_not_fixed(
    start_bot, docker_bot_settings, docker, docker_engine, names
):
    name = names("flaky")
    docker_engine.run(name, "exit 3")
    await eventually(lambda: _exited(docker, name), what="the container to exit")
    bot = await start_bot(erpgo_containers=name, **docker_bot_settings)
    message = await proposed(bot, f"app {name}")

    await bot.slack.click(message, "approval.approve", user_id="U0BOB")
    await bot.settle()

    now = render_text(bot.slack.messages[CHANNEL, message["ts"]])
    assert "running since" not in now, "the start is never called a success by itself"
    assert "Not fixed" in now and name in now, now
    replies = thread_texts(bot, message)
    assert any("Not fixed" in r and "exited" in r for r in replies), replies
    assert not any("Verified" in r for r in replies)
    audit = await rows(docker_bot_settings["bot_database_url"], "SELECT event, outcome FROM audit_log ORDER BY id")
    assert audit[-2:] == [("executed", "succeeded"), ("verified", "not fixed")]
    [(state, before, after)] = await rows(
        docker_bot_settings["bot_database_url"], "SELECT state, before, after FROM verifications"
    )
    assert state == "not_fixed" and before == "exited: exit code 3" and "exit code 3" in after


async def test_a_verification_interrupted_by_a_stop_is_finished_by_another_replica(
    start_bot, docker_bot_settings, docker, docker_engine, names
):
    name = names("api")
    docker_engine.run(name, STAYS_UP)
    docker_engine.docker("stop", "-t", "5", name)
    first = await start_bot(erpgo_containers=name, erpgo_shutdown_grace=0, **docker_bot_settings)
    message = await proposed(first, f"app {name}")
    await first.slack.click(message, "approval.approve", user_id="U0BOB")
    dsn = docker_bot_settings["bot_database_url"]
    await eventually(lambda: rows(dsn, "SELECT 1 FROM verifications WHERE state = 'running'"), what="verifying")
    await first.stop()  # while the started container settles

    second = await start_bot(slack=first.slack, erpgo_containers=name, **docker_bot_settings)
    await eventually(
        lambda: rows(dsn, "SELECT 1 FROM verifications WHERE state = 'verified'"), timeout=20, what="verified"
    )
    await second.settle()
    replies = await eventually(
        lambda: [r for r in thread_texts(second, message) if r.startswith("Approval #1 (") and "Verified" in r]
    )
    assert len(replies) == 1 and f"Start container {name}" in replies[0] and "→ running" in replies[0], replies
    assert "Verified" in render_text(second.slack.messages[CHANNEL, message["ts"]]), "the approval message too"
    assert (await docker.inspect(name)).state.running
    verified = await rows(dsn, "SELECT event, outcome FROM audit_log WHERE event = 'verified'")
    assert verified == [("verified", "verified")], "recorded once"


async def _exited(docker, name: str) -> bool:
    return (await docker.inspect(name)).state.status == "exited"
