"""The parts of the charts: the PNG's text is really drawn and redacted before, a binary file crosses both
outboxes byte for byte, a rule's expression gives its value and threshold, a 10,000-series answer of a
real Prometheus is cut down to 8, an unreachable Prometheus is a finding."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from bot.alerts.charts import rule_expression, split_comparison
from bot.app import build_registry
from bot.context import CheckContext
from bot.core.engine import run_checks
from bot.core.findings import Status
from bot.core.redact import MASK, register_secret
from bot.core.series import Chart, Series, sparkline
from bot.settings import load_settings
from bot.slack import render
from bot.slack.charts import _plot, render_png
from bot.slack.delivery import outbox_client
from bot.slack.memory import MemoryOutbox
from bot.targets import Targets
from bot.targets.prometheus import Prometheus
from demo.services import free_port
from runbooks.graph import GraphArgs
from tests.support import eventually

# A PNG's bytes hold what the text redactor would mask and what is not UTF-8: they must arrive as they are.
BINARY = b"\x89PNG\r\n\x1a\n" + b"password=hunter2-not-text \xff\xfe\x00" * 50


def chart(title: str, name: str = "ratio") -> Chart:
    start = 1_700_000_000.0
    points = [(start + 15 * i, 0.1 + 0.01 * i) for i in range(60)]
    return Chart(title=title, series=[Series(name, points)], threshold=0.5, firing=(start + 600, None))


def dark_pixels(png: bytes, box: tuple[int, int, int, int]) -> int:
    """How many pixels in `box` (left, top, right, bottom) are text-dark."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = image.load()
    assert pixels is not None
    left, top, right, bottom = box
    return sum(1 for x in range(left, right) for y in range(top, bottom) if max(pixels[x, y]) < 100)


def test_the_title_and_the_axis_labels_are_drawn_with_a_font():
    short, long = render_png(chart("HighErrorRate")), render_png(chart("DatabaseDown on erpgo-postgres"))
    width, height = Image.open(io.BytesIO(short)).size
    title_band = (0, 0, width, 30)
    assert dark_pixels(short, title_band) > 100, "the title's glyphs are drawn"
    assert dark_pixels(long, title_band) > dark_pixels(short, title_band), "a longer title draws more glyphs"
    assert dark_pixels(short, (0, 60, 45, height - 100)) > 30, "the y axis labels are drawn"
    assert dark_pixels(short, (0, height - 92, width, height - 68)) > 100, "the UTC time labels are drawn"


def test_what_a_chart_writes_is_redacted_before_it_is_drawn():
    secret = "s3cr3t-chart-token-0123456789"
    register_secret(secret)
    svg = _plot(chart(f"up{{token={secret}}}", name=f'up{{password="{secret}"}}')).render()
    assert secret not in svg and MASK in svg


def test_a_rule_expression_gives_the_value_it_compares_and_its_threshold():
    url = (
        "http://prometheus:9090/graph?g0.expr=rate%28errors%5B5m%5D%29+%2F+rate%28requests%5B5m%5D%29+%3E+0.05&g0.tab=1"
    )
    expression = rule_expression(url)
    assert expression == "rate(errors[5m]) / rate(requests[5m]) > 0.05"
    assert split_comparison(expression) == ("rate(errors[5m]) / rate(requests[5m])", 0.05)
    assert split_comparison('up{job!="api", instance=~"a.*"} == 0') == ('up{job!="api", instance=~"a.*"}', 0.0)
    assert split_comparison("x >= bool 3 and y") == ("x", 3.0)
    assert split_comparison("max(x) by (a) > on(a) y") == ("max(x) by (a)", None)
    assert split_comparison("absent(up)") == ("absent(up)", None)
    assert rule_expression("http://example.com/alerts") is None


def test_a_sparkline_shows_the_shape():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert len(sparkline([float(i) for i in range(1000)])) == 24


async def test_a_binary_file_crosses_the_durable_outbox_byte_for_byte(store, slack, make_outbox):
    box = await make_outbox()
    async with box.thread("chart-thread", "C0CHARTS") as rows:
        rows.post(render.text_message("head"))
        rows.upload_bytes({"text": "the chart", "file": {"filename": "chart.png", "title": "chart"}}, BINARY)
    delivered = await rows.receipt.wait(20)
    assert delivered and all(d.ok for d in delivered)
    [file] = slack.files.values()
    assert file["content"] == BINARY and file["mimetype"] == "image/png" and file["filetype"] == "png"
    assert file["thread_ts"] == delivered[0].ts
    async with store.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slack_outbox_files") == 0, "sent bytes are not kept"


async def test_a_binary_file_crosses_the_in_process_outbox_byte_for_byte(slack):
    box = MemoryOutbox(outbox_client(slack.bot_token, slack.api_url), interval=0)
    box.start()
    try:
        async with box.thread("chart-thread", "C0CHARTS") as rows:
            rows.post(render.text_message("head"))
            rows.upload_bytes({"text": "the chart", "file": {"filename": "chart.png", "title": "chart"}}, BINARY)
        delivered = await rows.receipt.wait(20)
    finally:
        await box.stop()
    assert delivered and all(d.ok for d in delivered)
    [file] = slack.files.values()
    assert file["content"] == BINARY


async def test_ten_thousand_series_are_cut_to_the_eight_highest(metrics_endpoint, prometheus_factory):
    for n in range(10_000):
        metrics_endpoint.set("erpgo_test_wide", float(n), shard=str(n))
    server = await asyncio.to_thread(prometheus_factory, targets=[metrics_endpoint.address])
    client = Prometheus(server.url, timeout=20)
    try:
        await eventually(lambda: client.count("erpgo_test_wide"), timeout=30, what="the wide scrape")
        started = time.perf_counter()
        now = time.time()
        answer = await client.query_range("erpgo_test_wide", now - 300, now)
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    assert len(answer.series) == 8 and answer.more == 10_000 - 8
    assert sorted(max(s.values) for s in answer.series) == [float(n) for n in range(9992, 10_000)], "the highest"
    assert elapsed < 5, "Prometheus picks the highest (topk): the bot never loads the whole answer"


async def test_graph_with_prometheus_unreachable_is_a_finding():
    settings = load_settings(prometheus_url=f"http://127.0.0.1:{free_port()}", erpgo_check_timeout=3)
    targets = Targets(settings)
    try:
        check = build_registry().checks["graph"]
        [finding] = await run_checks([check], CheckContext(targets, settings, GraphArgs("up", 3600)))
    finally:
        await targets.close()
    assert finding.status is Status.CRIT and "unreachable" in finding.title


@pytest.mark.parametrize("setting", ["PROMETHEUS_URL"])
async def test_graph_without_prometheus_says_what_to_set(setting):
    settings = load_settings()
    targets = Targets(settings)
    try:
        check = build_registry().checks["graph"]
        [finding] = await run_checks([check], CheckContext(targets, settings, GraphArgs("up", 3600)))
    finally:
        await targets.close()
    assert finding.status is Status.SKIPPED and f"set {setting}" in finding.title
