"""/erpgo health end to end: a signed slash command in, one report posted to Slack, per component."""

from __future__ import annotations

import re
import time

from demo.services import PostgresServer, RedisServer, free_port

GREEN, RED, YELLOW = ":large_green_circle:", ":red_circle:", ":large_yellow_circle:"
LINE = re.compile(r"^(:[a-z_]+:) \*(.+?)\* — (.*)$")


def component_lines(message: dict) -> dict[str, tuple[str, str]]:
    """{component: (emoji, title)} from a report headline."""
    lines = {}
    for block in message["blocks"]:
        if block["type"] == "section":
            for line in block["text"]["text"].splitlines():
                match = LINE.match(line)
                if match:
                    lines[match.group(2)] = (match.group(1), match.group(3))
    return lines


def header(message: dict) -> str:
    return next(b["text"]["text"] for b in message["blocks"] if b["type"] == "header")


async def health_report(bot) -> tuple[dict, list[dict], object]:
    result = await bot.command("health")
    assert result.status == 200
    posted = bot.slack.channel_messages("C0OPS")
    assert len(posted) == 1, "exactly one report message in the channel"
    return posted[0], bot.slack.thread("C0OPS", posted[0]["ts"]), result


async def test_all_green_posts_one_report_with_details_in_thread(start_bot, healthy_targets):
    bot = await start_bot(**healthy_targets)
    head, thread, result = await health_report(bot)
    assert "Running health checks" in result.json["text"]
    assert result.elapsed_s < 3
    assert header(head) == "ERPGo health: OK"
    lines = component_lines(head)
    assert set(lines) == {
        "ERPGo API",
        "PostgreSQL",
        "Redis",
        "Docker erpgo-api",
        "Docker erpgo-postgres",
        "Docker erpgo-redis",
    }
    assert all(emoji == GREEN for emoji, _ in lines.values()), lines
    assert "max_connections" not in lines["PostgreSQL"][1] and "/100 connections" in lines["PostgreSQL"][1]
    assert "PING" in lines["Redis"][1]
    assert "running" in lines["Docker erpgo-api"][1] and "CPU" in lines["Docker erpgo-api"][1]
    assert len(thread) == 1
    details = thread[0]["text"] + str(thread[0]["blocks"])
    assert "pool: 1/20 acquired" in details  # pool stats from the real /health shape
    assert "ms)" in details  # nanosecond latencies shown as ms
    assert "/health/detailed" in details


async def test_postgres_stopped_turns_only_its_line_red(start_bot, healthy_targets, tmp_path):
    stopped = PostgresServer(tmp_path / "pg")
    stopped.start()
    stopped.stop()
    try:
        bot = await start_bot(**healthy_targets | {"erpgo_database_url": stopped.dsn("erp")})
        head, _, _ = await health_report(bot)
    finally:
        stopped.cleanup()
    lines = component_lines(head)
    assert lines["PostgreSQL"][0] == RED and "unreachable" in lines["PostgreSQL"][1]
    assert header(head) == "ERPGo health: CRITICAL"
    assert all(emoji == GREEN for name, (emoji, _) in lines.items() if name != "PostgreSQL"), lines


