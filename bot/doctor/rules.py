"""With PROMETHEUS_URL: every alerting rule Prometheus has loaded (`/api/v1/rules`) is mapped to the
triage that would take its alerts — by name, or by a label rule on the rule's labels. The rules no
triage takes are listed: their alerts would get a thread without any checks."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.errors import NotConfigured
from bot.core.registry import Registry
from bot.doctor import Readiness
from bot.settings import Settings
from bot.targets import Targets

CAPABILITY = "Prometheus alert rules"
MAX_LISTED = 10


async def alerting_rules(settings: Settings, timeout: float) -> list[dict[str, Any]] | None:
    """The rules Prometheus has loaded, asked with the bot's own credentials; None without PROMETHEUS_URL."""
    targets = Targets(settings)
    try:
        prometheus = targets.prometheus
    except NotConfigured:
        return None
    try:
        return await asyncio.wait_for(prometheus.alerting_rules(), timeout)
    finally:
        await targets.close()


def unmapped(rules: list[dict[str, Any]], registry: Registry) -> list[str]:
    """The names of the rules whose alerts no triage rule takes."""
    names = {
        rule["name"]
        for rule in rules
        if not registry.checks_for_alert(rule["name"], {**rule["labels"], "alertname": rule["name"]})
    }
    return sorted(names)


async def rules_mapped(settings: Settings, registry: Registry, timeout: float) -> Readiness:
    rules = await alerting_rules(settings, timeout)
    if rules is None:
        return Readiness(CAPABILITY, None, "PROMETHEUS_URL is not set: the alert rules are not checked")
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
