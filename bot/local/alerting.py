"""`fire` and `resolve` in the shell: alerts sent through the real Alertmanager (ALERTMANAGER_URL) as
Prometheus would send them, so that Alertmanager's webhook opens the thread, the bot triages it, and
the thread's Ack and Silence buttons act on that Alertmanager."""

from __future__ import annotations

import datetime as dt

from bot.targets.alertmanager import Alertmanager

# what a rule of the real ERPGo puts on its alerts, unless the line says otherwise
DEFAULT_LABELS = {"severity": "critical", "job": "erpgo-api", "instance": "erpgo-api:8080"}


class AlertLineError(ValueError):
    """A `fire` or `resolve` line that cannot be sent; the message says what is expected."""


def parse_alert_line(words: list[str]) -> tuple[str, dict[str, str]]:
    """`AlertName [label=value…]` as the alert's name and its labels (the defaults filled in)."""
    if not words or "=" in words[0]:
        raise AlertLineError("an alert name first, e.g. `fire HighErrorRate severity=warning`")
    labels = {"alertname": words[0], **DEFAULT_LABELS}
    for word in words[1:]:
        name, sep, value = word.partition("=")
        if not sep or not name or not value:
            raise AlertLineError(f"{word!r} is not label=value")
        labels[name] = value
    return words[0], labels


class AlertSender:
    """Fires and resolves alerts; remembers the labels each name was fired with, so that `resolve
    NAME` ends that very alert (Alertmanager tells alerts apart by their labels)."""

    def __init__(self, alertmanager: Alertmanager) -> None:
        self.alertmanager = alertmanager
        self.fired: dict[str, dict[str, str]] = {}

    async def fire(self, words: list[str]) -> dict[str, str]:
        name, labels = parse_alert_line(words)
        summary = f"{name} on {labels['instance']} (fired from the shell)"
        alert = {"labels": labels, "annotations": {"summary": summary}, "startsAt": _now()}
        await self.alertmanager.post_alerts([alert])
        self.fired[name] = labels
        return labels

    async def resolve(self, words: list[str]) -> dict[str, str]:
        if len(words) != 1:
            raise AlertLineError("the name of an alert fired before, e.g. `resolve HighErrorRate`")
        labels = self.fired.pop(words[0], None) or parse_alert_line(words)[1]
        await self.alertmanager.post_alerts([{"labels": labels, "endsAt": _now()}])
        return labels


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
