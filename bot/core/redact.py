"""The one redaction function everything that leaves the bot passes through."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # private keys, whole block
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        "[private key redacted]",
    ),
    # user:password@ in any URL or DSN
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)"), rf"\1{MASK}\3"),
    # Slack tokens and signing-style secrets
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), "xox*-" + MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), "xapp-" + MASK),
    # JWTs
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[jwt redacted]"),
    # Authorization headers
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # key=value and key: value for secret-looking keys (password=, PGPASSWORD=, JWT_SECRET: …)
    (
        re.compile(
            r"(?i)\b([A-Z0-9_]*(?:password|passwd|pwd|secret|token|api[_-]?key|credentials?)[A-Z0-9_]*)"
            r"(\s*[=:]\s*|\"\s*:\s*\")(\"?)([^\s\"',;&]+)"
        ),
        rf"\1\2\3{MASK}",
    ),
]

_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Values from settings (tokens, DSN passwords) are masked wherever they appear verbatim."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_any(value: Any) -> Any:
    """Redact every string inside nested dicts/lists (Block Kit payloads, log events)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_any(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_any(item) for item in value]
    return value
