"""Charts end to end: a rule firing in a real Prometheus → a real Alertmanager → the bot's webhook → the
alert's thread, which gets the triage text and then a PNG of the rule's value crossing its threshold;
`/erpgo graph` against the same Prometheus; a query of 10,000 series cut down before plotting."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from bot.local.text import render_text
from demo.services import free_port
from tests.support import eventually

TOKEN = "am-webhook-token-charts-0123456789"
CHANNEL = "C0ALERTS"
RATIO = "erpgo_test_error_ratio"
RULES = {
    "groups": [
        {
            "name": "erpgo-test",
            "interval": "1s",
            "rules": [
                {
                    "alert": "HighErrorRate",
                    "expr": f"{RATIO} > 0.5",
                    "for": "0s",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "error ratio above 50 %"},
                }
            ],
        }
    ]
}
SERIES_BLUE = (0x1F, 0x77, 0xB4)  # the first series' colour (bot/slack/charts.py)
THRESHOLD_RED = (0xD6, 0x27, 0x28)


def rows_of(image: Image.Image, colour: tuple[int, int, int]) -> list[int]:
    """The pixel rows where `colour` is drawn."""
    pixels = image.convert("RGB").load()
    assert pixels is not None
    width, height = image.size
    return sorted({y for y in range(height) for x in range(0, width, 2) if pixels[x, y] == colour})


async def scraped(bot, expr: str, samples: int) -> bool:
    """Prometheus has at least `samples` points of `expr` over the last minute."""
    now = time.time()
    answer = await bot.runtime.targets.prometheus.query_range(expr, now - 60, now)
    return bool(answer.series) and len(answer.series[0].points) >= samples


@pytest.fixture
async def charted(start_bot, fresh_database, metrics_endpoint, prometheus_factory, alertmanager_factory, tmp_path):
    """A bot with alert intake and PROMETHEUS_URL; a real Alertmanager posting to it; a real Prometheus
    scraping the test's /metrics every second, its rule's alerts sent to that Alertmanager."""
    metrics_endpoint.set(RATIO, 0.02, service="api")
    port = free_port()
    bot = await start_bot(
        bot_database_url=fresh_database("charts"),
        alert_webhook_token=TOKEN,
        erpgo_alert_channel=CHANNEL,
        erpgo_slack_channel_interval=0.05,
        erpgo_slack_max_backoff=1,
        docker_host=f"unix://{tmp_path}/no-docker.sock",
        prometheus_url=f"http://127.0.0.1:{port}",
        erpgo_chart_lookback="10m",
    )
    manager = await asyncio.to_thread(
        alertmanager_factory, bot.base_url + "/alerts/alertmanager", TOKEN, group_wait="1s", group_interval="1s"
    )
    await asyncio.to_thread(
        prometheus_factory,
        targets=[metrics_endpoint.address],
        rules=RULES,
        alertmanager=manager.url.removeprefix("http://"),
        port=port,
    )
    await eventually(lambda: scraped(bot, RATIO, 3), timeout=30, what="three scrapes")
    return bot


@pytest.fixture
async def graphed(start_bot, metrics_endpoint, prometheus_factory, tmp_path):
    """A bot with PROMETHEUS_URL (no bot database); the Prometheus scrapes the test's /metrics."""
    metrics_endpoint.set(RATIO, 0.02, service="api")
    server = await asyncio.to_thread(prometheus_factory, targets=[metrics_endpoint.address])
    bot = await start_bot(prometheus_url=server.url, docker_host=f"unix://{tmp_path}/no-docker.sock")
    await eventually(lambda: scraped(bot, RATIO, 3), timeout=30, what="three scrapes")
    return bot


def chart_shares(bot, head_ts: str) -> list[tuple[int, dict]]:
    """(position in the thread, file) of every PNG shared in the thread of `head_ts`."""
    thread = bot.slack.thread(CHANNEL, head_ts)
    return [(n, f) for n, m in enumerate(thread) for f in m.get("files") or [] if f.get("filetype") == "png"]


