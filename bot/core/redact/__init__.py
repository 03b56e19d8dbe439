"""The one redaction function everything that leaves the bot passes through.

`redact(text)` masks, in this order: every secret the bot itself holds (in any encoding it may travel in),
private keys (also when the text starts or ends in the middle of one), credentials in URLs (any userinfo, also
JSON-escaped or percent-encoded), token formats by their published structure (the table in `formats`), JWTs,
Authorization and cookie headers, credentials on command lines (`--password X`, `mysql -pX`, `curl -u user:X`),
secrets inside SQL text (passwords, role statements, crypto calls, sensitive settings, connection strings),
and `name=value` / `name: value` / `"name": "value"` / `name value` pairs whose name says they are secret.

A single pass of one automaton (`prefilter`) first says which steps may find anything, so a text without a
secret costs that pass, whatever the number of steps. Every pattern is precompiled and linear-time: no
pattern can backtrack quadratically, so a megabyte of hostile text costs milliseconds, not seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.core.redact import steps
from bot.core.redact.base import JWT_MASK, MASK, PRIVATE_KEY_MASK, looks_secret
from bot.core.redact.held import _secrets, register_secret
from bot.core.redact.memo import RedactMemo
from bot.core.redact.names import NOT_SECRET, STRONG, WEAK, is_secret_name, looks_like_credential, name_strength
from bot.core.redact.sql import normalise_sql, scrub_sql

__all__ = [
    "JWT_MASK",
    "MASK",
    "PRIVATE_KEY_MASK",
    "RedactMemo",
    "_secrets",
    "is_secret_name",
    "looks_secret",
    "normalise_sql",
    "redact",
    "redact_any",
    "register_secret",
    "scrub_sql",
    "shorten",
]


def redact(text: str) -> str:
    """The text with every secret masked (`***`, or `[private key redacted]` / `[jwt redacted]`)."""
    if not text:
        return text
    text = _secrets.redact(text)
    # a step can change what an earlier one sees (a masked word no longer starts a SQL call): repeat until
    # nothing changes, so that redacting the result again changes nothing either
    for _ in range(4):
        redacted = steps.run(text)
        if redacted == text:
            break
        text = redacted
    return text


def shorten(text: str, limit: int, tail: str = "…") -> str:
    """The text redacted, THEN cut to `limit` characters ending in `tail`: a cut made first could hide from the
    redactor what makes a secret recognisable (a URL cut before its `@`)."""
    text = redact(text)
    return text if len(text) <= limit else text[: max(limit - len(tail), 0)] + tail


def redact_any(value: Any) -> Any:
    """Redact every string inside nested dicts/lists/tuples/dataclasses (Block Kit payloads, log events);
    the value of a secret-named key (`password`, `token`, `JWT_SECRET`…) is masked whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_entry(key, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_any(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact_any({field.name: getattr(value, field.name) for field in dataclasses.fields(value)})
    return value


def _redact_entry(key: Any, item: Any) -> Any:
    strength = name_strength(key) if isinstance(key, str) else NOT_SECRET
    if strength == STRONG and not _says_nothing(item):
        return MASK
    if strength == WEAK and isinstance(item, str) and looks_like_credential(item):
        return MASK
    return redact_any(item)


def _says_nothing(item: Any) -> bool:
    """None, a flag or an empty value under a secret's name (`has_password: true`) gives nothing away."""
    return item is None or isinstance(item, bool) or (isinstance(item, (str, bytes, list, tuple, dict)) and not item)
