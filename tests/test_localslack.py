"""LocalSlack driven by the real slack_sdk client, a signature-checking receiver and a real Bolt app."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.local.slack import LocalSlack, render_text

SECRET = "test-signing-secret"

APPROVAL_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Terminate backend *4242*?"}},
    {
        "type": "actions",
        "block_id": "approval",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "ap-1",
                "style": "primary",
            },
            {
                "type": "button",
                "action_id": "deny",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": "ap-1",
                "style": "danger",
            },
        ],
    },
]


@pytest.fixture
async def slack():
    async with LocalSlack(signing_secret=SECRET) as local:
        yield local


@pytest.fixture
def client(slack):
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/slack/events"


# ---------------------------------------------------------------- Web API through slack_sdk


async def test_api_url_is_what_slack_sdk_joins_method_names_to(slack, client):
    assert slack.api_url.endswith("/api/")
    response = await client.auth_test()
    assert response.api_url == slack.api_url + "auth.test"
    assert (response["user_id"], response["team_id"], response["bot_id"]) == ("U0BOT", "T0LOCAL", "B0BOT")
    assert "chat:write" in response.headers["X-OAuth-Scopes"]


async def test_post_update_reply_ephemeral_permalink(slack, client):
    posted = await client.chat_postMessage(channel="C0OPS", text="Terminate?", blocks=APPROVAL_BLOCKS)
    ts = posted["ts"]
    assert posted["channel"] == "C0OPS" and posted["message"]["ts"] == ts
    assert "channel" not in posted["message"] and "history" not in posted["message"]
    assert posted["message"]["blocks"][0]["block_id"], "Slack fills in missing block_ids"

    reply = await client.chat_postMessage(channel="C0OPS", thread_ts=ts, text="evidence")
    nested = await client.chat_postMessage(channel="C0OPS", thread_ts=reply["ts"], text="more")
    assert float(ts) < float(reply["ts"]) < float(nested["ts"])
    assert [m["text"] for m in slack.thread("C0OPS", ts)] == ["evidence", "more"]
    assert [m["ts"] for m in slack.channel_messages("C0OPS")] == [ts]
    assert slack.messages["C0OPS", ts]["reply_count"] == 2

    updated = await client.chat_update(channel="C0OPS", ts=ts, text="Approved by bob", blocks=[])
    assert updated["message"]["edited"]["user"] == "U0BOT"
    message = slack.messages["C0OPS", ts]
    assert message["text"] == "Approved by bob" and message["blocks"] == []
    assert message["history"][0]["text"] == "Terminate?"

    ephemeral = await client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")
    assert ephemeral["message_ts"] == slack.ephemerals[0]["ts"]
    assert slack.ephemerals[0]["user"] == "U0ALICE"

    link = await client.chat_getPermalink(channel="C0OPS", message_ts=reply["ts"])
    assert link["permalink"] == (
        f"https://local.slack.com/archives/C0OPS/p{reply['ts'].replace('.', '')}?thread_ts={ts}&cid=C0OPS"
    )


async def test_form_encoded_body_and_token_field_are_accepted(slack):
    anonymous = AsyncWebClient(base_url=slack.api_url)
    response = await anonymous.api_call(
        "chat.postMessage",
        data={"token": slack.bot_token, "channel": "C0OPS", "text": "hi", "blocks": json.dumps(APPROVAL_BLOCKS)},
    )
    assert response["ok"]
    assert slack.messages["C0OPS", response["ts"]]["blocks"][1]["block_id"] == "approval"
    assert "token" not in slack.calls[-1].args


async def test_users_and_conversations_info(slack, client):
    slack.users["U0ALICE"] = {"name": "alice", "profile": {"email": "alice@example.com"}}
    user = await client.users_info(user="U0ALICE")
    assert user["user"]["name"] == "alice" and user["user"]["profile"]["email"] == "alice@example.com"
    channel = await client.conversations_info(channel="C0OPS")
    assert channel["channel"]["id"] == "C0OPS" and channel["channel"]["is_member"]


async def test_files_upload_v2_into_a_thread(slack, client):
    parent = await client.chat_postMessage(channel="C0OPS", text="report")
    result = await client.files_upload_v2(
        channel="C0OPS",
        thread_ts=parent["ts"],
        content="line 1\nline 2\n",
        filename="evidence.txt",
        title="Evidence",
        initial_comment="full evidence attached",
    )
    file = result["file"]
    assert file["title"] == "Evidence" and file["name"] == "evidence.txt"
    assert slack.files[file["id"]]["content"] == b"line 1\nline 2\n"
    [shared] = slack.thread("C0OPS", parent["ts"])
    assert shared["text"] == "full evidence attached" and shared["files"][0]["id"] == file["id"]
    assert [c.method for c in slack.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


async def test_wrong_or_missing_token(slack):
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).chat_postMessage(channel="C0OPS", text="x")
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    assert not slack.messages


async def test_update_of_unknown_message(client):
    with pytest.raises(SlackApiError) as error:
        await client.chat_update(channel="C0OPS", ts="1700000000.000001", text="x")
    assert error.value.response["error"] == "message_not_found"


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(value: str) -> dict:
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "Go"}, "value": value}
        ],
    }


@pytest.mark.parametrize(
    "blocks, pointer",
    [
        ([_section("x")] * 51, "/blocks]"),
        ([_section("x" * 3001)], "/blocks/0/text/text"),
        ([_button("v" * 2001)], "/blocks/0/elements/0/value"),
        ([_section("")], "/blocks/0/text/text"),
    ],
    ids=["51 blocks", "section text 3001", "button value 2001", "empty text"],
)
async def test_invalid_blocks(slack, client, blocks, pointer):
    with pytest.raises(SlackApiError) as error:
        await client.chat_postMessage(channel="C0OPS", text="fallback", blocks=blocks)
    assert error.value.response["error"] == "invalid_blocks"
    assert pointer in error.value.response["errors"][0]
    assert not slack.messages


async def test_channel_and_text_are_required(client):
    with pytest.raises(SlackApiError) as no_channel:
        await client.api_call("chat.postMessage", json={"text": "x"})
    assert no_channel.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as no_text:
        await client.api_call("chat.postMessage", json={"channel": "C0OPS"})
    assert no_text.value.response["error"] == "no_text"


# ---------------------------------------------------------------- fault injection


async def test_rate_limit_is_retried_by_slack_sdk_handler(slack):
    retry = AsyncRateLimitErrorRetryHandler(max_retry_count=1)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[retry])
    slack.fail("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    response = await client.chat_postMessage(channel="C0OPS", text="hello")
    assert response["ok"] and time.monotonic() - started >= 1
    first, second = slack.calls
    assert (first.status, first.response["error"], second.status) == (429, "ratelimited", 200)
    assert len(slack.messages) == 1


async def test_rate_limit_reaches_the_caller_without_a_handler(slack, client):
    slack.fail(status=429, retry_after=7)
    with pytest.raises(SlackApiError) as error:
        await client.chat_postMessage(channel="C0OPS", text="hello")
    assert error.value.response.status_code == 429
    assert error.value.response.headers["Retry-After"] == "7"


async def test_outage_until_recover(slack, client):
    slack.outage(503)
    for _ in range(2):
        with pytest.raises(SlackApiError) as error:
            await client.chat_postMessage(channel="C0OPS", text="hello")
        assert error.value.response.status_code == 503
        assert error.value.response["error"] == "service_unavailable"
    slack.recover()
    await client.chat_postMessage(channel="C0OPS", text="hello")
    assert [c.status for c in slack.calls] == [503, 503, 200]
    assert len(slack.messages) == 1


async def test_fail_counts_down_and_matches_method(slack, client):
    slack.fail("chat.update", status=500, times=2)
    posted = await client.chat_postMessage(channel="C0OPS", text="a")
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await client.chat_update(channel="C0OPS", ts=posted["ts"], text="b")
    await client.chat_update(channel="C0OPS", ts=posted["ts"], text="b")
    assert [(c.method, c.status) for c in slack.calls] == [
        ("chat.postMessage", 200),
        ("chat.update", 500),
        ("chat.update", 500),
        ("chat.update", 200),
    ]


async def test_delay(slack, client):
    slack.delay(0.3)
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.3


async def test_wait_for_past_future_and_timeout(slack, client):
    await client.auth_test()
    assert (await slack.wait_for(lambda c: c.method == "auth.test")).ok
    with pytest.raises(TimeoutError, match=r"auth\.test→200/ok"):
        await slack.wait_for(lambda c: c.method == "chat.postMessage", timeout=0.2)


# ---------------------------------------------------------------- response_url


async def test_response_url_kinds(slack, client):
    webhook = AsyncWebhookClient(slack.response_url(channel="C0OPS", user="U0ALICE"))
    assert (await webhook.send(text="only alice")).status_code == 200
    await webhook.send(text="everyone", response_type="in_channel")
    assert slack.ephemerals[-1]["text"] == "only alice" and slack.ephemerals[-1]["user"] == "U0ALICE"
    assert [m["text"] for m in slack.channel_messages("C0OPS")] == ["everyone"]
    assert [r["response_type"] for r in slack.responses] == ["ephemeral", "in_channel"]

    posted = await client.chat_postMessage(channel="C0OPS", text="approve?", blocks=APPROVAL_BLOCKS)
    message = slack.messages["C0OPS", posted["ts"]]
    on_message = AsyncWebhookClient(slack.response_url(channel="C0OPS", user="U0BOB", message=message))
    await on_message.send(text="approved", replace_original=True)
    assert message["text"] == "approved" and message["blocks"] == []
    bad = await on_message.send(text="x", blocks=[_section("y" * 3001)])
    assert bad.status_code == 400 and json.loads(bad.body)["error"] == "invalid_blocks"
    await on_message.send(delete_original=True)
    assert ("C0OPS", posted["ts"]) not in slack.messages


# ---------------------------------------------------------------- sender side


@pytest.fixture
async def receiver(slack):
    """A bare aiohttp endpoint that checks signatures like Bolt and parses bodies with Bolt's request class."""
    received: list[tuple[AsyncBoltRequest, dict]] = []
    verifier = SignatureVerifier(SECRET)

    async def events(request: web.Request) -> web.Response:
        body = await request.text()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401, text="invalid signature")
        received.append((AsyncBoltRequest(body=body, headers=dict(request.headers)), dict(request.headers)))
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner, slack.bot_url = await serve(app)
    yield received
    await runner.cleanup()


