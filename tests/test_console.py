"""The console in a real browser (Debian's Chromium driven by Playwright): the same local Slack and bot
as the shell, as a web page — a report, an approval by a colleague, an alert silenced through its
modal on a real Alertmanager, Block Kit and files drawn as Slack draws them, all updating live."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import struct
import sys
import zlib
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.local.console import Console, Verb, start_console
from bot.local.slack import LocalSlack
from demo.services import ServiceUnavailable, free_port
from tests.db_support import Blocking
from tests.fixtures.services import _unavailable
from tests.support import eventually

CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPS, ALERTS = "C0OPS", "C0ALERTS"
TOKEN = "console-webhook-token-0123456789"
POLICY = (
    'groups:\n  oncall: [U0ALICE, U0BOB]\nverbs:\n  "*": [everyone]\nactions:\n  "db.*":\n    approvers: [oncall]\n'
)
WAIT_MS = 20_000
# Set to a path (e.g. docs/console.png) to keep the screenshot the main test takes.
SCREENSHOT_ENV = "CONSOLE_SCREENSHOT"


@pytest.fixture
async def browser(tmp_path, monkeypatch):
    """Chromium through Playwright; a missing browser skips, and fails under CI."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable(ServiceUnavailable("playwright is not installed (pip install -e '.[test]')"))
    if shutil.which(CHROMIUM) is None:
        _unavailable(ServiceUnavailable(f"{CHROMIUM} is missing (apt-get install chromium)"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the browser's profile and scratch files stay in the test's folder
    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await playwright.stop()


async def open_console(browser, slack: LocalSlack, verbs=()):
    console = Console(slack, verbs, [(ALERTS, "alerts")])
    runner, port = await start_console(console, "127.0.0.1", 0)
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.locator("#live.on").wait_for(timeout=WAIT_MS)
    return page, runner, f"http://127.0.0.1:{port}"


async def test_erpgo_bot_console_serves_the_page_and_stops_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "console",
        "--port",
        "0",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        url = await asyncio.wait_for(console_url_printed(proc.stderr), 30)
        async with aiohttp.ClientSession() as http:
            async with http.get(url.group(1)) as page:
                assert page.status == 200 and "<title>ERPGo console</title>" in await page.text()
            async with http.get(url.group(1) + "api/state") as state:
                verbs = [v["name"] for v in (await state.json())["verbs"]]
        assert "/erpgo health" in verbs and "/erpgo db locks" in verbs
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def console_url_printed(stderr: asyncio.StreamReader) -> re.Match:
    """The line `ERPGo console: http://…/`, after whatever warnings come first."""
    while line := (await stderr.readline()).decode():
        found = re.search(r"ERPGo console: (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return found
    raise AssertionError("the console never said where it serves")


async def test_report_approval_and_silence_modal_in_the_browser(
    browser, start_bot, fresh_database, locked, alertmanager_factory, tmp_path
):
    bot, am = await start_bot_with_alertmanager(start_bot, fresh_database, locked[0], alertmanager_factory, tmp_path)
    verbs = [Verb(f"/erpgo {v.name}", v.usage, v.summary) for v in bot.runtime.registry.verbs.values()]
    page, runner, _ = await open_console(browser, bot.slack, verbs)
    try:
        await run_health_from_the_composer(page)
        await approve_as_a_colleague(page, locked[1])
        await asyncio.to_thread(am.fire, {"alertname": "ErpgoOrdersFailing", "severity": "critical"}, {})
        await silence_through_the_modal(page)
        await keep_screenshot(page, tmp_path)
        await page.locator("#home-tab").click()
        await page.locator("#messages .home", has_text="1 alert group firing").wait_for(timeout=WAIT_MS)
    finally:
        await page.close()
        await runner.cleanup()


async def start_bot_with_alertmanager(start_bot, fresh_database, erp_dsn, alertmanager_factory, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    am_port = free_port()
    bot = await start_bot(
        bot_database_url=fresh_database("console"),
        erpgo_database_url=erp_dsn,
        chatops_policy_file=str(policy),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=ALERTS,
        erpgo_slack_channel_interval=0.05,
        docker_host=f"unix://{tmp_path}/no-docker.sock",
        alertmanager_url=f"http://127.0.0.1:{am_port}",
    )
    am = await asyncio.to_thread(
        alertmanager_factory,
        bot.base_url + "/alerts/alertmanager",
        TOKEN,
        port=am_port,
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
    )
    return bot, am


async def run_health_from_the_composer(page) -> None:
    await page.select_option("#who", "U0ALICE")
    await page.locator("#compose").fill("/erpgo hea")
    suggestion = page.locator("#suggestions li", has_text="/erpgo health")
    await suggestion.wait_for(timeout=WAIT_MS)
    await page.locator("#compose").press("Tab")
    assert await page.locator("#compose").input_value() == "/erpgo health "
    await page.locator("#compose").press("Enter")
    report = page.locator("#messages .message", has=page.locator(".b-header", has_text="ERPGo health"))
    await report.first.wait_for(timeout=WAIT_MS)
    assert "PostgreSQL" in await report.first.inner_text()


async def approve_as_a_colleague(page, scenario: Blocking) -> None:
    await page.locator("#compose").fill("/erpgo db locks")
    await page.locator("#compose").press("Enter")
    locks = page.locator("#messages .message", has=page.locator(".b-header", has_text="db locks"))
    await locks.locator(".replies").wait_for(timeout=WAIT_MS)
    await locks.locator(".replies").click()
    approve = page.locator('#thread button[data-action-id="approval.approve"]')
    await approve.wait_for(timeout=WAIT_MS)
    assert "danger" in (await approve.get_attribute("class") or "")
    await page.select_option("#who", "U0BOB")  # the requester may not approve: a colleague does
    await approve.click()
    await page.locator("#confirm[open]").wait_for(timeout=WAIT_MS)
    await page.locator("#confirm-ok").click()
    done = page.locator("#thread .message", has_text="approved by @bob — executed: terminated backend")
    await done.first.wait_for(timeout=WAIT_MS)
    assert str(scenario.blocker_pid) in await done.first.inner_text()


async def silence_through_the_modal(page) -> None:
    await page.locator("#channels button", has_text="alerts").click()
    silence = page.locator('#messages button[data-action-id="alert.silence.custom"]')
    await silence.wait_for(timeout=WAIT_MS)
    await silence.click()
    modal = page.locator("#modal")
    await modal.locator("h2", has_text="Silence alerts").wait_for(timeout=WAIT_MS)
    await modal.locator('[data-action-id="duration"]').fill("forever")
    await modal.locator('[data-action-id="comment"]').fill("deploying the fix, INC-42")
    await modal.locator('button[type="submit"]').click()
    error = modal.locator(".b-input.has-error .field-error")
    await error.wait_for(timeout=WAIT_MS)
    assert "is not a duration" in await error.inner_text()
    assert await modal.locator('[data-action-id="comment"]').input_value() == "deploying the fix, INC-42"
    await modal.locator('[data-action-id="duration"]').fill("2h")
    await modal.locator('button[type="submit"]').click()
    await page.locator("#modal-backdrop").wait_for(state="hidden", timeout=WAIT_MS)
    header = page.locator("#messages .message", has_text="Silenced by @bob")
    await header.first.wait_for(timeout=WAIT_MS)
    await header.first.locator(".replies").click()
    update = page.locator("#thread .message", has_text="silenced this group until")
    await update.first.wait_for(timeout=WAIT_MS)


async def keep_screenshot(page, tmp_path: Path) -> None:
    shot = tmp_path / "console.png"
    await page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wanted = os.environ.get(SCREENSHOT_ENV)
    if wanted:
        shutil.copyfile(shot, wanted)


# ---------------------------------------------------------------------- Block Kit, menus, files, modals

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: Disk filling"}},
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*/var/lib/postgresql* is _92%_ full, see <https://example.com/x|the graph>",
        },
        "fields": [{"type": "mrkdwn", "text": "*Host*\ndb-1"}, {"type": "mrkdwn", "text": "*Free*\n3 GB"}],
        "accessory": {
            "type": "overflow",
            "action_id": "disk.more",
            "options": [
                {"text": {"type": "plain_text", "text": "Open a form"}, "value": "form"},
                {"text": {"type": "plain_text", "text": "Nothing"}, "value": "nothing"},
            ],
        },
    },
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "checked in 12 ms"}]},
    {
        "type": "actions",
        "elements": [
            {
                "type": "static_select",
                "action_id": "disk.keep",
                "placeholder": {"type": "plain_text", "text": "Keep logs for…"},
                "options": [
                    {"text": {"type": "plain_text", "text": "1 day"}, "value": "1d"},
                    {"text": {"type": "plain_text", "text": "7 days"}, "value": "7d"},
                ],
            },
            {
                "type": "button",
                "action_id": "disk.ok",
                "style": "primary",
                "text": {"type": "plain_text", "text": "OK"},
            },
        ],
    },
]
FORM = {
    "type": "modal",
    "callback_id": "disk.form",
    "title": {"type": "plain_text", "text": "Step 1"},
    "submit": {"type": "plain_text", "text": "Next"},
    "blocks": [
        {
            "type": "input",
            "block_id": "why",
            "label": {"type": "plain_text", "text": "Why"},
            "element": {"type": "plain_text_input", "action_id": "why"},
        }
    ],
}


