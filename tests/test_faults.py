"""The fault matrix: the bot's own database stopped mid-operation; the target database, Redis, the API
and the Docker engine taken away and given back; Slack answering 500 and 429; SIGTERM in the middle
of a batch of triage; a process killed outright. The bot recovers without a restart where it can, and
nothing is lost: every acked report and every accepted alert is posted, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bot.local.slack import LocalSlack
from demo.services import PostgresServer, ServiceUnavailable, free_port
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]
OPS, ALERTS = "C0OPS", "C0ALERTS"
TOKEN = "faults-webhook-token-0123456789"
CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT")


# ---------------------------------------------------------------------- a service that can be taken away


class Gate:
    """A forwarder in front of a real service (TCP, or the Docker engine's unix socket). Shut, the
    service is gone for the bot — new connections refused, open ones cut; opened again, it is back at
    the same address."""

    def __init__(self, upstream: tuple[str, int] | str, socket_dir: str = ""):
        self.upstream = upstream
        self.unix = isinstance(upstream, str)
        self.port = free_port()
        self.path = os.path.join(socket_dir, "gate.sock")  # a short directory: a socket path has 108 bytes
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        if self.unix:
            self._server = await asyncio.start_unix_server(self._serve, self.path)
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def shut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._streams):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None
        if self.unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self.upstream, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._streams |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._streams -= {writer, up_writer}


def through(gate: Gate, url: str) -> str:
    """`url` with its host:port replaced by the gate's."""
    return re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{gate.port}", url, count=1)


# ---------------------------------------------------------------------- helpers


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def post_alert(base_url: str, alertname: str, group: str, key: str = "") -> tuple[int, dict]:
    labels = {"alertname": alertname, "severity": "critical", "group": group}
    body = {
        "version": "4",
        "groupKey": key or f'{{}}:{{alertname="{alertname}", group="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"{alertname} {group}"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "instance": f"{group}-1"},
                "annotations": {},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"fp-{group}",
            }
        ],
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(base_url + "/alerts/alertmanager", data=json.dumps(body), headers=headers) as response:
            return response.status, await response.json(content_type=None)


