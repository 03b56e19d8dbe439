"""LocalSlack's file uploads, per-channel rate limit, user groups and App Home, through the real slack_sdk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, FormData
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.local.slack import LocalSlack, RateLimit, render_text

EVIDENCE = "".join(f"pg_stat_activity row {n}\n" for n in range(1, 41))
HOME_BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Firing:* 2 alert groups"}}]


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with LocalSlack(signing_secret="test-signing-secret") as local:
        yield local


@pytest.fixture
def client(slack: LocalSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


# ---------------------------------------------------------------- files_upload_v2


async def test_files_upload_v2_lands_in_the_thread_with_its_content(slack, client):
    parent = await client.chat_postMessage(channel="C0OPS", text="🚨 DatabaseConnectionsHigh")
    reply = await client.chat_postMessage(channel="C0OPS", thread_ts=parent["ts"], text="triage")

    result = await client.files_upload_v2(
        channel="C0OPS",
        thread_ts=reply["ts"],
        content=EVIDENCE,
        filename="connections.txt",
        title="Connections by state",
        initial_comment="Full evidence (40 lines)",
    )

    # This slack_sdk version makes exactly these three requests; no files.info.
    assert [c.method for c in slack.calls[2:]] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    assert all(c.ok for c in slack.calls) and slack.calls[2].args["length"] == str(len(EVIDENCE.encode()))
    file_id = result["file"]["id"]
    assert result["file"]["title"] == "Connections by state" and "content" not in result["file"]

    recorded = slack.files[file_id]
    assert recorded["content"] == EVIDENCE.encode()
    assert (recorded["name"], recorded["title"]) == ("connections.txt", "Connections by state")
    # A reply to a reply is filed under the thread's original parent, as Slack does.
    assert (recorded["channel"], recorded["thread_ts"]) == ("C0OPS", parent["ts"])
    assert recorded["initial_comment"] == "Full evidence (40 lines)"

    shared = slack.thread("C0OPS", parent["ts"])[-1]
    assert shared["ts"] == recorded["message_ts"] and shared["text"] == "Full evidence (40 lines)"
    [entry] = shared["files"]
    assert entry["id"] == file_id and entry["mimetype"] == "text/plain" and entry["lines"] == 40
    assert entry["shares"]["public"]["C0OPS"][0] == {
        "ts": shared["ts"],
        "channel_name": "c0ops",
        "thread_ts": parent["ts"],
    }
    assert "content" not in entry

    shown = render_text(shared).splitlines()
    assert shown[:3] == ["Full evidence (40 lines)", "📎 Connections by state (40 lines)", "  pg_stat_activity row 1"]
    assert shown[-2:] == ["  pg_stat_activity row 5", "  … 35 more lines"]


async def test_files_upload_v2_of_bytes_without_a_thread(slack, client):
    payload = bytes(range(256))
    result = await client.files_upload_v2(channel="C0OPS", file=payload, filename="dump.bin", title="Raw dump")

    recorded = slack.files[result["file"]["id"]]
    assert recorded["content"] == payload and recorded["size"] == 256 and recorded["thread_ts"] is None
    [message] = slack.channel_messages("C0OPS")
    assert message["files"][0]["mimetype"] == "application/octet-stream" and "lines" not in message["files"][0]
    assert render_text(message) == "📎 Raw dump"


async def test_multipart_upload_to_the_upload_url(slack, client):
    step1 = await client.files_getUploadURLExternal(filename="postmortem.md", length=12)
    form = FormData()
    form.add_field("filename", b"# Postmortem", filename="postmortem.md", content_type="text/markdown")
    async with ClientSession() as http, http.post(step1["upload_url"], data=form) as answer:
        assert answer.status == 200 and (await answer.text()) == "OK - 12"

    done = await client.files_completeUploadExternal(
        files=[{"id": step1["file_id"], "title": "Postmortem"}], channel_id="C0OPS"
    )

    assert slack.files[step1["file_id"]]["content"] == b"# Postmortem"
    assert done["files"][0]["title"] == "Postmortem" and done["files"][0]["mimetype"] == "text/markdown"
    assert render_text(slack.channel_messages("C0OPS")[0]).splitlines() == ["📎 Postmortem (1 line)", "  # Postmortem"]


async def test_completing_a_file_never_uploaded_is_refused(slack, client):
    step1 = await client.files_getUploadURLExternal(filename="x.txt", length=3)
    with pytest.raises(SlackApiError) as refused:
        await client.files_completeUploadExternal(files=[{"id": step1["file_id"]}], channel_id="C0OPS")
    assert refused.value.response["error"] == "file_not_found"
    async with ClientSession() as http, http.post(f"{slack.base_url}/upload/v1/FNOSUCH", data=b"abc") as answer:
        assert answer.status == 404
    assert not slack.messages


# ---------------------------------------------------------------- rate limit


async def test_no_rate_limit_by_default(slack, client):
    for n in range(15):
        await client.chat_postMessage(channel="C0OPS", text=f"message {n}")
    assert len(slack.channel_messages("C0OPS")) == 15 and slack.ratelimited == 0


async def test_over_the_channel_burst_slack_answers_429_with_retry_after(slack, client):
    slack.limit_rate(RateLimit(per_second=1.0, burst=3))
    for n in range(3):
        await client.chat_postMessage(channel="C0OPS", text=f"burst {n}")

    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel="C0OPS", text="one too many")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    retry_after = int(limited.value.response.headers["Retry-After"])
    assert retry_after == 1
    assert slack.ratelimited == 1 and [m["text"] for m in slack.channel_messages("C0OPS")][-1] == "burst 2"

    # The limit is per channel, and only for posting: other channels and chat.update are untouched.
    await client.chat_postMessage(channel="C0OTHER", text="elsewhere")
    first = slack.channel_messages("C0OPS")[0]
    await client.chat_update(channel="C0OPS", ts=first["ts"], text="burst 0 (edited)")

    await asyncio.sleep(retry_after)  # what a well-behaved client does with Retry-After
    await client.chat_postMessage(channel="C0OPS", text="after waiting")
    assert slack.channel_messages("C0OPS")[-1]["text"] == "after waiting" and slack.ratelimited == 1


async def test_slack_sdk_retry_handler_gets_every_message_through(slack):
    slack.limit_rate(RateLimit(per_second=4.0, burst=2))
    patient = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=5)],
    )
    for n in range(4):
        await patient.chat_postMessage(channel="C0OPS", text=f"alert {n}")
    assert [m["text"] for m in slack.channel_messages("C0OPS")] == [f"alert {n}" for n in range(4)]
    assert slack.ratelimited >= 1  # the 429s happened and were honoured


async def test_posting_within_the_rate_never_sees_a_429(slack, client):
    slack.limit_rate(RateLimit(per_second=10.0, burst=2))
    started = time.monotonic()
    for n in range(8):
        # 2 at once (the burst), then one per 0.15 s: slower than the 10/s refill.
        await asyncio.sleep(max(0.0, started + 0.15 * (n - 1) - time.monotonic()))
        await client.chat_postMessage(channel="C0OPS", text=f"paced {n}")
    assert slack.ratelimited == 0 and len(slack.channel_messages("C0OPS")) == 8


# ---------------------------------------------------------------- user groups and App Home


async def test_usergroups_users_list(slack, client):
    slack.usergroups["S0DBA"] = ["U0ALICE", "U0CAROL"]
    answer = await client.usergroups_users_list(usergroup="S0DBA")
    assert answer["users"] == ["U0ALICE", "U0CAROL"]
    with pytest.raises(SlackApiError) as unknown:
        await client.usergroups_users_list(usergroup="S0NOBODY")
    assert unknown.value.response["error"] == "no_such_subteam"


async def test_views_publish_records_the_home_tab_per_user(slack, client):
    first = await client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": HOME_BLOCKS})
    assert slack.home_views["U0ALICE"]["blocks"][0]["text"]["text"] == "*Firing:* 2 alert groups"

    calm = [{"type": "section", "text": {"type": "mrkdwn", "text": "Nothing firing"}}]
    second = await client.views_publish(
        user_id="U0ALICE", view={"type": "home", "blocks": calm}, hash=first["view"]["hash"]
    )
    assert second["view"]["id"] == first["view"]["id"]
    assert slack.home_views["U0ALICE"]["blocks"][0]["text"]["text"] == "Nothing firing"
    assert "U0BOB" not in slack.home_views

    with pytest.raises(SlackApiError) as stale:
        await client.views_publish(
            user_id="U0ALICE", view={"type": "home", "blocks": HOME_BLOCKS}, hash=first["view"]["hash"]
        )
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as wrong:
        await client.views_publish(user_id="U0BOB", view={"type": "modal", "blocks": HOME_BLOCKS})
    assert wrong.value.response["error"] == "invalid_arguments"
    assert slack.home_views["U0ALICE"]["blocks"][0]["text"]["text"] == "Nothing firing"
    assert "U0BOB" not in slack.home_views
