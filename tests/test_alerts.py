"""Alert intake end to end: a real Alertmanager posting to the bot, one triaged Slack thread per alert
group, kept up to date; the webhook's answers; routing; `/erpgo alerts`; a small storm; the log check."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC
from urllib.parse import quote

import aiohttp
import pytest
from pydantic import SecretStr

from bot.alerts.messages import GroupView, header_message, silence_url
from bot.alerts.triage import triage_checks
from bot.app import build_registry
from bot.core.metrics import ALERT_WEBHOOKS
from demo.services import PostgresServer
from tests.alert_support import WEBHOOK, post, webhook
from tests.fixtures.bot import ALERT_CHANNEL as CHANNEL
from tests.fixtures.bot import ALERT_TOKEN as TOKEN
from tests.support import eventually

# ---------------------------------------------------------------------- helpers


async def alertmanager(factory, bot, token: str = TOKEN, **kw):
    """A real Alertmanager (started off the event loop: the bot serves from this loop)."""
    kw.setdefault("group_wait", "1s")
    kw.setdefault("group_interval", "1s")
    return await asyncio.to_thread(factory, bot.base_url + WEBHOOK, token, **kw)


async def fire(am, labels: dict, annotations: dict | None = None) -> None:
    await asyncio.to_thread(am.fire, labels, annotations or {})


async def resolve(am, labels: dict) -> None:
    await asyncio.to_thread(am.resolve, labels)


async def query(bot, sql: str, *args):
    async with bot.runtime.store.acquire() as conn:
        return await conn.fetch(sql, *args)


async def healthz(bot) -> dict:
    async with aiohttp.ClientSession() as http, http.get(bot.base_url + "/healthz") as response:
        return await response.json()


async def drained(bot, timeout: float = 30) -> None:
    """Every queued Slack message delivered and every triage finished."""

    async def done():
        backlog = (await healthz(bot))["slack_backlog"]
        triage = await query(
            bot, "SELECT count(*) FROM alert_groups WHERE triage_state <> 'done' AND status = 'firing'"
        )
        return backlog["pending"] == 0 and triage[0][0] == 0 and bot.runtime.tasks.pending == 0

    await eventually(done, timeout, "an empty outbox")


def is_head(call) -> bool:
    return call.method == "chat.postMessage" and call.ok and not call.args.get("thread_ts")


def in_thread(ts: str, starts: str = ""):
    return lambda c: (
        c.method == "chat.postMessage"
        and c.ok
        and c.args.get("thread_ts") == ts
        and c.args.get("text", "").startswith(starts)
    )


def content(message: dict) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks", []), ensure_ascii=False)


def heads(bot, channel: str = CHANNEL) -> list[dict]:
    return bot.slack.channel_messages(channel)


def replies(bot, head: dict, channel: str = CHANNEL) -> list[str]:
    return [m["text"] for m in bot.slack.thread(channel, head["ts"])]


def within_bucket(times: list[float], burst: int, interval: float, slack_s: float = 0.01) -> bool:
    """Whether messages sent at `times` kept to a bucket of `burst` tokens refilled one per `interval`."""
    times = sorted(times)
    return all(
        j - i + 1 <= burst + (times[j] - times[i] + slack_s) / interval
        for i in range(len(times))
        for j in range(i, len(times))
    )


def webhook_count(outcome: str) -> float:
    return ALERT_WEBHOOKS.labels(outcome)._value.get()


# ---------------------------------------------------------------------- with a real Alertmanager


async def test_fire_opens_one_triaged_thread_and_repeats_post_nothing(alert_bot, alertmanager_factory, healthy_targets):
    bot = await alert_bot(**healthy_targets)
    am = await alertmanager(alertmanager_factory, bot, repeat_interval="2s")
    labels = {"alertname": "HighErrorRate", "severity": "critical", "instance": "erpgo-api:8080"}
    await fire(
        am,
        labels,
        {
            "summary": "High error rate detected",
            "description": "5xx above 5 % for 5 minutes",
            "runbook_url": "https://runbooks.example/erpgo#500",
        },
    )
    head_call = await bot.slack.wait_for(is_head, timeout=20)
    triage_call = await bot.slack.wait_for(in_thread(head_call.response["ts"], "Triage: HighErrorRate"), timeout=30)

    assert head_call.args["channel"] == CHANNEL
    head = heads(bot)[0]
    assert head["text"].startswith("FIRING: HighErrorRate (critical) — 1 firing — High error rate detected")
    shown = content(head)
    assert "erpgo-api:8080" in shown and "5xx above 5 %" in shown and "<!date^" in shown
    assert "<https://runbooks.example/erpgo#500|:book: Runbook>" in shown
    assert "/#/silences/new?filter=" + quote('{alertname="HighErrorRate"}', safe="") in shown

    report = content(triage_call.args)
    for component in ("ERPGo API", "Logs erpgo-api", "PostgreSQL"):
        assert component in report, component
    assert "5xx" in report and "panic" in report  # the API container's log shows its planted 500s and panics
    assert "Application Issues › 500 Internal Server Errors" in report

    # Alertmanager repeats the notification every 2 s: nothing new, nothing posted
    await bot.settle()  # the triage, and approval messages for its proposals if any

    async def delivered() -> bool:  # and everything the triage queued, its evidence file too, is in Slack
        return not await query(bot, "SELECT id FROM slack_outbox WHERE state = 'pending'")

    await eventually(delivered, 30, "the triage's messages and files delivered")
    seen = len(bot.slack.calls)

    async def repeated():
        rows = await query(bot, "SELECT notifications FROM alert_groups")
        return rows and rows[0][0] >= 3

    await eventually(repeated, 20, "two repeat notifications")
    await bot.settle()
    assert bot.slack.calls[seen:] == []
    assert len(heads(bot)) == 1


async def test_alerts_joining_leaving_and_resolving_keep_one_thread_up_to_date(alert_bot, alertmanager_factory):
    bot = await alert_bot()
    am = await alertmanager(alertmanager_factory, bot)
    first = {"alertname": "ErpgoQueueBacklog", "severity": "warning", "instance": "worker-1"}
    second = {**first, "instance": "worker-2"}
    await fire(am, first, {"summary": "Queue is backing up"})
    head_call = await bot.slack.wait_for(is_head, timeout=20)
    ts = head_call.response["ts"]
    triage = await bot.slack.wait_for(in_thread(ts, "Triage: ErpgoQueueBacklog"), timeout=20)
    # nobody mapped this alert: it gets the health checks
    assert all(name in content(triage.args) for name in ("ERPGo API", "PostgreSQL", "Redis", "Docker"))

    await fire(am, second, {"summary": "Queue is backing up"})
    joined = await bot.slack.wait_for(in_thread(ts, ":heavy_plus_sign: 1 alert joined"), timeout=20)
    assert "worker-2" in joined.args["text"]
    await bot.slack.wait_for(lambda c: c.method == "chat.update" and c.ok and "2 firing" in c.args["text"])

    await resolve(am, first)
    left = await bot.slack.wait_for(in_thread(ts, ":heavy_minus_sign: 1 alert resolved"), timeout=20)
    assert "worker-1" in left.args["text"]
    await bot.slack.wait_for(lambda c: c.method == "chat.update" and c.ok and "1 firing, 1 resolved" in c.args["text"])

    await resolve(am, second)
    await bot.slack.wait_for(in_thread(ts, ":white_check_mark: Resolved after"), timeout=20)
    await bot.slack.wait_for(lambda c: c.method == "chat.update" and c.ok and c.args["text"].startswith("RESOLVED"))
    await drained(bot)

    [head] = heads(bot)
    assert head["text"].startswith("RESOLVED: ErpgoQueueBacklog (warning) — 0 firing, 2 resolved")
    assert "*Duration*" in content(head) and "*Resolved*" in content(head)
    thread = replies(bot, head)
    assert [t.split(" ")[0] for t in thread] == [
        "Triage:",
        ":heavy_plus_sign:",
        ":heavy_minus_sign:",
        ":white_check_mark:",
    ]


async def test_firing_again_within_the_window_returns_to_the_same_thread(alert_bot, alertmanager_factory):
    bot = await alert_bot()
    am = await alertmanager(alertmanager_factory, bot)
    labels = {"alertname": "ErpgoApiDown", "severity": "critical", "instance": "erpgo-api:8080"}
    await fire(am, labels, {"summary": "erpgo-api is down"})
    ts = (await bot.slack.wait_for(is_head, timeout=20)).response["ts"]
    await bot.slack.wait_for(in_thread(ts, "Triage: ErpgoApiDown"), timeout=20)
    await resolve(am, labels)
    await bot.slack.wait_for(in_thread(ts, ":white_check_mark: Resolved"), timeout=20)

    await fire(am, labels, {"summary": "erpgo-api is down"})
    await bot.slack.wait_for(in_thread(ts, ":repeat: Firing again"), timeout=20)
    await drained(bot)
    [head] = heads(bot)
    assert head["text"].startswith("FIRING: ErpgoApiDown (critical) — 1 firing")
    thread = replies(bot, head)
    assert [t.split(" ")[0] for t in thread] == ["Triage:", ":white_check_mark:", ":repeat:", "Triage:"]


async def test_wrong_token_is_401_and_alertmanager_retries_until_it_is_right(alert_bot, alertmanager_factory):
    bot = await alert_bot(alert_webhook_token="the-token-the-bot-expects")
    refused_before = webhook_count("unauthorized")
    am = await alertmanager(alertmanager_factory, bot, token=TOKEN)
    await fire(am, {"alertname": "HighErrorRate", "severity": "critical"}, {"summary": "High error rate"})

    async def refused_twice():
        return webhook_count("unauthorized") - refused_before >= 2

    await eventually(refused_twice, 20, "two refused notifications")
    assert heads(bot) == [] and await query(bot, "SELECT 1 FROM alerts_received") == []
    # the operator fixes the bot's token (a restart with the right ALERT_WEBHOOK_TOKEN): the retry lands
    bot.runtime.settings.alert_webhook_token = SecretStr(TOKEN)
    await bot.slack.wait_for(is_head, timeout=20)
    await drained(bot)
    assert len(heads(bot)) == 1
    assert heads(bot)[0]["text"].startswith("FIRING: HighErrorRate")


async def test_slack_429s_then_500s_every_alert_posted_in_order_none_twice(alert_bot, alertmanager_factory):
    bot = await alert_bot()
    bot.slack.outage(500)
    am = await alertmanager(alertmanager_factory, bot)
    groups = {
        "ErpgoOrdersFailing": [{"instance": "api-1"}, {"instance": "api-2"}],
        "ErpgoStockDrift": [{"instance": "db-1"}],
        "ErpgoCacheMiss": [{"instance": "redis-1"}],
    }
    for name, alerts in groups.items():
        await fire(am, {"alertname": name, "severity": "warning", **alerts[0]}, {"summary": f"{name} summary"})

    async def recorded(n):
        rows = await query(bot, "SELECT count(*) FROM alert_groups")
        return rows[0][0] >= n

    await eventually(lambda: recorded(3), 20, "three alert groups recorded")
    await bot.slack.wait_for(lambda c: c.status == 500)
    # while Slack is down: a join and a resolve
    await fire(am, {"alertname": "ErpgoOrdersFailing", "severity": "warning", "instance": "api-2"}, {"summary": "x"})
    await resolve(am, {"alertname": "ErpgoCacheMiss", "severity": "warning", "instance": "redis-1"})

    async def both_recorded():
        rows = await query(
            bot,
            """SELECT (SELECT count(*) FROM alerts) = 4
                                   AND (SELECT count(*) FROM alert_groups WHERE status = 'resolved') = 1""",
        )
        return rows[0][0]

    await eventually(both_recorded, 20, "the join and the resolve recorded")
    backlog = (await healthz(bot))["slack_backlog"]
    assert backlog["pending"] >= 3 and backlog["oldest_pending_s"] is not None
    async with aiohttp.ClientSession() as http, http.get(bot.base_url + "/metrics") as response:
        gauge = re.search(r"^erpgo_slack_backlog (\S+)$", await response.text(), re.M)
    assert gauge and float(gauge.group(1)) >= 1

    bot.slack.recover()
    bot.slack.fail(None, status=429, retry_after=1, times=2)
    bot.slack.fail(None, status=500, times=3)
    await drained(bot, timeout=60)

    calls = bot.slack.calls
    assert any(c.status == 429 for c in calls) and any(c.status == 500 for c in calls)
    assert len(heads(bot)) == 3 and len([c for c in calls if is_head(c)]) == 3, "each header once"
    by_name = {h["text"].split(":")[1].split("(")[0].strip(): h for h in heads(bot)}
    assert by_name["ErpgoOrdersFailing"]["text"].startswith("FIRING: ErpgoOrdersFailing (warning) — 2 firing")
    assert by_name["ErpgoCacheMiss"]["text"].startswith("RESOLVED: ErpgoCacheMiss")
    # every reply exactly once, in the order it was queued
    sent = await query(
        bot,
        """SELECT g.thread_key, o.ts FROM slack_outbox o JOIN alert_groups g USING (thread_key)
                               WHERE o.op = 'reply' AND o.state = 'sent' ORDER BY o.id""",
    )
    threads = await query(bot, "SELECT thread_key, ts FROM slack_threads")
    for thread_key, head_ts in threads:
        queued_order = [ts for key, ts in sent if key == thread_key]
        in_slack = [m["ts"] for m in bot.slack.thread(CHANNEL, head_ts)]
        assert in_slack == queued_order and len(in_slack) >= 1
    reply_calls = [c for c in calls if c.method == "chat.postMessage" and c.ok and c.args.get("thread_ts")]
    assert len(reply_calls) == len(sent)
    keys = [(c.args["thread_ts"], c.args["text"]) for c in reply_calls]
    assert len(keys) == len(set(keys)), "no message twice"


# ---------------------------------------------------------------------- the webhook's answers


async def test_missing_or_wrong_token_is_401_and_nothing_is_recorded(alert_bot):
    bot = await alert_bot()
    for token, headers in (
        (None, {}),
        ("wrong-token", {}),
        (None, {"Authorization": f"Basic {TOKEN}"}),
        (None, {"Authorization": TOKEN}),
        ("", {}),
    ):
        status, body = await post(bot, webhook(), token=token, headers=headers)
        assert status == 401 and body["status"] == "unauthorized", (token, headers)
    async with aiohttp.ClientSession() as http:
        async with http.post(bot.base_url + WEBHOOK, data="{}", headers={"Authorization": "Bearer x"}) as response:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await query(bot, "SELECT 1 FROM alerts_received") == []
    assert [c.method for c in bot.slack.calls] == ["auth.test"]  # the start's own; nothing posted


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "malformed JSON"),
        (b"[]", "must be a JSON object"),
        ({**webhook(), "version": "3"}, "unsupported Alertmanager webhook version '3'"),
        ({k: v for k, v in webhook().items() if k != "groupKey"}, "groupKey: Field required"),
        ({**webhook(), "alerts": []}, "alerts: List should have at least 1 item"),
        ({**webhook(), "alerts": [{**webhook()["alerts"][0], "status": "exploded"}]}, "alerts.0.status"),
        (
            {**webhook(), "alerts": [{k: v for k, v in webhook()["alerts"][0].items() if k != "fingerprint"}]},
            "alerts.0.fingerprint: Field required",
        ),
        (webhook(labels={"job": "api\u0000"}), "NUL character"),  # PostgreSQL could never store it: not retried
    ],
)
async def test_malformed_notifications_are_400_with_a_clear_message(alert_bot, body, message):
    bot = await alert_bot()
    status, answer = await post(bot, body)
    assert status == 400 and message in answer["message"], answer
    assert await query(bot, "SELECT 1 FROM alerts_received") == []


async def test_intake_not_configured_answers_503_saying_what_to_set(start_bot, alert_bot):
    bot = await start_bot()
    status, body = await post(bot, webhook())
    assert status == 503 and "set ALERT_WEBHOOK_TOKEN" in body["message"]
    bot = await alert_bot(erpgo_alert_channel=None)
    status, body = await post(bot, webhook())
    assert status == 503 and "set ERPGO_ALERT_CHANNEL" in body["message"]
    bot = await start_bot(alert_webhook_token=TOKEN, erpgo_alert_channel=CHANNEL)
    status, body = await post(bot, webhook())
    assert status == 503 and "set BOT_DATABASE_URL" in body["message"]


async def test_bot_database_down_is_503_then_accepted_once_it_is_back(alert_bot, tmp_path):
    server = PostgresServer(tmp_path / "botdb")
    await asyncio.to_thread(server.start)
    await asyncio.to_thread(server.create_database, "bot")
    await asyncio.to_thread(server.stop)
    try:
        bot = await alert_bot(bot_database_url=server.dsn("bot"))
        status, body = await post(bot, webhook())
        assert status == 503 and "not recorded" in body["message"] and "database" in body["message"]
        assert [c.method for c in bot.slack.calls] == ["auth.test"]  # the start's own; nothing posted
        await asyncio.to_thread(server.start)  # Alertmanager retries a 503: the same notification now lands
        status, body = await post(bot, webhook())
        assert status == 200 and body == {"status": "accepted", "alerts": 1, "group": 1, "outcome": "new"}
        await drained(bot)
        assert len(heads(bot)) == 1
    finally:
        await asyncio.to_thread(server.cleanup)


async def test_routes_send_groups_to_their_channel(alert_bot):
    bot = await alert_bot(erpgo_alert_routes="severity=critical:C0CRIT,team=db:C0DBA")
    assert (await post(bot, webhook("HighErrorRate")))[0] == 200
    assert (await post(bot, webhook("DatabaseConnectionPool", labels={"severity": "warning", "team": "db"})))[0] == 200
    assert (await post(bot, webhook("HighMemoryUsage", labels={"severity": "warning"})))[0] == 200
    await drained(bot)
    assert [h["text"].split(" ")[1] for h in heads(bot, "C0CRIT")] == ["HighErrorRate"]
    assert [h["text"].split(" ")[1] for h in heads(bot, "C0DBA")] == ["DatabaseConnectionPool"]
    assert [h["text"].split(" ")[1] for h in heads(bot, CHANNEL)] == ["HighMemoryUsage"]


async def test_firing_again_after_the_window_opens_a_new_thread(alert_bot):
    bot = await alert_bot(erpgo_alert_refire_window=0)
    assert (await post(bot, webhook("ErpgoApiDown")))[0] == 200
    await bot.slack.wait_for(is_head)
    assert (await post(bot, webhook("ErpgoApiDown", status="resolved")))[1]["outcome"] == "resolved"
    assert (await post(bot, webhook("ErpgoApiDown")))[1]["outcome"] == "new"
    await drained(bot)
    assert [h["text"].split(" —")[0] for h in heads(bot)] == [
        "RESOLVED: ErpgoApiDown (critical)",
        "FIRING: ErpgoApiDown (critical)",
    ]


async def test_erpgo_alerts_lists_the_open_threads_with_links(alert_bot):
    bot = await alert_bot()
    result = await bot.command("alerts")
    assert "No alert is firing" in result.json["blocks"][0]["text"]["text"]
    for name in ("HighErrorRate", "DatabaseConnectionPool", "ErpgoApiDown"):
        await post(bot, webhook(name))
    await post(bot, webhook("ErpgoApiDown", status="resolved"))
    await drained(bot)
    result = await bot.command("alerts")
    text = result.json["blocks"][0]["text"]["text"]
    assert "2 alert groups firing" in text
    assert "HighErrorRate" in text and "DatabaseConnectionPool" in text and "ErpgoApiDown" not in text
    links = re.findall(r"<(https://local\.slack\.com/archives/C0ALERTS/p\d+)\|thread>", text)
    assert len(links) == 2
    assert result.json.get("response_type", "ephemeral") == "ephemeral"
    help_blocks = (await bot.command("help")).json["blocks"]  # a long list takes several sections
    assert any("`/erpgo alerts`" in block["text"]["text"] for block in help_blocks)


async def test_a_burst_is_recorded_whole_and_paced_per_channel(alert_bot):
    """400 alerts in 8 groups as fast as they come: all accepted, one header per group, each
    showing all its alerts, never more messages in a channel than its token bucket lets through."""
    bot = await alert_bot(erpgo_slack_channel_interval=0.1, erpgo_slack_channel_burst=3)
    groups, per_group = 8, 50
    bodies = [
        webhook(f"Burst{g}", instances=(f"host-{n}",), truncated=per_group - 1)
        for n in range(per_group)
        for g in range(groups)
    ]
    limit = asyncio.Semaphore(16)

    async def send(body):
        async with limit:
            return (await post(bot, body))[0]

    statuses = await asyncio.gather(*(send(b) for b in bodies))
    assert statuses.count(200) == len(bodies)
    assert (await query(bot, "SELECT count(*) FROM alerts_received"))[0][0] == len(bodies)
    await drained(bot, timeout=60)
    assert len(heads(bot)) == groups
    assert all(f"— {per_group} firing" in h["text"] for h in heads(bot)), [h["text"][:60] for h in heads(bot)]
    writes = [c.at for c in bot.slack.calls if c.ok and c.method in ("chat.postMessage", "chat.update")]
    assert within_bucket(writes, burst=3, interval=0.1), "never faster than the channel's token bucket"
    assert len(writes) < len(bodies) / 5, "updates and joins were coalesced"


async def test_triage_proposals_become_approvals_requested_by_alertmanager(alert_bot, fresh_database, tmp_path):
    """DatabaseConnectionPool with a real lock wait: the blocking tree proposes to end the blocker,
    and the proposal is posted for approval in the alert's thread, after the triage report."""
    from tests.db_support import Blocking

    erp = fresh_database("erp")
    policy = tmp_path / "policy.yml"
    policy.write_text(
        'groups:\n  oncall: [U0BOB]\nverbs:\n  "*": [everyone]\nactions:\n  "db.*":\n    approvers: [oncall]\n'
    )
    scenario = await Blocking(erp).start()
    try:
        bot = await alert_bot(erpgo_database_url=erp, chatops_policy_file=str(policy))
        status, _ = await post(bot, webhook("DatabaseConnectionPool", instances=("postgres:5432",)))
        assert status == 200
        await drained(bot)
        await bot.settle()  # the approval messages follow once the report is in the thread
        [head] = heads(bot)
        thread = bot.slack.thread(CHANNEL, head["ts"])
        assert thread[0]["text"].startswith("Triage: DatabaseConnectionPool")
        report = content(thread[0])
        assert f"pid {scenario.blocker_pid}" in report and "idle in transaction" in report
        approvals = [m for m in thread[1:] if bot.slack.buttons(m)]
        assert approvals, [m["text"] for m in thread]
        rows = await query(bot, "SELECT requester, action, thread_ts, state FROM approvals")
        assert {r["requester"] for r in rows} == {"alertmanager"}
        assert all(r["thread_ts"] == head["ts"] and r["state"] == "pending" for r in rows)
        assert "db.terminate" in {r["action"] for r in rows}
    finally:
        await scenario.close()


