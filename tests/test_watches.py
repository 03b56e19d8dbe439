"""Watches against real things: a certificate served on loopback that expires in 3 days (then renewed),
a backup directory of real pg_dump files whose newest is 3 days old (then a fresh dump), a small tmpfs
filesystem the test fills (then empties) — each opens one thread in the alert channel without anyone
asking, stays silent while nothing changes, and resolves when fixed. Ack and Mute from the header."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.local.text import render_text
from bot.settings import ConfigError, load_settings
from bot.targets.backups import find_tool
from bot.watch.fit import linear_fit
from tests.support import eventually
from tests.watch_support import CHANNEL, claimed, live, query, texts, thread_showing, top_showing, tops

DAY = 86400


@pytest.fixture
def watch_bot(start_bot, fresh_database):
    async def factory(**overrides):
        settings = {
            "bot_database_url": fresh_database("watch"),
            "erpgo_alert_channel": CHANNEL,
            "erpgo_slack_channel_interval": 0.05,
            "erpgo_slack_max_backoff": 1,
            "erpgo_digest_cron": "off",
        }
        settings.update(overrides)
        return await start_bot(**settings)

    return factory


@contextlib.asynccontextmanager
async def tls_server(cert_file: Path, key_file: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """A TLS server on loopback; loading another chain into its context renews its certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while await reader.read(4096):
                pass
        writer.transport.abort()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], context
    finally:
        server.close()


async def no_new_posts(bot, head: dict, slots: str, at_least: int) -> None:
    """Wait until `at_least` more runs of the watch were claimed, then: still one thread, no new reply."""
    replies = len(bot.slack.thread(CHANNEL, head["ts"]))
    start = await claimed(bot, slots)

    async def ran() -> bool:
        return await claimed(bot, slots) >= start + at_least

    await eventually(ran, 30, f"{at_least} more runs")
    await bot.settle()
    assert len(tops(bot)) == 1, texts(tops(bot))
    thread = bot.slack.thread(CHANNEL, head["ts"])
    assert len(thread) == replies, f"a repeat that changes nothing stays silent: {texts(thread)}"


# ---------------------------------------------------------------------- certificates


async def test_certificate_expiring_opens_one_thread_then_resolves_when_renewed(watch_bot, tls_pki):
    expiring, healthy = tls_pki.issued["expiring"], tls_pki.issued["healthy"]
    async with tls_server(expiring.cert_file, expiring.key_file) as (port, context):
        bot = await watch_bot(
            erpgo_watch="tls:1s", erpgo_tls_endpoints=f"127.0.0.1:{port}", erpgo_tls_ca_file=str(tls_pki.ca_file)
        )
        head = await top_showing(bot, "watch tls", "CRITICAL")
        report = await thread_showing(bot, head, "watch tls")
        assert "expires" in render_text(report) and "3 days" in render_text(report)
        assert "certificate expires in 3." in render_text(report), "the prediction says the days left"
        await no_new_posts(bot, head, "watch:tls", 2)

        await bot.slack.click(live(bot, head), "watch.ack", user_id="U0BOB", user_name="bob")
        await eventually(lambda: "Acknowledged by @U0BOB" in render_text(live(bot, head)), 20, "the ack shown")
        await bot.slack.click(live(bot, head), "watch.mute.24h", user_id="U0BOB", user_name="bob")
        await eventually(lambda: "Muted by @U0BOB until" in render_text(live(bot, head)), 20, "the mute shown")
        events = {tuple(r) for r in await query(bot, "SELECT actor, event FROM audit_log")}
        assert {("U0BOB", "acknowledged"), ("U0BOB", "muted")} <= events

        context.load_cert_chain(healthy.cert_file, healthy.key_file)  # renewed
        await thread_showing(bot, head, "Resolved", "`tls` is OK again")
        await eventually(lambda: "RESOLVED: watch tls" in render_text(live(bot, head)), 20, "the header resolved")
        assert len(tops(bot)) == 1


# ---------------------------------------------------------------------- backups


def write_dump(dsn: str, path: Path, age_s: float) -> None:
    subprocess.run([find_tool("pg_dump"), "-Fc", "-f", str(path), dsn], check=True, timeout=60, capture_output=True)
    stamp = path.stat().st_mtime - age_s
    os.utime(path, (stamp, stamp))