async def test_slash_is_signed_and_carries_slacks_fields(slack, receiver):
    result = await slack.slash("status db", user_id="U0ALICE", channel_id="C0OPS")
    assert result.status == 200 and result.within_ack_deadline
    [(request, headers)] = receiver
    body = request.body
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert set(body) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert (body["command"], body["text"], body["response_url"]) == ("/erpgo", "status db", result.response_url)
    context = request.context
    assert (context.team_id, context.user_id, context.channel_id) == ("T0LOCAL", "U0ALICE", "C0OPS")


async def test_bad_signature_and_stale_timestamp_are_rejected(slack, receiver):
    assert (await slack.slash("status", secret="not-the-secret")).status == 401
    assert (await slack.slash("status", timestamp=int(time.time()) - 600)).status == 401
    forged = b"command=%2Ferpgo&text=status"
    assert (await slack.raw_post(forged, {"Content-Type": "application/x-www-form-urlencoded"})).status == 401
    assert not receiver


async def test_click_sends_a_block_actions_payload(slack, client, receiver):
    posted = await client.chat_postMessage(channel="C0OPS", text="approve?", blocks=APPROVAL_BLOCKS)
    message = slack.messages["C0OPS", posted["ts"]]
    buttons = [(b["action_id"], b["style"]) for b in slack.buttons(message)]
    assert buttons == [("approve", "primary"), ("deny", "danger")]

    result = await slack.click(message, "approve", user_id="U0BOB", retry_num=1, retry_reason="http_timeout")
    assert result.status == 200
    [(request, headers)] = receiver
    payload = request.body
    assert headers["X-Slack-Retry-Num"] == "1" and headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert payload["type"] == "block_actions" and payload["response_url"] == result.response_url
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0OPS",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == posted["ts"] and payload["message"]["blocks"] == message["blocks"]
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "approval",
        "ap-1",
        "button",
    )
    assert (request.context.user_id, request.context.channel_id) == ("U0BOB", "C0OPS")

    with pytest.raises(LookupError, match="approve"):
        await slack.click(message, "no-such-button")