# ---------------------------------------------------------------------- triage mapping and rendering


def test_triage_mapping_uses_the_guides_checks_and_falls_back_to_health():
    registry = build_registry()

    def names(alertname, labels=None):
        return [c.name for c in triage_checks(registry, [alertname], labels or {})]

    assert names("HighErrorRate") == [
        "api_health",
        "error_rate",
        "api_error_logs",
        "postgres_health",
        "connections_by_state",
        "slow_statements",
    ]
    assert names("DatabaseConnectionPool") == [
        "connections_by_state",
        "connections_by_client",
        "idle_in_transaction",
        "long_queries",
        "blocking_sessions",
    ]
    assert names("ErpgoP99LatencyHigh")[0] == "api_health" and "slow_statements" in names("ErpgoP99LatencyHigh")
    assert "docker_containers" in names("ContainerRestarting")
    memory = ["memory_usage", "goroutines", "pprof_profiles", "host_memory", "memory_processes"]
    assert names("HighMemoryUsage") == names("CriticalMemoryUsage") == names("HighMemoryUsageSystem") == memory
    assert names("HighGoroutineCount") == names("CriticalGoroutineCount") == ["goroutines", "pprof_profiles"]
    assert names("HighCPUUsage") == ["cpu_usage", "container_processes", "cpu_rate"]
    perf = ["api_latency", "slowest_statements", "cache_performance"]
    assert names("HighResponseTime") == names("CriticalResponseTime") == names("SLAViolationResponseTime") == perf
    app = ["container_start", "container_environment", "container_ports", "container_dependencies"]
    assert names("DockerContainerDown") == app
    assert names("HighFailedLoginRate") == ["attack_evidence", "security_settings"]
    assert names("SuspiciousAPIUsage") == names("DataExfiltrationDetection") == names("CriticalAuthFailureRate")
    assert "api_error_logs" in names("FailedLogins"), "other login alerts keep the guide's log check"
    disk = ["filesystem_usage", "docker_disk_usage", "container_logs", "database_disk"]
    assert names("HighDiskUsage") == disk and names("PostgreSQLDiskSpace") == disk
    assert names("NetworkErrors") == ["service_discovery", "compose_networks", "published_ports"]
    assert names("SomethingNobodyMapped") == [c.name for c in registry.verbs["health"].checks]
    assert names("Whatever", {"component": "redis"})[0] == "redis_health"
    backups = ["backup_freshness", "backup_verification", "backup_sizes", "backup_retention"]
    assert names("BackupFailed") == names("BackupOverdue") == names("LowBackupRetention") == backups
    # one container down: the app checks; several: the outage view (runbooks/emergency/outage.py decides)
    assert names("ApplicationDown") == names("ServiceDown") == ["outage_or_service_down"]


