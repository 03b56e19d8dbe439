"""Credentials in URLs: any userinfo, whatever it contains (`@`, `/`), also JSON-escaped and percent-encoded.

A password is everything from the first `:` after the user to the LAST `@` of the URL's run of characters, so
`postgres://app:p@ss/w@rd@db` loses all of `p@ss/w@rd`. What reads as `host:port/…` is not userinfo. A URL cut
before its `@` (`mongodb+srv://erp:l6pv…`) at the end of a text still loses what follows the colon.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.core.redact.base import MASK, looks_secret

_SCHEME_START = r"(?:(?<![A-Za-z0-9+.-])|(?<=%[0-9A-Fa-f]{2}))"
# found from its `://` (a plain search, much cheaper than trying a scheme at every position), then checked
_SEPARATOR = re.compile(r":\\?/\\?/")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_CHARS = "".join(sorted(_LETTERS)) + "0123456789+.-"
_HEX = frozenset("0123456789ABCDEFabcdef")
_USERINFO = re.compile(r"(?P<user>[^:/@\s\"'<>\\]*+)(?P<colon>:)?")
_RUN = re.compile(r"[^\s\"'<>]*+")
_PORT = re.compile(r"[0-9]{1,5}(?:[/?#\\]|\Z)")
_CUT = ("…", "...")
_COLON, _SLASH, _AT = r"(?::|%(?:25)*3A)", r"(?:/|%(?:25)*2F)", r"(?:@|%(?:25)*40)"
_ENCODED_USERINFO = re.compile(
    rf"(?i){_SCHEME_START}([a-z][a-z0-9+.-]*+{_COLON}{_SLASH}{_SLASH}"
    rf"(?:[^%\s/@:&]|%(?!(?:25)*+(?:3A|40|2F))[0-9A-F]{{2}})*+%(?:25)*+3A)"
    rf"((?:[^%\s/@&]|%(?!(?:25)*+(?:40|2F))[0-9A-F]{{2}})++)({_AT})"
)
SCHEME_SHAPES = ("://", r":\/\/")  # what the text must hold for a URL with userinfo (literals)
ENCODED_SHAPE = r"%(?:25)*3[Aa]"


def _userinfo_span(text: str, match: re.Match[str], run_end: int, last_at: int) -> tuple[int, int] | None:
    """The part of a URL's userinfo to mask, if the URL has a credential."""
    if match.group("colon") is None:  # `https://TOKEN@host`: a user name alone is a secret when it looks like one
        user = match.group("user")
        if last_at == match.end("user") and looks_secret(user) and user != MASK:
            return match.start("user"), last_at
        return None
    start = match.end()
    if _PORT.match(text, start, run_end):
        return None  # host:port/…, no userinfo
    end = last_at if last_at >= start else None
    if end is None and (run_end == len(text) or text[start:run_end].endswith(_CUT)):
        end = run_end  # the text was cut before the `@`
    if end is None or end == start or text[start:end] == MASK:
        return None
    return start, end


def _has_scheme(text: str, end: int) -> bool:
    """A scheme ends at `end`: letters first, not in the middle of a word (after `%22` in an encoded URL is fine)."""
    head = text[max(0, end - 64) : end]
    run = head[len(head.rstrip(_SCHEME_CHARS)) :]
    if not run:
        return False
    if run[0] in _LETTERS:
        return True
    after_escape = len(head) > len(run) and head[-len(run) - 1] == "%"
    return after_escape and len(run) > 2 and run[0] in _HEX and run[1] in _HEX and run[2] in _LETTERS


def _urls(text: str) -> Iterator[re.Match[str]]:
    """The userinfo candidate (user and colon) of every URL."""
    for separator in _SEPARATOR.finditer(text):
        if _has_scheme(text, separator.start()):
            yield _USERINFO.match(text, separator.end())  # type: ignore[misc]


def mask_url_userinfo(text: str) -> str:
    out: list[str] = []
    last, run_end, last_at = 0, -1, -1
    for match in _urls(text):
        if match.start() < last:
            continue  # inside what was just masked
        if match.start() >= run_end:  # each run of URL characters is scanned once, however many URLs start in it
            run_end = _RUN.match(text, match.start()).end()  # type: ignore[union-attr]
            last_at = text.rfind("@", match.start(), run_end)
        span = _userinfo_span(text, match, run_end, last_at)
        if span is not None:
            out += [text[last : span[0]], MASK]
            last = span[1]
    out.append(text[last:])
    return "".join(out)


def mask_encoded_userinfo(text: str) -> str:
    return _ENCODED_USERINFO.sub(rf"\1{MASK}\3", text)
