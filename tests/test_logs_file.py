"""`/erpgo logs` keeps its digest in the message and shares every matching line (with context, redacted) as a
file in the report's thread when there are more than the message shows."""

from __future__ import annotations

import shlex

from bot.local.text import render_text
from tests.support import eventually

SECRET = "Sup3r-Secret-Db-Pass"


def api_script(failures: int) -> str:
    """The real API's zerolog lines: `failures` requests answered 500, each with a query failure naming the DSN."""
    lines = []
    for n in range(failures):
        lines.append(
            f'2025-11-30T01:02:{n % 60:02d}.000Z ERR Failed to get order error="dial tcp: connect refused" '
            f"dsn=postgres://erpgo:{SECRET}@postgres:5432/erp order={n}"
        )
        lines.append(
            f'[GIN] 2025/11/30 - 01:02:{n % 60:02d} | 500 |  1.2ms | 10.0.0.{n % 250} | GET "/api/v1/orders/{n}"'
        )
        lines.append(f"2025-11-30T01:02:{n % 60:02d}.100Z INF request handled path=/api/v1/health n={n}")
    printed = " ".join(shlex.quote(line) for line in lines)
    return f"trap 'exit 0' TERM; printf '%s\\n' {printed}; echo printed; sleep 100000 & wait $!"


async def test_more_matching_lines_than_a_message_shows_are_shared_as_a_redacted_file(
    start_bot, fresh_database, docker_engine, names
):
    api = names("api")
    docker_engine.run(api, api_script(40))
    await eventually(lambda: "printed" in docker_engine.docker("logs", api), timeout=20, what="the lines printed")
    bot = await start_bot(bot_database_url=fresh_database("bot"), docker_host=docker_engine.host, erpgo_containers=api)

    await bot.command(f"logs {api}")

    [shared] = await eventually(lambda: list(bot.slack.files.values()), timeout=30, what="the log file")
    [head] = bot.slack.channel_messages("C0OPS")
    assert shared["thread_ts"] == head["ts"]
    content = shared["content"].decode()
    assert all(f'GET "/api/v1/orders/{n}"' in content for n in range(40)), "every 500 line is in the file"
    assert "every matching line with context" in content
    assert SECRET not in content, "the file is redacted"
    thread = "\n".join(render_text(m) for m in bot.slack.thread("C0OPS", head["ts"]))
    assert ("more lines in the attached file" in thread and "GET &quot;/api/v1/orders/39&quot;" in thread) or (
        'GET "/api/v1/orders/39"' in thread
    ), "the digest (the newest 5xx) stays in the message"
    assert SECRET not in thread


async def test_a_few_matching_lines_need_no_file(start_bot, fresh_database, docker_engine, names):
    api = names("api")
    docker_engine.run(api, api_script(2))
    await eventually(lambda: "printed" in docker_engine.docker("logs", api), timeout=20, what="the lines printed")
    bot = await start_bot(bot_database_url=fresh_database("bot"), docker_host=docker_engine.host, erpgo_containers=api)
    await bot.command(f"logs {api}")
    await bot.settle()
    assert bot.slack.files == {}
