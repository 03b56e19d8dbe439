"""Token formats (the table in `formats`), JWTs and Basic credentials."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from bot.core.redact.base import JWT_MASK, MASK, looks_secret
from bot.core.redact.formats import TOKEN_FORMATS, TokenFormat


@dataclass(frozen=True)
class CompiledFormat:
    format: TokenFormat
    regex: re.Pattern[str]

    def mask(self, text: str) -> str:
        return self.regex.sub(self.format.mask, text)


COMPILED_FORMATS = tuple(CompiledFormat(f, re.compile(f.pattern)) for f in TOKEN_FORMATS)
# a JWT's header decodes to JSON: `{`, maybe after white space, so it starts with one of these characters
JWT_SHAPE = r"(?:^|[^A-Za-z0-9_-])[CDIe][A-Za-z0-9_-]{9,}\.[A-Za-z0-9_-]{2}"
JWT = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{10,}+)\.[A-Za-z0-9_-]{2,}+(\.[A-Za-z0-9_-]*+)?")
BASIC = re.compile(r"(?i)(?<![A-Za-z0-9_-])(basic)\s++([A-Za-z0-9+/=_-]{8,}+)")


def _b64decode(part: str) -> bytes | None:
    try:
        return base64.b64decode(part.translate(str.maketrans("-_", "+/")) + "=" * (-len(part) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def mask_jwt(match: re.Match[str]) -> str:
    header = match.group(1)
    if header.startswith("eyJ"):
        return JWT_MASK  # also without a signature: the claims alone may be what must not be shown
    if match.group(2) is None:
        return match.group(0)
    start = _b64decode(header[:8])
    if start is None or not start.lstrip().startswith(b"{"):
        return match.group(0)
    decoded = _b64decode(header)
    try:
        parsed = json.loads(decoded) if decoded is not None else None
    except ValueError:
        parsed = None
    return JWT_MASK if isinstance(parsed, dict) else match.group(0)


def mask_basic(match: re.Match[str]) -> str:
    decoded = _b64decode(match.group(2))
    try:
        credentials = decoded is not None and ":" in decoded.decode()
    except UnicodeDecodeError:
        credentials = False
    if credentials or looks_secret(match.group(2)):
        return f"{match.group(1)} {MASK}"
    return match.group(0)
