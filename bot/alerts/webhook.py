"""Alertmanager's webhook (version 4): its schema, parsing, and how alerts are routed and named."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from bot.core.redact import RedactMemo, redact, shorten
from bot.settings import Settings

# ---------------------------------------------------------------------- the webhook, version 4


MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset any time zone uses (UTC+14, Kiribati)
YEARS = (1970, 9998)  # a time outside these cannot be an alert's (and 9999 + an offset overflows)


def in_range(when: datetime | None) -> datetime | None:
    """A time stamp that can be stored and computed with, or ValueError; Alertmanager's zero time passes."""
    if when is None or when.year <= 1:
        return when
    if when.tzinfo is UTC and YEARS[0] <= when.year <= YEARS[1]:  # as Alertmanager writes them: nothing to convert
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


class WebhookAlert(msgspec.Struct, kw_only=True):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

    def __post_init__(self) -> None:
        for name in ("startsAt", "endsAt"):
            try:
                in_range(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None


class Webhook(msgspec.Struct, kw_only=True):
    """Alertmanager's webhook payload (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    version: str
    groupKey: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    truncatedAlerts: Annotated[int, msgspec.Meta(ge=0)] = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: Annotated[list[WebhookAlert], msgspec.Meta(min_length=1)]


class IntakeError(Exception):
    """A notification that cannot be accepted: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 in a JSON string (an escaped backslash before it is not)

# decoding and validating in one pass, in C: the body becomes the structs or the first thing wrong with it
_DECODE_WEBHOOK = msgspec.json.Decoder(Webhook)
_DECODE_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])  # the top level alone, to say what is wrong
_DECODE_VERSION = msgspec.json.Decoder(str)


def parse_webhook(raw: bytes) -> Webhook:
    """Validate a webhook body; IntakeError(400, what is wrong) otherwise."""
    if b"\\u0000" in raw and JSON_NUL.search(
        raw
    ):  # valid JSON, but PostgreSQL cannot store it: refused for good, not retried
        raise IntakeError(400, "a string contains a NUL character (\\u0000), which cannot be stored")
    try:
        hook = _DECODE_WEBHOOK.decode(raw)
    except msgspec.ValidationError as exc:
        raise IntakeError(400, _invalid_webhook(raw, str(exc))) from None
    except msgspec.DecodeError as exc:  # also a lone UTF-16 surrogate, which no database text can hold
        raise IntakeError(400, f"malformed JSON: {str(exc).removeprefix('JSON is malformed: ')}") from None
    except RecursionError:
        raise IntakeError(400, "malformed JSON: nested too deeply") from None
    if hook.version != "4":
        raise IntakeError(400, _unsupported(hook.version))
    return hook


def _unsupported(version: object) -> str:
    return f'unsupported Alertmanager webhook version {str(version)[:10]!r} (expected "4")'


def _invalid_webhook(raw: bytes, error: str) -> str:
    """What is wrong with valid JSON that is not a version 4 webhook: its shape, its version, or a field."""
    try:
        top = _DECODE_TOP.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        return "not an Alertmanager webhook: the body must be a JSON object"
    if "version" in top:
        try:
            version: object = _DECODE_VERSION.decode(top["version"])
        except msgspec.MsgspecError:
            version = bytes(top["version"]).decode(errors="replace")
        if version != "4":
            return _unsupported(version)
    return "not an Alertmanager webhook (version 4): " + _field_error(error)


_ERROR_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<where>[^`]*)`)?$", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_TOO_SHORT = re.compile(r"Expected `array` of length >= (?P<n>\d+)")
_OWN_FIELD = re.compile(r"^(?P<field>\w+): ")  # a check of ours that names the field it judged


def _field_error(error: str) -> str:
    """msgspec's "Object missing required field `x` - at `$.alerts[0]`" as "alerts.0.x: Field required"."""
    match = _ERROR_AT.match(error)
    assert match is not None  # the pattern matches any text
    what, path = match["what"], _INDEX.sub(r".\1", match["where"] or "").lstrip(".")
    parts = [path] if path else []
    if missing := _MISSING.fullmatch(what):
        parts.append(missing["field"])
        what = "Field required"
    elif short := _TOO_SHORT.fullmatch(what):
        what = f"List should have at least {short['n']} item" + ("s" if short["n"] != "1" else "")
    elif own := _OWN_FIELD.match(what):
        parts.append(own["field"])
        what = what[own.end() :]
    return f"{'.'.join(parts) or 'body'}: {what}"


# label values, names, URLs and group keys recur in every notification of a storm: each is redacted once.
# Alertmanager repeats a whole group in each notification, so every alert's instance and fingerprint come
# back too: room for those of ~16,000 alerts (about 3 MB when full) keeps them remembered through a storm
_redacted = RedactMemo(redact, size=32_768)


def redact_webhook(hook: Webhook) -> None:
    """Redact, in place, every text of the notification that is stored and later shown (labels,
    annotations, URLs, the group key that quotes label values): the bot keeps no secret an alert
    carried. In place: a copy would double the memory a storm's notifications hold while they wait."""
    text, texts = _redacted, _redacted.values
    for alert in hook.alerts:
        alert.labels = texts(alert.labels)
        alert.annotations = texts(alert.annotations)
        alert.generatorURL = text(alert.generatorURL)
        alert.fingerprint = text(alert.fingerprint)
    hook.groupKey = text(hook.groupKey)
    hook.receiver = text(hook.receiver)
    hook.groupLabels = texts(hook.groupLabels)
    hook.commonLabels = texts(hook.commonLabels)
    hook.commonAnnotations = texts(hook.commonAnnotations)
    hook.externalURL = text(hook.externalURL)


class _GroupKeyOnly(msgspec.Struct):
    groupKey: str | None = None


_DECODE_GROUP_KEY = msgspec.json.Decoder(_GroupKeyOnly)


def group_key_of(raw: bytes) -> str | None:
    """The groupKey of a body that was refused, when it has one (for the log line)."""
    try:
        key = _DECODE_GROUP_KEY.decode(raw).groupKey
    except (msgspec.MsgspecError, RecursionError):
        return None
    return shorten(key, 200, "") if key is not None else None


def zero_to_none(when: datetime | None) -> datetime | None:
    """Alertmanager writes "0001-01-01T00:00:00Z" for "not set"."""
    if when is None or when.year <= 1:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---------------------------------------------------------------------- routing and naming


def route_channel(settings: Settings, labels: dict[str, str]) -> str | None:
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
