"""Batches of notifications as the intake records them: two replicas recording the same alert group at
the same moment, and a storm-sized batch (written with COPY)."""

from __future__ import annotations

import asyncio

import msgspec

from bot.alerts.intake import record_batch
from bot.alerts.webhook import Webhook, parse_webhook
from bot.settings import Settings
from bot.store.pool import Store
from tests.support import eventually

GROUP_KEY = '{}:{alertname="DiskFull"}'


def notification(*instances: str, truncated: int = 5, group_key: str = GROUP_KEY) -> Webhook:
    body = {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": name}, "fingerprint": name}
            for name in instances
        ],
    }
    return parse_webhook(msgspec.json.encode(body))


async def waiting_for_a_lock(store: Store) -> bool:
    async with store.acquire() as conn:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )


async def test_a_replica_waiting_for_the_groups_lock_sees_what_the_other_recorded(store: Store):
    settings = Settings()
    async with store.acquire() as conn, conn.transaction():  # the group exists, with one alert
        await record_batch(conn, settings, [(notification("db-1"), "C0ALERTS")])
    async with store.acquire() as first, store.acquire() as second:
        held = first.transaction()
        await held.start()
        joined_first = await record_batch(first, settings, [(notification("db-2"), "C0ALERTS")])

        async def after_the_first() -> list:
            async with second.transaction():
                return await record_batch(second, settings, [(notification("db-2", "db-3"), "C0ALERTS")])

        waiting = asyncio.create_task(after_the_first())
        await eventually(lambda: waiting_for_a_lock(store), what="the second replica waits for the group's lock")
        await held.commit()
        joined_second = await asyncio.wait_for(waiting, 10)

    assert [r.outcome for r in joined_first] == ["joined"]
    assert [r.outcome for r in joined_second] == ["joined"]  # db-3 joined; db-2 was already there
    async with store.acquire() as conn:
        group = await conn.fetchrow(
            "SELECT alerts_total, alerts_firing FROM alert_groups WHERE group_key = $1", GROUP_KEY
        )
        members = await conn.fetch("SELECT fingerprint FROM alerts ORDER BY fingerprint")
    assert (group["alerts_total"], group["alerts_firing"]) == (3, 3)  # the header's "3 firing", not 4
    assert [m["fingerprint"] for m in members] == ["db-1", "db-2", "db-3"]


async def test_a_storm_sized_batch_records_every_alert_received_and_each_group_once(store: Store):
    settings = Settings()
    hosts = [f"web-{n:03d}" for n in range(100)]
    batch = [
        (notification(*hosts[: 10 * size], truncated=0, group_key=f"{{}}:{{team=t{team}}}"), "C0ALERTS")
        for size in range(1, 11)
        for team in range(2)
    ]  # 20 notifications, two groups growing to 100 alerts: 1,100 alerts carried
    async with store.acquire() as conn, conn.transaction():
        results = await record_batch(conn, settings, batch)
    assert [r.outcome for r in results[:2]] == ["new", "new"]
    assert {r.outcome for r in results[2:]} == {"joined"}
    async with store.acquire() as conn:
        received = await conn.fetchval("SELECT count(*) FROM alerts_received")
        groups = await conn.fetch("SELECT alerts_total, alerts_firing FROM alert_groups ORDER BY id")
    assert received == 1100
    assert [(g["alerts_total"], g["alerts_firing"]) for g in groups] == [(100, 100), (100, 100)]
