"""bot.targets.alertmanager against a real Alertmanager (and amtool as an independent witness)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from bot.targets.alertmanager import (
    Alertmanager,
    AlertmanagerError,
    AlertmanagerUnreachable,
)
from demo.services import Alertmanager as AlertmanagerServer
from demo.services import free_port
from tests.fixtures.services import _in_ci, _start
from tests.support import eventually

LABELS = {"alertname": "ErpgoApiDown", "instance": "api-1", "severity": "critical"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    # Notifications go to a closed loopback port: only the API matters here.
    manager = AlertmanagerServer(tmp_path_factory.mktemp("am-target"), f"http://127.0.0.1:{free_port()}/hook", None)
    _start(manager)
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture
async def am(server: AlertmanagerServer) -> AsyncIterator[Alertmanager]:
    client = Alertmanager(server.url, timeout=5)
    yield client
    await client.close()


def hour_from_now() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now, now + dt.timedelta(hours=1)


async def amtool_silences(server: AlertmanagerServer) -> list[dict]:
    """Silences as amtool lists them (active and pending only, like `amtool silence query`)."""
    binary = shutil.which("amtool")
    if binary is None:
        if _in_ci():
            pytest.fail("amtool not found (CI never skips a missing tool)", pytrace=False)
        pytest.skip("amtool not found: install the Debian package prometheus-alertmanager")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "silence",
        "query",
        "--alertmanager.url",
        server.url,
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    silences: list[dict] = json.loads(out or b"[]")
    return silences


async def test_silence_mutes_the_matching_alert_and_expiring_it_lifts_that(am, server):
    await asyncio.to_thread(server.fire, LABELS, {"summary": "API down"})
    other = dict(LABELS, instance="api-2")
    await asyncio.to_thread(server.fire, other, {"summary": "API down"})
    starts, ends = hour_from_now()

    silence_id = await am.create_silence(
        {"alertname": "ErpgoApiDown", "instance": "api-1"}, starts, ends, "alice", "restarting the API"
    )

    silence = await am.get_silence(silence_id)
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "alice" and silence["comment"] == "restarting the API"
    assert {(m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in silence["matchers"]} == {
        ("alertname", "ErpgoApiDown", True, False),
        ("instance", "api-1", True, False),
    }
    listed = {s["id"]: s for s in await amtool_silences(server)}
    assert listed[silence_id]["status"]["state"] == "active"

    async def silenced_alert() -> dict | None:
        [alert] = await am.alerts({"instance": "api-1"})
        return alert if silence_id in alert["status"]["silencedBy"] else None

    alert = await eventually(silenced_alert)
    assert alert["status"]["state"] == "suppressed"
    [unsilenced] = await am.alerts({"alertname": "ErpgoApiDown"}, silenced=False)
    assert unsilenced["labels"]["instance"] == "api-2" and not unsilenced["status"]["silencedBy"]
    assert [s["id"] for s in await am.silences({"instance": "api-1"})] == [silence_id]

    await am.expire_silence(silence_id)

    assert (await am.get_silence(silence_id))["status"]["state"] == "expired"
    assert silence_id not in {s["id"] for s in await amtool_silences(server)}

    async def active_again() -> bool:
        [alert] = await am.alerts({"instance": "api-1"})
        return alert["status"]["state"] == "active" and not alert["status"]["silencedBy"]

    await eventually(active_again)
    await am.expire_silence(silence_id)  # a second Unsilence is harmless


async def test_filter_values_are_escaped_not_interpreted(am, server):
    tricky = {"alertname": "ErpgoQuote", "path": 'a "quoted", \\odd} value'}
    await asyncio.to_thread(server.fire, tricky)
    [alert] = await am.alerts({"path": tricky["path"]})
    assert alert["labels"] == tricky
    assert await am.alerts({"path": "a "}) == []


async def test_alertmanager_refusals_are_clear_errors(am):
    starts, ends = hour_from_now()
    with pytest.raises(AlertmanagerError) as backwards:
        await am.create_silence({"alertname": "X"}, ends, starts, "alice", "backwards")
    assert backwards.value.status == 400 and "start time must be before end time" in backwards.value.text

    with pytest.raises(AlertmanagerError) as unknown:
        await am.get_silence("00000000-0000-0000-0000-000000000000")
    assert unknown.value.status == 404

    with pytest.raises(ValueError):
        await am.create_silence({}, starts, ends, "alice", "would silence everything")
    with pytest.raises(ValueError):
        await am.create_silence({'alertname="x"': "y"}, starts, ends, "alice", "not a label")


async def test_status_says_it_is_reachable(am):
    status = await am.status()
    assert status["versionInfo"]["version"] and status["cluster"]["status"] in ("ready", "disabled", "settling")


async def test_unreachable_port_is_an_oserror():
    client = Alertmanager(f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        with pytest.raises(OSError):
            await client.status()
    finally:
        await client.close()


async def test_a_silent_server_times_out_as_an_oserror():
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client = Alertmanager(f"http://127.0.0.1:{port}", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(OSError):
            await client.status()
        assert time.monotonic() - started < 3
    finally:
        await client.close()
        silent.close()


async def test_a_dropped_connection_is_a_connection_error():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    rude = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    client = Alertmanager(f"http://127.0.0.1:{rude.sockets[0].getsockname()[1]}", timeout=2)
    try:
        # aiohttp reports a clean hang-up as ServerDisconnectedError, which is no OSError of its own.
        with pytest.raises(AlertmanagerUnreachable) as dropped:
            await client.status()
        assert isinstance(dropped.value, ConnectionError)
    finally:
        await client.close()
        rude.close()


# ---------------------------------------------------------------- authentication


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback server that records requests, answers /api/v2/status, and echoes auth in a 403 elsewhere."""
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path == "/api/v2/status":
            return web.json_response({"versionInfo": {"version": "0.25.0"}})
        return web.json_response(f"forbidden for {request.headers.get('Authorization')}", status=403)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", seen
    await runner.cleanup()


