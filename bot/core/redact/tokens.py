"""Credentials in URLs, token formats, JWTs and Basic credentials."""

from __future__ import annotations

import base64
import binascii
import json
import re

from bot.core.redact.base import JWT_MASK, MASK, looks_secret

_SCHEME_START = r"(?:(?<![A-Za-z0-9+.-])|(?<=%[0-9A-Fa-f]{2}))"
_URL_USERINFO = re.compile(_SCHEME_START + r"([a-zA-Z][a-zA-Z0-9+.-]*+://[^:/@\s]*+:)([^@\s/]++)(@)")
_COLON, _SLASH, _AT = r"(?::|%(?:25)*3A)", r"(?:/|%(?:25)*2F)", r"(?:@|%(?:25)*40)"
_ENCODED_USERINFO = re.compile(
    rf"(?i){_SCHEME_START}([a-z][a-z0-9+.-]*+{_COLON}{_SLASH}{_SLASH}"
    rf"(?:[^%\s/@:&]|%(?!(?:25)*+(?:3A|40|2F))[0-9A-F]{{2}})*+%(?:25)*+3A)"
    rf"((?:[^%\s/@&]|%(?!(?:25)*+(?:40|2F))[0-9A-F]{{2}})++)({_AT})"
)

# --- token formats ------------------------------------------------------------------------------------

_AWS_KEY_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA", "ASCA")
# (lower-case words one of which the text must hold, pattern, replacement): the word test skips the regex
_TOKEN_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"(?<![A-Za-z0-9_])(gh[pousr]_)[A-Za-z0-9]{20,}+"),
        rf"\1{MASK}",
    ),
    (("github_pat_",), re.compile(r"(?<![A-Za-z0-9_])(github_pat_)[A-Za-z0-9_]{20,}+"), rf"\1{MASK}"),
    (
        ("gl",),
        re.compile(r"(?<![A-Za-z0-9_-])(gl(?:pat|dt|rt|ptt|oas|cbt|imt|soat|ft)-)[A-Za-z0-9_-]{16,}+"),
        rf"\1{MASK}",
    ),
    (
        tuple(p.lower() for p in _AWS_KEY_PREFIXES),
        re.compile(rf"(?<![A-Za-z0-9])({'|'.join(_AWS_KEY_PREFIXES)})[A-Z0-9]{{16}}(?![A-Za-z0-9])"),
        rf"\1{MASK}",
    ),
    (("aiza",), re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{30,}+"), "AIza" + MASK),
    (("xox",), re.compile(r"(?<![A-Za-z0-9_-])xox[abposre]-[A-Za-z0-9-]++"), "xox*-" + MASK),
    (("xapp-",), re.compile(r"(?<![A-Za-z0-9_-])xapp-[A-Za-z0-9-]++"), "xapp-" + MASK),
    (("_live_", "_test_"), re.compile(r"(?<![A-Za-z0-9_])((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{8,}+"), rf"\1{MASK}"),
    (("whsec_",), re.compile(r"(?<![A-Za-z0-9_])(whsec_)[A-Za-z0-9+/=]{16,}+"), rf"\1{MASK}"),
    (
        ("hooks.slack.com",),
        re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]++"),
        rf"\1{MASK}",
    ),
    (("bearer",), re.compile(r"(?i)(?<![A-Za-z0-9_-])(bearer)\s++[A-Za-z0-9._~+/=-]{8,}+"), rf"\1 {MASK}"),
]
_JWT = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{10,}+)\.[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]*+")
_BASIC = re.compile(r"(?i)(?<![A-Za-z0-9_-])(basic)\s++([A-Za-z0-9+/=_-]{8,}+)")


def _b64decode(part: str) -> bytes | None:
    try:
        return base64.b64decode(part.translate(str.maketrans("-_", "+/")) + "=" * (-len(part) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _mask_jwt(match: re.Match[str]) -> str:
    header = match.group(1)
    if header.startswith("eyJ"):
        return JWT_MASK
    start = _b64decode(header[:8])
    if start is None or not start.lstrip().startswith(b"{"):
        return match.group(0)
    decoded = _b64decode(header)
    try:
        parsed = json.loads(decoded) if decoded is not None else None
    except ValueError:
        parsed = None
    return JWT_MASK if isinstance(parsed, dict) else match.group(0)


def _mask_basic(match: re.Match[str]) -> str:
    decoded = _b64decode(match.group(2))
    try:
        credentials = decoded is not None and ":" in decoded.decode()
    except UnicodeDecodeError:
        credentials = False
    if credentials or looks_secret(match.group(2)):
        return f"{match.group(1)} {MASK}"
    return match.group(0)