# ---------------------------------------------------------------- a real Bolt app


@pytest.fixture
async def bolt_app(slack):
    # With both token= and client=, Bolt warns and ignores token=, so the client carries it.
    app = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    runner, slack.bot_url = await serve(web_app)
    yield app
    await runner.cleanup()


async def test_bolt_app_receives_slash_and_click(slack, bolt_app):
    @bolt_app.command("/erpgo")
    async def erpgo(ack, command, say):
        await ack()
        await say(text=f"running {command['text']}", blocks=APPROVAL_BLOCKS)

    @bolt_app.action("approve")
    async def approve(ack, body, respond):
        await ack()
        await respond(text=f"approved by <@{body['user']['id']}>", replace_original=True)

    result = await slack.slash("status")
    assert result.status == 200 and result.body_text == ""
    said = await slack.wait_for(lambda c: c.method == "chat.postMessage")
    assert slack.calls[0].method == "auth.test", "Bolt authorizes the first request with auth.test"
    message = slack.messages["C0OPS", said.response["ts"]]
    assert message["text"] == "running status"

    assert (await slack.click(message, "approve", user_id="U0BOB")).status == 200
    await slack.wait_for(lambda c: c.method == "response_url")
    assert message["text"] == "approved by <@U0BOB>"
    assert render_text(message) == "approved by @U0BOB"


