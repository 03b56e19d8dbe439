"""People first: during an alert storm, a person's command goes before the notifications that arrive
while it runs — they wait (never refused) until its report is in Slack, for at most a moment, so a
long command cannot stop the intake."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.alerts.triage import triage_group
from bot.core.tasks import PeopleFirst, TaskTracker
from tests.alert_support import post, webhook
from tests.support import eventually


@pytest.fixture
async def held_api():
    """An ERPGo API whose /health answers only once the test releases it: a command that is still running."""
    release = asyncio.Event()
    asked = asyncio.Event()

    async def health(_request: web.Request) -> web.Response:
        asked.set()
        await release.wait()
        return web.json_response({"status": "healthy"})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/health/detailed", health)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")), asked, release
    release.set()
    await server.close()


async def answered_within(task: asyncio.Task, seconds: float) -> bool:
    done, _ = await asyncio.wait([task], timeout=seconds)
    return bool(done)


async def test_a_notification_arriving_during_a_command_is_recorded_after_its_report(alert_bot, held_api, tmp_path):
    api_url, asked, release = held_api
    bot = await alert_bot(erpgo_api_url=api_url)
    bot.runtime.tasks.people.first_for = 30.0  # this command keeps its precedence for as long as it runs
    command = asyncio.create_task(bot.command("health", channel_id="C0PEOPLE"))
    await asyncio.wait_for(asked.wait(), 10)

    notification = asyncio.create_task(post(bot, webhook("DiskFull", ["db-1"])))
    assert not await answered_within(notification, 0.5), "the notification waits while the command runs"
    release.set()
    await command
    status, answer = await asyncio.wait_for(notification, 10)

    assert (status, answer["status"]) == (200, "accepted")
    report = next(c for c in bot.slack.calls if c.method == "chat.postMessage" and c.args["channel"] == "C0PEOPLE")
    assert report.ok and "ERPGo health" in report.args["text"]


async def test_over_socket_mode_too_a_command_goes_before_the_notifications_arriving_meanwhile(
    start_socket_bot, held_api
):
    api_url, asked, release = held_api
    base, runtime, slack = await start_socket_bot(erpgo_api_url=api_url)
    runtime.tasks.people.first_for = 30.0
    slack.recover()
    await slack.wait_socket(timeout=15)
    await eventually(lambda: runtime.slack_link.connected, 15, "the socket connected")
    assert (await slack.socket_slash("health", channel_id="C0PEOPLE")).status == 200
    await asyncio.wait_for(asked.wait(), 10)

    notification = asyncio.create_task(post(base, webhook("DiskFull", ["db-1"])))
    assert not await answered_within(notification, 0.5), "the notification waits while the command runs"
    release.set()
    status, answer = await asyncio.wait_for(notification, 10)

    assert (status, answer["status"]) == (200, "accepted")
    report = next(c for c in slack.calls if c.method == "chat.postMessage" and c.args["channel"] == "C0PEOPLE")
    assert report.ok and "ERPGo health" in report.args["text"]


async def test_a_long_command_holds_the_intake_for_a_moment_only(alert_bot, held_api):
    api_url, asked, _release = held_api
    bot = await alert_bot(erpgo_api_url=api_url)
    assert bot.runtime.tasks.people.first_for <= 0.5  # Alertmanager's answer waits at most this long
    await bot.slack.slash("health", channel_id="C0PEOPLE")
    await asyncio.wait_for(asked.wait(), 10)

    status, answer = await asyncio.wait_for(post(bot, webhook("DiskFull", ["db-1"])), 10)

    assert (status, answer["status"]) == (200, "accepted")
    reports = [c for c in bot.slack.calls if c.method == "chat.postMessage" and c.args["channel"] == "C0PEOPLE"]
    assert reports == []  # the command still waits for its API


async def test_a_triage_waits_while_a_person_is_served(alert_bot):
    bot = await alert_bot()
    status, answer = await post(bot, webhook("DiskFull", ["db-1"]))
    assert status == 200
    await bot.settle()  # its triage ran; it is asked for again as a sweep would
    async with bot.runtime.store.acquire() as conn:
        await conn.execute("UPDATE alert_groups SET triage_state = 'pending' WHERE id = $1", answer["group"])
        queued = await conn.fetchval("SELECT count(*) FROM slack_outbox WHERE kind = 'triage'")
    people = bot.runtime.tasks.people
    people.first_for = 30.0
    person = people.begin()  # a command being answered

    triage = asyncio.create_task(triage_group(bot.runtime, answer["group"]))
    assert not await answered_within(triage, 0.5), "alert traffic waits while a person is served"
    people.end(person)
    assert await asyncio.wait_for(triage, 10) is not None
    async with bot.runtime.store.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slack_outbox WHERE kind = 'triage'") > queued


async def test_precedence_ends_with_the_request_and_with_what_it_started():
    people = PeopleFirst(first_for=30.0)
    tasks = TaskTracker()
    tasks.people = people
    finish = asyncio.Event()
    with people.serving():
        started = tasks.spawn(finish.wait(), name="report")
    waiting = asyncio.create_task(people.after_people())
    assert not await answered_within(waiting, 0.2), "the request's report is still being made"
    finish.set()
    await started
    await asyncio.wait_for(waiting, 5)


async def test_precedence_lapses_after_its_moment():
    people = PeopleFirst(first_for=0.05)
    people.begin()  # a request that never ends
    await asyncio.wait_for(people.after_people(), 5)
    await asyncio.wait_for(people.after_people(), 5)  # and it holds nothing any more