async def test_basic_auth_is_sent_and_kept_out_of_errors(recorder):
    url, seen = recorder
    client = Alertmanager(url, username="oncall", password="s3cret-pw", timeout=2)
    try:
        await client.status()
        assert seen[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"oncall:s3cret-pw").decode()
        with pytest.raises(AlertmanagerError) as refused:
            await client.get_silence("00000000-0000-0000-0000-000000000000")
    finally:
        await client.close()
    assert refused.value.status == 403 and "forbidden" in refused.value.text
    shown = str(refused.value)
    assert "s3cret-pw" not in shown and base64.b64encode(b"oncall:s3cret-pw").decode() not in shown


async def test_bearer_token_is_sent_and_kept_out_of_errors(recorder):
    url, seen = recorder
    client = Alertmanager(url, bearer_token="am-token-1234567", timeout=2)
    try:
        await client.status()
        assert seen[-1].headers["Authorization"] == "Bearer am-token-1234567"
        with pytest.raises(AlertmanagerError) as refused:
            await client.expire_silence("00000000-0000-0000-0000-000000000000")
    finally:
        await client.close()
    assert seen[-1].method == "DELETE" and seen[-1].path == "/api/v2/silence/00000000-0000-0000-0000-000000000000"
    assert "am-token-1234567" not in str(refused.value)


async def test_no_auth_sends_no_authorization_header(recorder):
    url, seen = recorder
    client = Alertmanager(url, timeout=2)
    try:
        await client.status()
    finally:
        await client.close()
    assert "Authorization" not in seen[-1].headers


def test_conflicting_auth_settings_are_refused():
    with pytest.raises(ValueError):
        Alertmanager("http://127.0.0.1:9093", username="u", password="p", bearer_token="t", timeout=1)
    with pytest.raises(ValueError):
        Alertmanager("http://127.0.0.1:9093", password="p", timeout=1)