def test_header_links_are_safe_and_resolved_headers_show_the_duration():
    from datetime import datetime, timedelta

    fired = datetime(2025, 11, 30, 1, 0, tzinfo=UTC)
    view = GroupView(
        status="resolved",
        names=["HighErrorRate"],
        labels={"severity": "critical"},
        group_labels={"alertname": "HighErrorRate", "job": 'api "v2"'},
        annotations={"summary": "<!channel> errors", "runbook_url": "javascript:alert(1)"},
        external_url="http://am.example:9093/",
        generator_url="http://prom/graph?g0.expr=a|b",
        fired_at=fired,
        resolved_at=fired + timedelta(minutes=12, seconds=30),
        members={"f1": ("resolved", "api-1")},
    )
    shown = content(header_message(view))
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    assert "javascript:" not in shown and "Runbook" not in shown
    assert "12m 30s" in shown and "RESOLVED: HighErrorRate" in shown
    assert "a%7Cb" in shown  # a | in a URL would end the link
    assert silence_url("http://am.example:9093/", {"job": 'api "v2"'}) == (
        "http://am.example:9093/#/silences/new?filter=" + quote('{job="api \\"v2\\""}', safe="")
    )


# ---------------------------------------------------------------------- /erpgo logs


async def test_logs_verb_counts_5xx_and_panics_with_context(start_bot, erpgo_containers):
    bot = await start_bot(
        docker_host=erpgo_containers, erpgo_containers="erpgo-api,erpgo-postgres,erpgo-redis,erpgo-gone"
    )
    await bot.command("logs")
    [head] = bot.slack.channel_messages("C0OPS")
    assert "Logs erpgo-api" in content(head) and "5xx" in content(head) and "panic" in content(head)
    details = content(bot.slack.thread("C0OPS", head["ts"])[0])
    assert "panic: runtime error: invalid memory address" in details and "failed logins" in details

    bot.slack.reset()
    await bot.command("logs erpgo-gone 5")  # watched, but not there
    assert "container not found" in content(bot.slack.channel_messages("C0OPS")[0])
    bot.slack.reset()
    await bot.command("logs erpgo-postgres 30")
    assert "no 5xx, panics or errors" in content(bot.slack.channel_messages("C0OPS")[0])
    result = await bot.command("logs 0")
    assert "minutes must be between 1 and 1440" in result.json["blocks"][0]["text"]["text"]
