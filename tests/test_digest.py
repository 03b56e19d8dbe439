"""Two replicas on one bot database and one Slack: each digest slot and each watch run is claimed by one
of them — one digest per slot, one thread per watch; and `/erpgo digest` in the asker's channel, with
what the period held and what changed since the last digest."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg
import pytest

from bot.local.slack import LocalSlack
from bot.local.text import render_text
from bot.watch.digest import digest_due
from tests.support import eventually
from tests.watch_support import (
    CHANNEL,
    TOKEN,
    claimed,
    live,
    post,
    texts,
    thread_showing,
    top_showing,
    tops,
    webhook,
)

DIGESTS = "C0DIGEST"


@pytest.fixture
async def shared_slack():
    slack = LocalSlack("digest-signing-secret-0123456789")
    await slack.start()
    yield slack
    await slack.close()


def periods(slack: LocalSlack) -> list[str]:
    """The period each digest in the digest channel covers (its slot is where the period ends)."""
    found = [
        re.search(r"ERPGo digest\W+(\S+ \S+ → \S+ \S+) UTC", render_text(m)) for m in slack.channel_messages(DIGESTS)
    ]
    return [m.group(1) for m in found if m]


async def test_two_replicas_post_one_digest_per_slot_and_one_watch_thread(
    start_bot, fresh_database, shared_slack, tls_servers
):
    settings = {
        "bot_database_url": fresh_database("replicas"),
        "erpgo_alert_channel": CHANNEL,
        "erpgo_digest_channel": DIGESTS,
        "erpgo_digest_cron": "* * * * * */2",  # a slot every 2 seconds
        "erpgo_slack_channel_interval": 0.05,
        "erpgo_watch": "tls:1s",
        "erpgo_tls_endpoints": f"127.0.0.1:{tls_servers.ports['expiring']}",
        "erpgo_tls_ca_file": str(tls_servers.pki.ca_file),
    }
    first = await start_bot(shared_slack, **settings)
    await start_bot(shared_slack, **settings)

    async def slots_posted() -> bool:
        return await claimed(first, "digest") >= 3 and len(periods(shared_slack)) >= 3

    await eventually(slots_posted, 40, "three digest slots posted")
    shown = periods(shared_slack)
    assert len(shown) == len(set(shown)), f"a slot posted twice: {shown}"
    assert len(shown) <= await claimed(first, "digest")

    head = await top_showing(first, "watch tls", "CRITICAL")
    await thread_showing(first, head, "watch tls")
    assert await claimed(first, "watch:tls") >= 3
    assert len(tops(first)) == 1, texts(tops(first))
    digest = render_text(shared_slack.channel_messages(DIGESTS)[-1])
    assert re.search(r"Watches\W+1 open", digest), digest


async def test_digest_verb_posts_in_the_askers_channel_with_what_changed(start_bot, fresh_database, postgres_server):
    erpgo = fresh_database("erp")
    conn = await asyncpg.connect(erpgo)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("CREATE TABLE orders (id int)")
        await conn.execute("SELECT count(*) FROM orders")
    finally:
        await conn.close()
    bot = await start_bot(
        bot_database_url=fresh_database("digest"),
        alert_webhook_token=TOKEN,
        erpgo_escalate_after="off",
        erpgo_database_url=erpgo,
        erpgo_alert_channel=CHANNEL,
        erpgo_digest_cron="0 0 1 1 *",  # the scheduled one is far away: this test posts it
        erpgo_watch="off",
        erpgo_slack_channel_interval=0.05,
    )
    slot = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert await digest_due(bot.runtime, slot, {}) is True
    assert await digest_due(bot.runtime, slot, {}) is False, "a slot is posted once"
    scheduled = await top_showing(bot, "ERPGo digest", "Top statements by total time")
    assert "2025-12-31 00:00 → 2026-01-01 00:00" in render_text(scheduled)

    assert await post(bot, webhook(["api-1"])) == 200
    head = await top_showing(bot, "FIRING", "ErpgoOrdersFailing")
    await bot.slack.click(live(bot, head), "alert.ack", user_id="U0BOB", user_name="bob")
    await bot.settle()
    assert await post(bot, webhook(["api-1"], status="resolved")) == 200
    await top_showing(bot, "RESOLVED", "ErpgoOrdersFailing")

    result = await bot.command("digest", channel_id="C0OPS")
    assert "Putting the digest together" in render_text(result.json)
    await bot.settle()
    now = await top_showing(bot, "ERPGo digest", channel="C0OPS")
    shown = render_text(now)
    for part in ("Alerts", "Approvals", "Watches", "Bans", "Top statements by total time"):
        assert part in shown, shown
    assert "since the last digest" in shown, "statements compared with the last scheduled digest"
    assert "1 group(s) fired, 1 resolved" in shown and "0 requested" in shown, shown
    assert re.search(r"to acknowledge: median \S+ \S+, worst", shown), "time to acknowledge, median and worst"
    assert "Noisiest: `ErpgoOrdersFailing` ×2" in shown