async def one(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def heads(slack: LocalSlack, channel: str) -> list[dict]:
    return slack.channel_messages(channel)


def ok_posts(slack: LocalSlack) -> list:
    return [c for c in slack.calls if c.method == "chat.postMessage" and c.ok]


def line_status(head: dict, component: str) -> str | None:
    """The emoji of `component`'s line in a report headline (for a container, or the engine's own
    line when the engine cannot be reached)."""
    text = "\n".join(b["text"]["text"] for b in head.get("blocks", []) if b.get("type") == "section")
    names = [component, "Docker"] if component.startswith("Docker ") else [component]
    for name in names:
        match = re.search(rf"^(:[a-z_]+:) \*{re.escape(name)}\*", text, re.M)
        if match:
            return match.group(1)
    return None


async def report(bot, user: str = "U0ALICE") -> dict:
    before = len(heads(bot.slack, OPS))
    await bot.command("health", user_id=user)
    posted = heads(bot.slack, OPS)
    assert len(posted) == before + 1, "one report per command"
    return posted[-1]


@pytest.fixture(scope="module")
def bot_pg(tmp_path_factory):
    """A PostgreSQL of the bot's own that tests may stop and start."""
    server = PostgresServer(tmp_path_factory.mktemp("botpg"), pg_stat_statements=False)
    try:
        server.start()
    except ServiceUnavailable as exc:
        server.cleanup()
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{exc} (CI never skips a missing service)", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.cleanup()


# ---------------------------------------------------------------------- the bot's own database


async def test_bot_database_stopped_mid_operation_loses_nothing(start_bot, bot_pg):
    await asyncio.to_thread(bot_pg.create_database, "faults_db")
    dsn = bot_pg.dsn("faults_db")
    bot = await start_bot(
        bot_database_url=dsn,
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=ALERTS,
        erpgo_slack_channel_interval=0.05,
        erpgo_slack_max_backoff=1,
    )
    await bot.command("help")  # Bolt's own auth.test, before Slack fails
    assert (await get(bot.base_url + "/healthz"))[0] == 200

    # a report acked and queued while Slack fails; then the database stops under it
    bot.slack.outage(500)
    queued = await bot.slack.slash("health", user_id="U0QUEUED")
    assert queued.status == 200
    await eventually(lambda: any(c.status == 500 for c in bot.slack.calls), what="Slack failing")
    await asyncio.to_thread(bot_pg.stop)
    status, health = await get(bot.base_url + "/healthz")
    assert status == 503 and health["status"] == "unavailable" and health["down"] == ["bot_database"]
    assert health["bot_database"]["ok"] is False and health["bot_database"]["error"]
    assert (await get(bot.base_url + "/livez"))[0] == 200 and (await get(bot.base_url + "/healthz?live"))[0] == 200

    # while it is down: an alert is refused so that Alertmanager retries, a report goes by response_url
    status, answer = await post_alert(bot.base_url, "HighErrorRate", "db-down")
    assert status == 503 and "retry" in answer["message"]
    bot.slack.recover()
    fallback = await bot.slack.slash("health", user_id="U0FALLBACK")
    assert fallback.status == 200
    await eventually(lambda: len(bot.slack.responses) >= 2, what="the report through the response_url")
    assert [r["response_type"] for r in bot.slack.responses] == ["in_channel", "in_channel"]
    assert "ERPGo health" in (bot.slack.responses[0]["text"] or "")

    # back, without a restart of the bot
    await asyncio.to_thread(bot_pg.start)
    await eventually(lambda: _ok(bot.base_url + "/healthz"), timeout=15, what="healthz 200 again")
    status, _ = await post_alert(bot.base_url, "HighErrorRate", "db-down")  # Alertmanager's retry
    assert status == 200
    await bot.settle(60)
    await eventually(
        lambda: one(dsn, "SELECT count(*) = 0 FROM slack_outbox WHERE state = 'pending'"), 20, "the outbox drained"
    )
    await eventually(lambda: one(dsn, "SELECT bool_and(triage_state = 'done') FROM alert_groups"), 20, "triage done")
    await bot.settle(60)

    # exactly once: the queued report (head + details), and the alert's header + triage
    queued_heads = [c for c in ok_posts(bot.slack) if c.args["channel"] == OPS and not c.args.get("thread_ts")]
    assert len(queued_heads) == 1 and "U0QUEUED" in json.dumps(queued_heads[0].args)
    assert len(bot.slack.thread(OPS, queued_heads[0].response["ts"])) == 1
    [alert_head] = heads(bot.slack, ALERTS)
    assert [m["text"].split(":")[0] for m in bot.slack.thread(ALERTS, alert_head["ts"])] == ["Triage"]


async def _ok(url: str) -> bool:
    try:
        return (await get(url))[0] == 200
    except aiohttp.ClientError:
        return False


# ---------------------------------------------------------------------- the targets


@pytest.fixture
async def gates(simulator, erp_dsn, redis_server, erpgo_containers, docker_engine):
    """(settings for a healthy deployment reached through gates, {part: gate})."""
    with tempfile.TemporaryDirectory(prefix="erpgo-gate-") as socket_dir:
        async for found in _gates(simulator, erp_dsn, redis_server, docker_engine, socket_dir):
            yield found


async def _gates(simulator, erp_dsn, redis_server, docker_engine, socket_dir: str):
    api = Gate(("127.0.0.1", int(simulator.url.rsplit(":", 1)[1])))
    database = Gate(("127.0.0.1", int(re.search(r":(\d+)/", erp_dsn).group(1))))
    cache = Gate(("127.0.0.1", redis_server.port))
    docker = Gate(docker_engine.host.removeprefix("unix://"), socket_dir)
    parts = {"api": api, "database": database, "redis": cache, "docker": docker}
    for gate in parts.values():
        await gate.open()
    settings = {
        "erpgo_api_url": f"http://127.0.0.1:{api.port}",
        "erpgo_database_url": through(database, erp_dsn),
        "erpgo_redis_url": through(cache, redis_server.url),
        "docker_host": f"unix://{docker.path}",
        "erpgo_containers": "erpgo-api,postgres,redis",
        "erpgo_check_timeout": 3,
    }
    yield settings, parts
    for gate in parts.values():
        if gate._server is not None:
            await gate.shut()


COMPONENTS = {"api": "ERPGo API", "database": "PostgreSQL", "redis": "Redis", "docker": "Docker erpgo-api"}
GREEN = ":large_green_circle:"


async def test_targets_taken_away_are_red_and_green_again_without_a_restart(start_bot, gates):
    settings, parts = gates
    bot = await start_bot(**settings)
    head = await report(bot)
    assert {part: line_status(head, name) for part, name in COMPONENTS.items()} == dict.fromkeys(COMPONENTS, GREEN)

    for gate in parts.values():
        await gate.shut()
    head = await report(bot)
    down = {part: line_status(head, name) for part, name in COMPONENTS.items()}
    assert all(status not in (None, GREEN) for status in down.values()), down

    for gate in parts.values():
        await gate.open()

    async def all_green() -> bool:
        head = await report(bot)
        return all(line_status(head, name) == GREEN for name in COMPONENTS.values())

    await eventually(all_green, timeout=30, every=0.5, what="every line green again")


# ---------------------------------------------------------------------- Slack failing


@pytest.mark.parametrize("fault", ["500 for a while", "429 Retry-After 2"])
async def test_slack_failing_every_acked_report_is_posted_once(start_bot, fresh_database, fault):
    bot = await start_bot(bot_database_url=fresh_database("faults"), erpgo_slack_max_backoff=1)
    await bot.command("help")  # Bolt's own auth.test, before Slack fails
    if fault.startswith("500"):
        bot.slack.outage(500)
    else:
        bot.slack.fail("chat.postMessage", 429, retry_after=2, times=2)
    acks = [await bot.slack.slash("health", user_id=f"U0USER{n}") for n in range(3)]
    assert all(a.status == 200 and a.within_ack_deadline and "Running health checks" in a.json["text"] for a in acks)
    if fault.startswith("500"):
        await eventually(lambda: sum(c.status == 500 for c in bot.slack.calls) >= 4, what="Slack failing a while")
        bot.slack.recover()
    await bot.settle(60)
    posted = heads(bot.slack, OPS)
    assert sorted(re.search(r"U0USER\d", json.dumps(h)).group(0) for h in posted) == ["U0USER0", "U0USER1", "U0USER2"]
    assert all(len(bot.slack.thread(OPS, h["ts"])) == 1 for h in posted), "details once under each"
    assert len(ok_posts(bot.slack)) == 6, "nothing twice"
    if fault.startswith("429"):
        limited = next(c for c in bot.slack.calls if c.status == 429)
        assert ok_posts(bot.slack)[0].at - limited.at >= 1.9, "Retry-After honoured"


# ---------------------------------------------------------------------- stopping, as a process


class BotProcess:
    """`erpgo-bot serve` as a subprocess of its own, its output kept."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                env=base | self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT,
            )  # fmt: skip
        await eventually(lambda: _ok(self.url + "/livez"), timeout=30, what="the bot process answering")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def process_env(simulator, fresh_database):
    slack = LocalSlack(secrets.token_hex(16))
    await slack.start()
    dsn = fresh_database("faults_proc")
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "BOT_DATABASE_URL": dsn,
        "ALERT_WEBHOOK_TOKEN": TOKEN,
        "ERPGO_ALERT_CHANNEL": ALERTS,
        "ERPGO_API_URL": simulator.url,
        "ERPGO_CHECK_TIMEOUT": "10",
        "ERPGO_SHUTDOWN_GRACE": "2",
        "ERPGO_SLACK_CHANNEL_INTERVAL": "0.05",
        "ERPGO_SLACK_MAX_BACKOFF": "1",
        "PYTHONPATH": str(ROOT),
    }
    started: list[BotProcess] = []
    yield slack, dsn, env, started
    for bot in started:
        await bot.kill()
    await slack.close()


def spawn(env: dict, tmp_path: Path, started: list, name: str) -> BotProcess:
    bot = BotProcess(env, tmp_path / f"{name}.log")
    started.append(bot)
    return bot


async def test_sigterm_mid_batch_drains_releases_and_the_next_start_finishes_the_work(process_env, simulator, tmp_path):
    slack, dsn, env, started = process_env
    simulator.app["sim"].update({"delay": 5})  # every triage and report waits on a slow API
    first = spawn(env, tmp_path, started, "first")
    await first.start()
    groups = [f"g{n}" for n in range(6)]
    for group in groups:
        assert (await post_alert(first.url, "HighErrorRate", group))[0] == 200
    slack.bot_url = first.url + "/slack/events"
    acked = await slack.slash("health", user_id="U0WAITING")
    assert acked.status == 200
    await eventually(
        lambda: one(dsn, "SELECT count(*) FROM alert_groups WHERE triage_state = 'running'"), what="triage running"
    )

    first.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    # draining: intake refuses new work (Alertmanager retries), liveness still answers
    status, answer = await post_alert(first.url, "HighErrorRate", "late")
    assert status == 503 and answer["status"] == "stopping"
    assert (await get(first.url + "/healthz"))[0] == 503 and (await get(first.url + "/livez"))[0] == 200
    code = await asyncio.wait_for(first.proc.wait(), 20)  # type: ignore[union-attr]
    output = first.output()
    assert code == 0 and "Traceback" not in output, output[-3000:]
    assert '"work_interrupted"' in output or "work_interrupted" in output
    states = await one(dsn, "SELECT array_agg(triage_state ORDER BY id) FROM alert_groups")
    assert set(states) == {"pending"}, "the interrupted claims were given back"

    # the next start takes it all up at once
    simulator.app["sim"].update({"delay": 0})
    second = spawn(env, tmp_path, started, "second")
    await second.start()
    assert (await post_alert(second.url, "HighErrorRate", "late"))[0] == 200  # Alertmanager's retry
    await eventually(
        lambda: one(dsn, "SELECT bool_and(triage_state = 'done') AND count(*) = 7 FROM alert_groups"), 30, "triage done"
    )
    await eventually(
        lambda: one(dsn, "SELECT count(*) = 0 FROM slack_outbox WHERE state = 'pending'"), 30, "the outbox drained"
    )
    alert_heads = heads(slack, ALERTS)
    assert len(alert_heads) == 7, [h["text"][:50] for h in alert_heads]
    for head in alert_heads:
        assert [m["text"].split(":")[0] for m in slack.thread(ALERTS, head["ts"])] == ["Triage"], "once each"
    # the report acked before the stop was answered: posted, or said to be interrupted — once
    answered = [m for m in heads(slack, OPS) if "U0WAITING" in json.dumps(m) or "was interrupted" in m["text"]]
    assert len(answered) == 1, [m["text"][:80] for m in heads(slack, OPS)]
    assert await second.stop() == 0 and "Traceback" not in second.output()


async def test_a_killed_process_leaves_a_lease_another_replica_takes(process_env, simulator, start_bot, tmp_path):
    slack, dsn, env, started = process_env
    simulator.app["sim"].update({"delay": 5})
    doomed = spawn(env, tmp_path, started, "doomed")
    await doomed.start()
    assert (await post_alert(doomed.url, "HighErrorRate", "orphan"))[0] == 200
    await eventually(lambda: one(dsn, "SELECT triage_state = 'running' FROM alert_groups"), what="triage running")
    await eventually(lambda: len(heads(slack, ALERTS)) == 1, what="the header posted")
    await eventually(lambda: one(dsn, "SELECT bool_and(state = 'sent') FROM slack_outbox"), what="the header recorded")
    await doomed.stop(signal.SIGKILL)
    lease_left = await one(dsn, "SELECT extract(epoch FROM triage_lease_until - now()) FROM alert_groups")
    assert 0 < lease_left <= 30, "a lease, not ten minutes"
    await one(dsn, "UPDATE alert_groups SET triage_lease_until = now() - interval '1 second'")  # as 30 s later

    simulator.app["sim"].update({"delay": 0})
    replica = await start_bot(
        slack=slack,
        bot_database_url=dsn,
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=ALERTS,
        erpgo_api_url=simulator.url,
        erpgo_slack_channel_interval=0.05,
    )
    await eventually(lambda: one(dsn, "SELECT triage_state = 'done' FROM alert_groups"), 15, "triage taken over")
    await replica.settle()
    await eventually(
        lambda: one(dsn, "SELECT count(*) = 0 FROM slack_outbox WHERE state = 'pending'"), 15, "the outbox drained"
    )
    [head] = heads(slack, ALERTS)
    assert [m["text"].split(":")[0] for m in slack.thread(ALERTS, head["ts"])] == ["Triage"]
