"""With PROMETHEUS_URL: every alerting rule Prometheus has loaded (`/api/v1/rules`) is mapped to the
triage that would take its alerts — by name, or by a label rule on the rule's labels. The rules no
triage takes are listed: their alerts would get a thread without any checks."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.core.registry import Registry
from bot.doctor import Readiness

CAPABILITY = "Prometheus alert rules"
MAX_LISTED = 10


def prometheus_url(settings: Any) -> str | None:
    """PROMETHEUS_URL when this bot has that setting and it is set."""
    return getattr(settings, "prometheus_url", None) or None


async def alerting_rules(url: str, timeout: float) -> list[dict[str, Any]]:
    """The alerting rules Prometheus has loaded: each {"name", "labels", "group"}."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.get(url.rstrip("/") + "/api/v1/rules", params={"type": "alert"}) as response,
    ):
        response.raise_for_status()
        body = await response.json()
    return [
        {"name": rule.get("name", ""), "labels": rule.get("labels") or {}, "group": group.get("name", "")}
        for group in body.get("data", {}).get("groups", [])
        for rule in group.get("rules", [])
        if rule.get("type") == "alerting"
    ]


def unmapped(rules: list[dict[str, Any]], registry: Registry) -> list[str]:
    """The names of the rules whose alerts no triage rule takes."""
    names = {
        rule["name"]
        for rule in rules
        if not registry.checks_for_alert(rule["name"], {**rule["labels"], "alertname": rule["name"]})
    }
    return sorted(names)


async def rules_mapped(settings: Any, registry: Registry, timeout: float) -> Readiness:
    url = prometheus_url(settings)
    if url is None:
        return Readiness(CAPABILITY, None, "PROMETHEUS_URL is not set: the alert rules are not checked")
    rules = await alerting_rules(url, timeout)
    missing = unmapped(rules, registry)
    if not missing:
        return Readiness(CAPABILITY, True, f"Prometheus answers; all {len(rules)} alerting rules have a triage")
    listed = ", ".join(missing[:MAX_LISTED]) + (
        f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    )
    return Readiness(
        CAPABILITY,
        False,
        f"{len(missing)} of {len(rules)} alerting rules have no triage: {listed}",
        "add a triage rule for them (a runbook's triage_for), or drop the rules nobody acts on",
    )