async def test_a_firing_rule_gets_its_chart_after_the_triage_and_fresh_ones_when_it_resolves_and_refires(
    charted, metrics_endpoint
):
    bot = charted
    metrics_endpoint.set(RATIO, 0.9, service="api")
    [head] = await eventually(lambda: bot.slack.channel_messages(CHANNEL), timeout=30, what="the alert's thread")
    assert "HighErrorRate" in render_text(head)
    [(position, shared)] = await eventually(lambda: chart_shares(bot, head["ts"]), timeout=40, what="the chart")
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert (
        "HighErrorRate" in thread[position]["text"] and " — min 0.02 · max 0.9 · last 0.9" in thread[position]["text"]
    )
    triage_at = next(n for n, m in enumerate(thread) if "Triage: HighErrorRate" in render_text(m))
    assert triage_at < position, "the triage text comes first, then the chart"
    png = bot.slack.files[shared["id"]]["content"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and shared["mimetype"] == "image/png"
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    threshold = rows_of(image, THRESHOLD_RED)
    series = rows_of(image, SERIES_BLUE)
    assert threshold and series, "both the series and the threshold are drawn"
    line = threshold[0]  # the dashed threshold line (its legend box is below the plot)
    assert min(series) < line < max(series), "the series crosses the threshold"

    metrics_endpoint.set(RATIO, 0.02, service="api")
    shares = await eventually(lambda: chart_shares(bot, head["ts"])[1:], timeout=40, what="the recovery chart")
    thread = bot.slack.thread(CHANNEL, head["ts"])
    resolved_at = next(n for n, m in enumerate(thread) if "resolved" in render_text(m).lower())
    assert shares[0][0] > resolved_at, "the recovery chart follows the resolution"

    metrics_endpoint.set(RATIO, 0.9, service="api")  # fires again: the same thread, a fresh chart
    await eventually(lambda: len(chart_shares(bot, head["ts"])) == 3, timeout=40, what="the re-fire's chart")
    assert len(bot.slack.channel_messages(CHANNEL)) == 1, "in the same thread"


async def test_graph_charts_promql_with_min_max_last_refuses_bad_promql_and_says_no_data(graphed):
    bot = graphed
    await bot.command('graph erpgo_test_error_ratio{service="api"} 30m', channel_id="C0OPS")
    [head] = bot.slack.channel_messages("C0OPS")
    details = "\n".join(render_text(m) for m in bot.slack.thread("C0OPS", head["ts"]))
    assert "min 0.02" in details and "max 0.02" in details and "last 0.02" in details
    assert "▁" in details, "a text sparkline of the series"
    [shared] = [f for m in bot.slack.thread("C0OPS", head["ts"]) for f in m.get("files") or []]
    assert bot.slack.files[shared["id"]]["content"].startswith(b"\x89PNG") and shared["filetype"] == "png"

    bot.slack.reset()
    await bot.command("graph 'rate(erpgo_test_error_ratio[5m]'", channel_id="C0OPS")
    await bot.command("graph erpgo_metric_nobody_exports 2d", channel_id="C0OPS")
    refused, empty = bot.slack.channel_messages("C0OPS")
    refused_text = render_text(refused) + "".join(render_text(m) for m in bot.slack.thread("C0OPS", refused["ts"]))
    assert "Prometheus refused the query" in refused_text and "unclosed left parenthesis" in refused_text
    assert "1:32: parse error" in refused_text, "Prometheus's own message, positions in the user's expression"
    assert "Usage: /erpgo graph" in refused_text
    assert "no data" in render_text(empty)
    assert not bot.slack.files, "no chart without data"


async def test_graph_refuses_a_range_over_seven_days(start_bot):
    answer = await (await start_bot()).command("graph up 8d", channel_id="C0OPS")
    assert "longer than the longest range allowed (7d)" in answer.body_text and "Usage" in answer.body_text
