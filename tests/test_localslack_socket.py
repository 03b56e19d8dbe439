"""LocalSlack's modals (views.open, views.update, view_submission), Events API callbacks and Socket Mode, driven by
a real Bolt app over HTTP and over Slack's Socket Mode client."""

from __future__ import annotations

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.local.slack import LocalSlack
from tests.support import eventually

SECRET = "socket-test-secret"
BUTTON = [
    {
        "type": "actions",
        "elements": [{"type": "button", "action_id": "ask", "text": {"type": "plain_text", "text": "Ask"}}],
    }
]
MODAL = {
    "type": "modal",
    "callback_id": "ask.modal",
    "title": {"type": "plain_text", "text": "A question"},
    "submit": {"type": "plain_text", "text": "Send"},
    "private_metadata": "thread 42",
    "blocks": [
        {
            "type": "input",
            "block_id": "how_long",
            "label": {"type": "plain_text", "text": "How long"},
            "element": {"type": "plain_text_input", "action_id": "duration"},
        }
    ],
}


@pytest.fixture
async def slack():
    async with LocalSlack(signing_secret=SECRET) as local:
        yield local


@pytest.fixture
async def bolt_app(slack):
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        signing_secret=SECRET,
        process_before_response=True,
    )

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    slack.bot_url = f"http://{host}:{port}/slack/events"
    yield app
    await runner.cleanup()


async def test_a_click_opens_a_modal_and_its_submission_is_answered(slack, bolt_app):
    submitted: list[dict] = []

    @bolt_app.action("ask")
    async def ask(ack, body, client):
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @bolt_app.view("ask.modal")
    async def answered(ack, view):
        value = view["state"]["values"]["how_long"]["duration"]["value"]
        if not value.endswith("h"):
            await ack(response_action="errors", errors={"how_long": "say it in hours, like 4h"})
            return
        submitted.append({"value": value, "metadata": view["private_metadata"]})
        await ack()

    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    posted = await client.chat_postMessage(channel="C0OPS", text="ask me", blocks=BUTTON)
    message = slack.messages["C0OPS", posted["ts"]]
    await slack.click(message, "ask", user_id="U0BOB")
    modal = await eventually(lambda: slack.modal_of("U0BOB"), what="a modal in front of U0BOB")
    assert modal["title"]["text"] == "A question" and modal["private_metadata"] == "thread 42"

    refused = await slack.submit_view(modal, {"duration": "forever"})
    assert refused.status == 200 and modal["errors"] == {"how_long": "say it in hours, like 4h"}
    assert slack.modal_of("U0BOB") is modal, "a refused submission keeps the modal open"
    accepted = await slack.submit_view(modal, {"duration": "4h"})
    assert accepted.status == 200 and slack.modal_of("U0BOB") is None
    assert submitted == [{"value": "4h", "metadata": "thread 42"}]


async def test_views_open_needs_a_fresh_trigger_and_a_valid_modal(slack):
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as unknown:
        await client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert unknown.value.response["error"] == "invalid_trigger_id"
    trigger = slack._new_trigger("U0BOB")
    with pytest.raises(SlackApiError) as bad:
        await client.views_open(trigger_id=trigger, view={**MODAL, "title": {"type": "plain_text", "text": "x" * 30}})
    assert bad.value.response["error"] == "invalid_arguments"
    assert (await client.views_open(trigger_id=trigger, view=MODAL))["view"]["id"].startswith("V")


async def test_views_update_replaces_the_open_modal_and_refuses_a_stale_hash(slack):
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    opened = (await client.views_open(trigger_id=slack._new_trigger("U0BOB"), view=MODAL))["view"]
    step_two = {**MODAL, "title": {"type": "plain_text", "text": "Step two"}}
    updated = (await client.views_update(view_id=opened["id"], hash=opened["hash"], view=step_two))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert slack.modal_of("U0BOB")["title"]["text"] == "Step two", "the person now sees the new content"
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as unknown:
        await client.views_update(view_id="VNOPE", view=MODAL)
    assert unknown.value.response["error"] == "not_found"


async def test_app_home_opened_reaches_the_bolt_app(slack, bolt_app):
    @bolt_app.event("app_home_opened")
    async def home(event, client):
        await client.views_publish(
            user_id=event["user"],
            view={"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]},
        )

    assert (await slack.open_home("U0BOB")).status == 200
    view = await eventually(lambda: slack.home_views.get("U0BOB"), what="a published App Home")
    assert view["blocks"][0]["text"]["text"] == "*hi*"


async def test_socket_mode_connects_with_the_app_token_and_carries_commands(slack):
    web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    app = AsyncApp(client=web_client, signing_secret="unused", request_verification_enabled=False)

    @app.command("/erpgo")
    async def erpgo(ack, command):
        await ack(text=f"over the socket: {command['text']}")

    handler = AsyncSocketModeHandler(app, slack.app_token, ping_interval=1)
    try:
        await handler.connect_async()
        await slack.wait_socket()
        result = await slack.socket_slash("health", user_id="U0ALICE")
        assert result.status == 200 and result.json["text"] == "over the socket: health"
        assert [e["text"] for e in slack.ephemerals] == ["over the socket: health"]
        opened = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert opened and opened[0].ok
        await slack.drop_sockets()
        assert slack.sockets == 0
    finally:
        await handler.close_async()


async def test_tokens_are_not_interchangeable(slack):
    with pytest.raises(SlackApiError) as wrong_for_socket:
        await AsyncWebClient(token=slack.bot_token, base_url=slack.api_url).apps_connections_open(
            app_token=slack.bot_token
        )
    assert wrong_for_socket.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong_for_posting:
        await AsyncWebClient(token=slack.app_token, base_url=slack.api_url).chat_postMessage(channel="C0", text="x")
    assert wrong_for_posting.value.response["error"] == "not_allowed_token_type"
