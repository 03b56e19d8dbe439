"""The one redaction function everything that leaves the bot passes through.

`redact(text)` masks, in this order: every secret the bot itself holds (in any encoding it may travel in),
private keys (also when the text starts or ends in the middle of one), credentials in URLs (also
percent-encoded), known token formats, JWTs, Authorization headers, secrets inside SQL text (passwords,
role statements, crypto calls, sensitive settings, connection strings), and `name=value` / `name: value` /
`name value` pairs whose name says they are secret. Every pattern is precompiled and linear-time: no
pattern can backtrack quadratically, so a megabyte of hostile text costs milliseconds, not seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.core.redact.base import JWT_MASK, MASK, PRIVATE_KEY_MASK, looks_secret
from bot.core.redact.held import _secrets, register_secret
from bot.core.redact.names import _NAME_HINTS, _mask_key_values, is_secret_name
from bot.core.redact.pem import _mask_private_keys
from bot.core.redact.sql import _SQL_WORDS, normalise_sql, scrub_sql
from bot.core.redact.tokens import (
    _BASIC,
    _ENCODED_USERINFO,
    _JWT,
    _TOKEN_PATTERNS,
    _URL_USERINFO,
    _mask_basic,
    _mask_jwt,
)

__all__ = [
    "JWT_MASK",
    "MASK",
    "PRIVATE_KEY_MASK",
    "_secrets",
    "is_secret_name",
    "looks_secret",
    "normalise_sql",
    "redact",
    "redact_any",
    "register_secret",
    "scrub_sql",
]


def _redact_patterns(text: str) -> str:
    """Each step runs only when the text holds a word the step needs, so ordinary text costs a few scans.

    SQL comes after the steps that mask words: a token masked right before `$$` changes how `$$` reads.
    """
    if "PRIVATE KEY" in text or "\n" in text or "\\n" in text:
        text = _mask_private_keys(text)
    lower = text.lower()
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\1{MASK}\3", text)
    if "%" in text and "3a" in lower:
        text = _ENCODED_USERINFO.sub(rf"\1{MASK}\3", text)
    for needles, pattern, replacement in _TOKEN_PATTERNS:
        if any(needle in lower for needle in needles):
            text = pattern.sub(replacement, text)
    if "." in text:
        text = _JWT.sub(_mask_jwt, text)
    if "basic" in lower:
        text = _BASIC.sub(_mask_basic, text)
    if any(word in lower for word in _SQL_WORDS):
        text = scrub_sql(text)
    if any(hint in lower for hint in _NAME_HINTS):
        text = _mask_key_values(text)
    return text


def redact(text: str) -> str:
    """The text with every secret masked (`***`, or `[private key redacted]` / `[jwt redacted]`)."""
    if not text:
        return text
    text = _secrets.redact(text)
    # a step can change what an earlier one sees (a masked word no longer starts a SQL call): repeat until
    # nothing changes, so that redacting the result again changes nothing either
    for _ in range(4):
        redacted = _redact_patterns(text)
        if redacted == text:
            break
        text = redacted
    return text


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
    if isinstance(key, str) and is_secret_name(key) and not _says_nothing(item):
        return MASK
    return redact_any(item)


def _says_nothing(item: Any) -> bool:
    """None, a flag or an empty value under a secret's name (`has_password: true`) gives nothing away."""
    return item is None or isinstance(item, bool) or (isinstance(item, (str, bytes, list, tuple, dict)) and not item)