async def test_redis_stopped_turns_only_its_line_red(start_bot, healthy_targets, tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    url = redis.url
    redis.stop()
    try:
        bot = await start_bot(**healthy_targets | {"erpgo_redis_url": url})
        head, _, _ = await health_report(bot)
    finally:
        redis.cleanup()
    lines = component_lines(head)
    assert lines["Redis"][0] == RED
    assert all(emoji == GREEN for name, (emoji, _) in lines.items() if name != "Redis"), lines


async def test_api_503_is_red_with_the_failing_check_named(start_bot, healthy_targets, simulator):
    simulator.app["sim"].update({"status": "unhealthy"})
    bot = await start_bot(**healthy_targets)
    head, thread, _ = await health_report(bot)
    lines = component_lines(head)
    assert lines["ERPGo API"][0] == RED
    assert "HTTP 503" in lines["ERPGo API"][1] and "database" in lines["ERPGo API"][1]
    assert all(emoji == GREEN for name, (emoji, _) in lines.items() if name != "ERPGo API"), lines
    assert "dial error" in str(thread[0]["blocks"])


async def test_api_slower_than_timeout_reports_timeout_and_report_is_not_held_up(start_bot, healthy_targets, simulator):
    simulator.app["sim"].update({"delay": 3})
    bot = await start_bot(**healthy_targets | {"erpgo_check_timeout": 1})
    started = time.perf_counter()
    head, _, _ = await health_report(bot)
    assert time.perf_counter() - started < 2.5, "the report waits for the timeout, not for the slow API"
    lines = component_lines(head)
    assert lines["ERPGo API"][0] == RED and "timed out" in lines["ERPGo API"][1]
    assert lines["PostgreSQL"][0] == GREEN


async def test_api_wrong_json_is_reported_not_crashed(start_bot, healthy_targets, simulator):
    simulator.app["sim"].update({"body": "wrong-json"})
    bot = await start_bot(**healthy_targets)
    head, _, _ = await health_report(bot)
    assert "not JSON" in component_lines(head)["ERPGo API"][1]


async def test_sub_endpoints_not_exposed_are_a_detail_not_a_failure(start_bot, healthy_targets, simulator):
    simulator.app["sim"].update({"expose": []})
    bot = await start_bot(**healthy_targets)
    head, thread, _ = await health_report(bot)
    assert component_lines(head)["ERPGo API"][0] == GREEN
    assert "/health/detailed: not exposed" in str(thread[0]["blocks"])


async def test_docker_socket_missing_turns_docker_red(start_bot, healthy_targets, tmp_path):
    bot = await start_bot(**healthy_targets | {"docker_host": f"unix://{tmp_path}/docker.sock"})
    head, _, _ = await health_report(bot)
    lines = component_lines(head)
    assert lines["Docker"][0] == RED and "socket missing" in lines["Docker"][1]
    assert lines["PostgreSQL"][0] == GREEN and lines["ERPGo API"][0] == GREEN


async def test_exited_container_is_red_and_others_stay_green(
    start_bot, healthy_targets, docker_engine, erpgo_containers, names
):
    worker = names("worker")
    docker_engine.run(worker, "echo bye; exit 3")
    docker_engine.docker("wait", worker)
    bot = await start_bot(**healthy_targets | {"erpgo_containers": f"erpgo-api,{worker}"})
    head, _, _ = await health_report(bot)
    lines = component_lines(head)
    assert lines[f"Docker {worker}"][0] == RED and "exited (exit code 3)" in lines[f"Docker {worker}"][1]
    assert lines["Docker erpgo-api"][0] == GREEN


async def test_unknown_container_is_reported_missing(start_bot, healthy_targets):
    bot = await start_bot(**healthy_targets | {"erpgo_containers": "erpgo-api,no-such-container"})
    head, _, _ = await health_report(bot)
    assert component_lines(head)["Docker no-such-container"] == (RED, "container not found")


async def test_targets_not_configured_are_reported_as_such(start_bot, tmp_path):
    bot = await start_bot(docker_host=f"unix://{tmp_path}/none.sock")
    head, _, _ = await health_report(bot)
    lines = component_lines(head)
    assert lines["PostgreSQL"] == (":white_circle:", "not configured (set ERPGO_DATABASE_URL)")
    assert lines["ERPGo API"] == (":white_circle:", "not configured (set ERPGO_API_URL)")
    assert lines["Redis"] == (":white_circle:", "not configured (set ERPGO_REDIS_URL)")


async def test_secrets_never_posted_or_logged(start_bot, tmp_path, capsys):
    """A DSN password and a token inside an error message are masked in Slack and in the logs."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from bot.core.logs import configure_logging

    leaky = web.Application()

    async def health(_request):
        return web.json_response(
            {
                "status": "unhealthy",
                "checks": {
                    "database": {
                        "status": "unhealthy",
                        "message": "dial postgres://erpgo:Sup3rS3cretPw@db:5432/erp failed; Authorization: Bearer abcdef123456789 xoxb-1111-2222-secret",
                    }
                },
            },
            status=503,
        )

    leaky.router.add_get("/health", health)
    server = TestServer(leaky, host="127.0.0.1")
    await server.start_server()
    configure_logging("debug")
    try:
        port = free_port()
        bot = await start_bot(
            erpgo_api_url=str(server.make_url("")),
            erpgo_database_url=f"postgresql://erpgo:An0therPw@127.0.0.1:{port}/erp",
            docker_host=f"unix://{tmp_path}/none.sock",
        )
        await health_report(bot)
    finally:
        await server.close()
    posted = str([call.args for call in bot.slack.calls])
    logged = capsys.readouterr().out
    assert "dial postgres://erpgo:***@db" in posted  # the message is still useful
    for secret in ("Sup3rS3cretPw", "An0therPw", "abcdef123456789", "xoxb-1111-2222-secret"):
        assert secret not in posted
        assert secret not in logged
    assert '"verb": "health"' in logged and '"outcome": "crit"' in logged