def tiny_png(width: int = 48, height: int = 24) -> bytes:
    """A real PNG: a solid green image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x00\x7a\x5a" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class App:
    """A Slack app that checks Slack's signature on what it receives, and opens a form when asked."""

    def __init__(self, slack: LocalSlack):
        self.verifier = SignatureVerifier(slack.signing_secret)
        self.client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        self.received: list[dict] = []
        self.views: list[str] = []  # ids of the forms it opened

    async def events(self, request: web.Request) -> web.Response:
        body = await request.text()
        if not self.verifier.is_valid(
            body, request.headers["X-Slack-Request-Timestamp"], request.headers["X-Slack-Signature"]
        ):
            return web.Response(status=401)
        payload = json.loads(parse_qs(body)["payload"][0])
        self.received.append(payload)
        action = (payload.get("actions") or [{}])[0]
        if action.get("selected_option", {}).get("value") == "form":
            opened = await self.client.views_open(trigger_id=payload["trigger_id"], view=FORM)
            self.views.append(opened["view"]["id"])
        return web.Response(status=200)


async def test_block_kit_files_menus_and_modal_updates_drawn_live(browser, tmp_path):
    async with LocalSlack("console-test-secret") as slack:
        app = App(slack)
        web_app = web.Application()
        web_app.router.add_post("/slack/events", app.events)
        app_runner = web.AppRunner(web_app, access_log=None)
        await app_runner.setup()
        await web.TCPSite(app_runner, "127.0.0.1", 0).start()
        slack.bot_url = f"http://127.0.0.1:{app_runner.addresses[0][1]}/slack/events"
        page, runner, console_url = await open_console(browser, slack)
        try:
            await draws_blocks_and_menus(page, app, console_url)
            await draws_files(page, app, console_url)
            await opens_and_updates_a_modal(page, app)
        finally:
            await page.close()
            await runner.cleanup()
            await app_runner.cleanup()


