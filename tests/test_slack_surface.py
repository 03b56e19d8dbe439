"""What Slack sees of the bot: signatures, usage answers, odd input, /healthz and /metrics."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import eventually


async def test_bad_signature_is_401(start_bot):
    bot = await start_bot()
    result = await bot.slack.slash("health", secret="not-the-signing-secret")
    assert result.status == 401
    assert bot.slack.channel_messages("C0OPS") == []


async def test_stale_timestamp_is_401(start_bot):
    bot = await start_bot()
    result = await bot.slack.slash("health", timestamp=int(time.time()) - 600)
    assert result.status == 401


async def test_unsigned_request_is_401(start_bot):
    bot = await start_bot()
    body = urlencode({"command": "/erpgo", "text": "health", "user_id": "U1", "channel_id": "C0OPS"}).encode()
    result = await bot.slack.raw_post(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status == 401


async def test_help_lists_verbs_from_the_registry(start_bot):
    bot = await start_bot()
    result = await bot.command("help")
    assert result.status == 200
    text = result.json["blocks"][0]["text"]["text"]
    assert "`/erpgo health`" in text and "API health endpoints" in text
    assert bot.slack.channel_messages("C0OPS") == []  # help is only for the asker


async def test_unknown_verb_gets_usage_only_for_the_asker(start_bot):
    bot = await start_bot()
    result = await bot.command("frobnicate now")
    assert result.status == 200
    text = result.json["blocks"][0]["text"]["text"]
    assert "Unknown verb `frobnicate now`" in text and "`/erpgo health`" in text
    assert result.json.get("response_type", "ephemeral") == "ephemeral"
    assert bot.slack.channel_messages("C0OPS") == []


async def test_arguments_to_a_verb_without_any_get_usage(start_bot):
    bot = await start_bot()
    result = await bot.command("health please")
    assert "takes no arguments" in result.json["blocks"][0]["text"]["text"]


@pytest.mark.parametrize(
    "text",
    [
        'health "unbalanced',
        "héllo wörld ✓ 🚒",
        "<@U0ADMIN> <!channel> &amp; `code`",
        "show payload sizes",
        "x" * 4096,
        " ".join(["lorem", "ipsum"] * 700)[:4000],
    ],
)
async def test_odd_text_gets_a_sane_answer(start_bot, text):
    bot = await start_bot()
    result = await bot.command(text)
    assert result.status == 200
    answer = result.json["blocks"][0]["text"]["text"]
    assert "Unknown verb" in answer or "takes no arguments" in answer or "a command is at most 4,000" in answer
    assert len(answer) < 3000
    assert "<!channel>" not in answer and "<@U0ADMIN>" not in answer  # never re-broadcast mentions


async def test_healthz_and_metrics(start_bot):
    bot = await start_bot()
    await bot.command("nope")
    await bot.command("health")
    async with aiohttp.ClientSession() as http:
        async with http.get(bot.base_url + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"

        async def health_checks_observed() -> dict[tuple, float]:
            async with http.get(bot.base_url + "/metrics") as response:
                samples = {
                    (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                    for family in text_string_to_metric_families(await response.text())
                    for sample in family.samples
                }
            done = [key for key in samples if key[0] == "erpgo_commands_total" and ("verb", "health") in key[1]]
            return samples if done else {}

        samples = await eventually(health_checks_observed, what="the health report counted")
    assert samples[("erpgo_commands_total", (("outcome", "usage"), ("verb", "unknown")))] >= 1
    observed = {
        labels: value for (name, labels), value in samples.items() if name == "erpgo_check_duration_seconds_count"
    }
    assert any(dict(labels)["check"] == "api_health" and value >= 1 for labels, value in observed.items()), observed
