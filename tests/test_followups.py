"""A remediation that changes a setting offers its revert as a new approval, in the same thread."""

from __future__ import annotations

import asyncpg

from tests.support import POLICY

CHANNEL = "C0OPS"


async def current_slowlog(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'log_min_duration_statement'")
    finally:
        await conn.close()


def approval_messages(slack, head_ts: str) -> list[dict]:
    return [m for m in slack.thread(CHANNEL, head_ts) if slack.buttons(m)]


async def click(bot, message: dict, user: str) -> None:
    await bot.slack.click(message, "approval.approve", user_id=user)
    await bot.settle()


async def test_enabling_the_slow_query_log_offers_the_revert(start_bot, fresh_database, postgres_server, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    target = fresh_database("erp")
    admin = postgres_server.dsn("postgres")
    before = await current_slowlog(admin)
    bot = await start_bot(
        bot_database_url=fresh_database("bot"), erpgo_database_url=target, chatops_policy_file=str(policy)
    )
    try:
        await bot.command("db settings", user_id="U0ALICE")
        head = bot.slack.channel_messages(CHANNEL)[-1]
        enable = [
            m for m in approval_messages(bot.slack, head["ts"]) if "log_min_duration_statement" in str(m["blocks"])
        ]
        assert enable, "db settings proposes the slow query log"
        await click(bot, enable[0], "U0BOB")
        assert await current_slowlog(admin) != before
        revert = approval_messages(bot.slack, head["ts"])[-1]
        assert revert["ts"] != enable[0]["ts"] and "db.slowlog" in str(revert["blocks"])
        await click(bot, revert, "U0ALICE")  # proposed by Bob (he approved the change), approved by Alice
        assert await current_slowlog(admin) == before
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute("ALTER SYSTEM RESET log_min_duration_statement")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()
