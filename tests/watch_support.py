"""What the watch, digest and escalation tests share: reading what the local Slack shows in a channel,
and the bot's database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.local.text import render_text
from tests.support import eventually

CHANNEL = "C0ALERTS"
TOKEN = "watch-webhook-token-0123456789"
WEBHOOK = "/alerts/alertmanager"


def tops(bot: Any, channel: str = CHANNEL) -> list[dict]:
    return bot.slack.channel_messages(channel)


def texts(messages: list[dict]) -> list[str]:
    return [render_text(m) for m in messages]


async def top_showing(bot: Any, *words: str, channel: str = CHANNEL, timeout: float = 30) -> dict:
    """The one top-level message of the channel showing every word (waiting until one does)."""

    def found() -> dict | None:
        return next((m for m in tops(bot, channel) if all(w in render_text(m) for w in words)), None)

    return await eventually(found, timeout, f"a message in {channel} showing {words}")


async def thread_showing(bot: Any, head: dict, *words: str, channel: str = CHANNEL, timeout: float = 30) -> dict:
    def found() -> dict | None:
        replies = bot.slack.thread(channel, head["ts"])
        return next((m for m in replies if all(w in render_text(m) for w in words)), None)

    return await eventually(found, timeout, f"a reply showing {words}")


def live(bot: Any, message: dict, channel: str = CHANNEL) -> dict:
    """The message as Slack shows it now (after updates)."""
    return bot.slack.messages[channel, message["ts"]]


async def query(bot: Any, sql: str, *args: Any) -> list[Any]:
    async with bot.runtime.store.acquire() as conn:
        return await conn.fetch(sql, *args)


async def claimed(bot: Any, name: str) -> int:
    rows = await query(bot, "SELECT count(*) AS n FROM schedule_slots WHERE name = $1", name)
    return int(rows[0]["n"])


def webhook(instances: list[str], status: str = "firing") -> dict:
    """An Alertmanager notification of one critical group with these instances."""
    common = {"alertname": "ErpgoOrdersFailing", "severity": "critical"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ErpgoOrdersFailing"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": "ErpgoOrdersFailing"},
        "commonLabels": common,
        "commonAnnotations": {"summary": "orders are failing"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**common, "instance": name},
                "annotations": {"summary": "orders are failing"},
                "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else datetime.now(UTC).isoformat(),
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": f"orders-{name}",
            }
            for name in instances
        ],
    }


async def post(bot: Any, body: dict) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.post(bot.base_url + WEBHOOK, json=body, headers=headers) as r:
        return r.status
