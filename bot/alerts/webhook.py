"""Alertmanager's webhook (version 4): its schema, parsing, and how alerts are routed and named."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.redact import redact, shorten

# ---------------------------------------------------------------------- the webhook, version 4


MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset any time zone uses (UTC+14, Kiribati)
YEARS = (1970, 9998)  # a time outside these cannot be an alert's (and 9999 + an offset overflows)


def in_range(when: datetime | None) -> datetime | None:
    """A time stamp that can be stored and computed with, or ValueError; Alertmanager's zero time passes."""
    if when is None or when.year <= 1:
        return when
    offset = when.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise ValueError("time zone offset beyond ±14:00")
    try:
        utc = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not YEARS[0] <= utc.year <= YEARS[1]:
        raise ValueError(f"time out of range (years {YEARS[0]}–{YEARS[1]})")
    return when


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=256)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _time_in_range(cls, when: datetime | None) -> datetime | None:
        return in_range(when)


class Webhook(BaseModel):
    """Alertmanager's webhook payload (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str = Field(min_length=1, max_length=4096)
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)


class IntakeError(Exception):
    """A notification that cannot be accepted: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 in a JSON string (an escaped backslash before it is not)


def parse_webhook(raw: bytes) -> Webhook:
    """Validate a webhook body; IntakeError(400, what is wrong) otherwise."""
    if JSON_NUL.search(raw):  # valid JSON, but PostgreSQL cannot store it: refused for good, not retried
        raise IntakeError(400, "a string contains a NUL character (\\u0000), which cannot be stored")
    try:
        hook = Webhook.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise IntakeError(400, f"malformed JSON: {errors[0]['msg']}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IntakeError(400, "not an Alertmanager webhook: the body must be a JSON object") from None
        if "version" in body and body["version"] != "4":
            raise IntakeError(
                400, f'unsupported Alertmanager webhook version {str(body["version"])[:10]!r} (expected "4")'
            ) from None
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise IntakeError(400, "not an Alertmanager webhook (version 4): " + "; ".join(parts) + more) from None
    if hook.version != "4":
        raise IntakeError(400, f'unsupported Alertmanager webhook version {hook.version[:10]!r} (expected "4")')
    return hook


def redacted_webhook(hook: Webhook) -> Webhook:
    """The notification with every text that is stored and later shown redacted (labels, annotations,
    URLs, the group key that quotes label values): the bot keeps no secret an alert carried."""
    seen: dict[str, str] = {}  # the same label values recur in every alert and the common labels

    def text(value: str) -> str:
        if value not in seen:
            seen[value] = redact(value)
        return seen[value]

    def texts(values: dict[str, str]) -> dict[str, str]:
        return {key: text(value) for key, value in values.items()}

    alerts = [
        alert.model_copy(
            update={
                "labels": texts(alert.labels),
                "annotations": texts(alert.annotations),
                "generatorURL": text(alert.generatorURL),
                "fingerprint": text(alert.fingerprint),
            }
        )
        for alert in hook.alerts
    ]
    return hook.model_copy(
        update={
            "groupKey": text(hook.groupKey),
            "receiver": text(hook.receiver),
            "groupLabels": texts(hook.groupLabels),
            "commonLabels": texts(hook.commonLabels),
            "commonAnnotations": texts(hook.commonAnnotations),
            "externalURL": text(hook.externalURL),
            "alerts": alerts,
        }
    )


def group_key_of(raw: bytes) -> str | None:
    """The groupKey of a body that was refused, when it has one (for the log line)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    key = body.get("groupKey") if isinstance(body, dict) else None
    return shorten(key, 200, "") if isinstance(key, str) else None


def zero_to_none(when: datetime | None) -> datetime | None:
    """Alertmanager writes "0001-01-01T00:00:00Z" for "not set"."""
    if when is None or when.year <= 1:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---------------------------------------------------------------------- routing and naming


def route_channel(settings, labels: dict[str, str]) -> str | None:
    """The channel of the first ERPGO_ALERT_ROUTES rule whose label matches, else ERPGO_ALERT_CHANNEL."""
    for label, wanted, channel in settings.erpgo_alert_routes:
        if labels.get(label) == wanted:
            return channel
    return settings.erpgo_alert_channel


def display_name(labels: dict[str, str], fingerprint: str) -> str:
    """How one alert of a group is named in messages. Keep in step with DISPLAY_SQL."""
    for key in ("instance", "pod", "container", "job"):
        if labels.get(key):
            return labels[key]
    return fingerprint[:12]


DISPLAY_SQL = (
    "coalesce(labels->>'instance', labels->>'pod', labels->>'container', labels->>'job', left(fingerprint, 12))"
)


def alertnames(hook: Webhook) -> list[str]:
    if hook.commonLabels.get("alertname"):
        return [hook.commonLabels["alertname"]]
    return sorted({a.labels.get("alertname", "") for a in hook.alerts} - {""}) or ["alert"]


def group_annotations(hook: Webhook) -> dict[str, str]:
    first = next((a for a in hook.alerts if a.status == "firing"), hook.alerts[0])
    return {**first.annotations, **hook.commonAnnotations}