async def draws_blocks_and_menus(page, app: App, console_url: str) -> None:
    await app.client.chat_postMessage(channel=OPS, text="Disk filling", blocks=BLOCKS)  # arrives live
    message = page.locator("#messages .message", has_text="Disk filling")
    await message.wait_for(timeout=WAIT_MS)
    assert await message.locator(".b-header").inner_text() == "🚨 Disk filling"
    assert await message.locator(".b-text b").first.inner_text() == "/var/lib/postgresql"
    assert await message.locator(".b-text i").inner_text() == "92%"
    assert await message.locator(".b-text a").get_attribute("href") == "https://example.com/x"
    assert await message.locator(".b-field").all_inner_texts() == ["Host\ndb-1", "Free\n3 GB"]
    assert await message.locator(".b-divider").count() == 1
    assert await message.locator(".b-context").inner_text() == "checked in 12 ms"
    assert "primary" in (await message.locator('button[data-action-id="disk.ok"]').get_attribute("class") or "")
    await message.locator('select[data-action-id="disk.keep"]').select_option("7d")
    chosen = await eventually_received(app, "disk.keep")
    assert chosen["actions"][0]["type"] == "static_select" and chosen["user"]["id"] == "U0YOU"


async def eventually_received(app: App, action_id: str) -> dict:
    def found():
        return next((p for p in app.received if p["actions"][0]["action_id"] == action_id), None)

    return await eventually(found, WAIT_MS / 1000, f"a signed block_actions for {action_id}")


async def draws_files(page, app: App, console_url: str) -> None:
    await app.client.files_upload_v2(channel=OPS, content=tiny_png(), filename="latency.png", title="API latency")
    lines = "".join(f"row {n}\n" for n in range(1, 13))
    await app.client.files_upload_v2(channel=OPS, content=lines, filename="evidence.txt", title="evidence.txt")
    chart = page.locator(".file.image img[alt='API latency']")
    await chart.wait_for(timeout=WAIT_MS)
    assert await chart.evaluate("img => img.complete && img.naturalWidth") == 48, "the PNG is drawn inline"
    text = page.locator(".file.text", has_text="evidence.txt")
    await text.wait_for(timeout=WAIT_MS)
    assert await text.locator("pre").inner_text() == "row 1\nrow 2\nrow 3\nrow 4\nrow 5"
    assert "7 more lines" in await text.inner_text()
    download = await text.locator("a", has_text="Download").get_attribute("href")
    async with aiohttp.ClientSession() as http, http.get(console_url + str(download)) as response:
        assert response.headers["Content-Disposition"] == 'attachment; filename="evidence.txt"'
        assert (await response.text()) == lines


async def opens_and_updates_a_modal(page, app: App) -> None:
    message = page.locator("#messages .message", has_text="Disk filling")
    await message.locator('button[data-action-id="disk.more"]').click()
    await message.locator(".overflow-menu button", has_text="Open a form").click()
    modal = page.locator("#modal")
    await modal.locator("h2", has_text="Step 1").wait_for(timeout=WAIT_MS)
    view = (await eventually_received(app, "disk.more"))["actions"][0]
    assert view["type"] == "overflow" and view["selected_option"]["value"] == "form"
    await app.client.views_update(
        view_id=app.views[-1], view={**FORM, "title": {"type": "plain_text", "text": "Step 2"}}
    )
    await modal.locator("h2", has_text="Step 2").wait_for(timeout=WAIT_MS)
