"""Alertmanager notifications as tests send them to the bot's webhook."""

from __future__ import annotations

import json

import aiohttp

from tests.fixtures.bot import ALERT_TOKEN

WEBHOOK = "/alerts/alertmanager"


def webhook(
    alertname: str = "HighErrorRate",
    instances=("api-1",),
    status: str = "firing",
    *,
    labels: dict | None = None,
    truncated: int = 0,
    key: str | None = None,
) -> dict:
    common = {"alertname": alertname, "severity": "critical", **(labels or {})}
    return {
        "version": "4",
        "groupKey": key or f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": alertname},
        "commonLabels": common,
        "commonAnnotations": {"summary": f"{alertname} summary"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**common, "instance": inst},
                "annotations": {"summary": f"{alertname} summary"},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "2025-11-30T01:20:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": f"{alertname}-{inst}",
            }
            for inst in instances
        ],
    }


async def post(bot, body, *, token: str | None = ALERT_TOKEN, headers: dict | None = None) -> tuple[int, dict]:
    """POST `body` to the webhook of `bot` (a bot under test, or its base URL); (status, JSON answer)."""
    base_url = bot if isinstance(bot, str) else bot.base_url
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    sent = {"Content-Type": "application/json"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    async with aiohttp.ClientSession() as http:
        async with http.post(base_url + WEBHOOK, data=data, headers=sent) as response:
            return response.status, await response.json(content_type=None)