async def test_bolt_ack_with_text_shows_as_ephemeral(slack, bolt_app):
    @bolt_app.command("/erpgo")
    async def erpgo(ack):
        await ack(text="Working on it…")

    await slack.slash("status", user_id="U0ALICE")
    assert [(e["user"], e["text"], e["source"]) for e in slack.ephemerals] == [("U0ALICE", "Working on it…", "ack")]


async def test_bolt_rejects_a_bad_signature(slack, bolt_app):
    assert (await slack.slash("status", secret="wrong")).status == 401


# ---------------------------------------------------------------- rendering


def test_render_text():
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "DB locks"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "pid 42 blocks 3, see <https://x/y|runbook> <@U1>"},
                "fields": [{"type": "mrkdwn", "text": "*db* erp"}],
            },
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "<#C1|ops> &amp; <!here>"}]},
            *APPROVAL_BLOCKS[1:],
            {
                "type": "rich_text",
                "elements": [{"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "SELECT 1"}]}],
            },
        ],
    }
    assert render_text(message) == "\n".join(
        [
            "== DB locks ==",
            "pid 42 blocks 3, see runbook (https://x/y) @U1",
            "*db* erp",
            "-" * 40,
            "  #ops & @here",
            "[ Approve ]+ (approve)  [ Deny ]! (deny)",
            "```",
            "SELECT 1",
            "```",
        ]
    )
    assert render_text({"text": "plain <http://a>"}) == "plain http://a"