async def test_backup_three_days_old_opens_a_thread_and_a_fresh_dump_resolves_it(watch_bot, fresh_database, tmp_path):
    dsn = fresh_database("dumped")
    backups = tmp_path / "backups"
    backups.mkdir()
    first = backups / "erp-1.dump"
    await asyncio.to_thread(write_dump, dsn, first, 9 * DAY)
    for n, age in enumerate(range(8, 2, -1), start=2):  # a week of daily dumps, the newest 3 days old
        shutil.copy(first, backups / f"erp-{n}.dump")
        stamp = first.stat().st_mtime + (9 - age) * DAY
        os.utime(backups / f"erp-{n}.dump", (stamp, stamp))
    bot = await watch_bot(erpgo_watch="backups:2s", erpgo_backup_dir=str(backups))

    head = await top_showing(bot, "watch backups")
    report = await thread_showing(bot, head, "watch backups")
    shown = render_text(report)
    assert "3d" in shown and "usually one every 1d" in shown, shown
    await no_new_posts(bot, head, "watch:backups", 1)

    await asyncio.to_thread(write_dump, dsn, backups / "erp-9.dump", 0)
    await thread_showing(bot, head, "Resolved", "`backups` is OK again")
    assert len(tops(bot)) == 1


# ---------------------------------------------------------------------- a filling disk


@pytest.fixture
def small_filesystem(tmp_path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test (unmounted after)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_filling_disk_is_predicted_full_before_it_is_and_resolves_when_emptied(watch_bot, small_filesystem):
    bot = await watch_bot(erpgo_watch="disk:1s", erpgo_disk_paths=str(small_filesystem))
    written = 0

    async def fill_until_thread() -> dict | None:
        nonlocal written
        threads = [m for m in tops(bot) if "watch disk" in render_text(m)]
        if threads:
            return threads[0]
        if written < 2_500_000:
            (small_filesystem / f"f{written}").write_bytes(b"x" * 120_000)
            written += 120_000
        return None

    head = await eventually(fill_until_thread, 40, "the disk watch's thread", every=0.3)
    report = await thread_showing(bot, head, "watch disk")
    shown = render_text(report)
    assert "full in ~" in shown and "at the current rate" in shown, shown
    assert "R²" in shown and "samples in the last" in shown, "the prediction says its window and fit"
    assert "WARNING" in render_text(live(bot, head)), "a prediction is a warning while usage is still low"

    for item in small_filesystem.iterdir():
        item.unlink()
    await thread_showing(bot, head, "Resolved", "`disk` is OK again")
    assert len(tops(bot)) == 1


def test_the_fit_says_when_a_disk_two_percent_a_day_fills():
    points = [(day * DAY, 94.0 + 2 * day) for day in range(4)]  # 94 % … 100 % of 100 in three days
    fit = linear_fit(points)
    assert fit is not None and fit.r2 == pytest.approx(1.0)
    assert fit.seconds_until(106.0, 3 * DAY) == pytest.approx(3 * DAY)
    assert fit.quality() == "fit over 4 samples in the last 3d 0h, R² 1.00"


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("erpgo_watch", "tls:6x", "ERPGO_WATCH"),
        ("erpgo_watch", "dns:1h", "ERPGO_WATCH entry 1 is not verb:interval"),
        ("erpgo_digest_cron", "every morning", "ERPGO_DIGEST_CRON is not a cron expression"),
        ("erpgo_digest_tz", "Mars/Olympus", "ERPGO_DIGEST_TZ"),
        ("erpgo_escalate_after", "soon", "ERPGO_ESCALATE_AFTER"),
        ("erpgo_alert_updates", "both", "ERPGO_ALERT_UPDATES must be thread or header"),
        ("erpgo_oncall", "U0ALICE", "ERPGO_ONCALL must be a Slack user group id"),
    ],
)
def test_a_mistyped_schedule_stops_the_start_naming_the_setting(setting, value, said):
    with pytest.raises(ConfigError, match=said):
        load_settings(**{setting: value})


def test_watches_default_on_with_an_alert_channel_and_off_by_word():
    assert load_settings(erpgo_alert_channel="C0A").watches() == [("tls", 6 * 3600), ("backups", 3600), ("disk", 900)]
    assert load_settings().watches() == []
    assert load_settings(erpgo_alert_channel="C0A", erpgo_watch="off").watches() == []
    assert load_settings(erpgo_escalate_after="off").erpgo_escalate_after is None
