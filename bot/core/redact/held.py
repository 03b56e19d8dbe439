"""The secrets the bot itself holds (tokens, DSN passwords), found in every encoding they may travel in."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import unquote, urlsplit

import re2

from bot.core.redact import prefilter
from bot.core.redact.base import MASK, _replace_spans

_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_B64_RUN_RIGHT = re.compile(r"[A-Za-z0-9+/_-]*+={0,2}")
# shorter secrets are too likely to turn up by chance in base64 or hex (`test` is 74657374, a plausible number)
_MIN_B64_SECRET, _MIN_B64_CORE, _MIN_HEX_SECRET = 6, 5, 8


def _case_free_hex(byte: int) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in f"{byte:02X}")


def _url_encoded_pattern(secret: str) -> str:
    """Any mix of literal and percent-encoded characters (quote, quote_plus, lower-case hex, double-encoded)."""
    parts = []
    for char in secret:
        encoded = "".join(f"%(?:25)?{_case_free_hex(b)}" for b in char.encode())
        options = [re.escape(char), encoded] + ([r"\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


def _escaped_forms(secret: str) -> set[str]:
    """The secret as it looks quoted in JSON, a Python repr, SQL or HTML."""
    forms = {
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        secret.replace("'", "''"),
        html.escape(secret),
    }
    return {form for form in forms if form != secret}


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that depend only on the secret, for each of its 3 possible alignments.

    Wherever the secret sits inside base64'd data (`user:secret` in a Basic header, a JSON blob), one of these
    appears verbatim in the encoded text, in the standard or the URL-safe alphabet.
    """
    raw = secret.encode()
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        core = encoded[(8 * offset + 5) // 6 : (8 * (offset + len(raw))) // 6]
        if len(core) >= _MIN_B64_CORE:
            cores.add(core)
            cores.add(core.translate(str.maketrans("+/", "-_")))
    return cores


class _SecretIndex:
    """Registered secrets and the compiled patterns for their encoded forms (rebuilt when a secret is added)."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self._by_length: list[str] = []
        self._encoded: re.Pattern[str] | None = None
        self._hex: re.Pattern[str] | None = None
        self._base64: re.Pattern[str] | None = None
        self._gate: re2._Regexp | None = None
        self._stale = False
        self.generation = 0  # bumped whenever the set changes: what was redacted before may differ now

    def add(self, value: str) -> None:
        if value not in self.values:
            self.values.add(value)
            self._stale = True  # compiled on the next redact: many adds cost one compile
            self.generation += 1

    def clear(self) -> None:
        self.values.clear()
        self._stale = True
        self.generation += 1

    def replace(self, values: set[str]) -> None:
        self.values = set(values)
        self._stale = True
        self.generation += 1

    def _compile(self) -> None:
        self._stale = False
        self._by_length = sorted(self.values, key=len, reverse=True)
        encoded: list[str] = []
        cores: set[str] = set()
        for secret in self._by_length:
            encoded.append(_url_encoded_pattern(secret))
            encoded += [re.escape(form) for form in sorted(_escaped_forms(secret), key=len, reverse=True)]
            if len(secret.encode()) >= _MIN_B64_SECRET:
                cores |= _base64_cores(secret)
        hexed = [
            re.escape(secret.encode().hex()) for secret in self._by_length if len(secret.encode()) >= _MIN_HEX_SECRET
        ]
        self._encoded = re.compile("|".join(encoded)) if encoded else None
        self._hex = re.compile("|".join(hexed), re.IGNORECASE) if hexed else None
        ordered = sorted(cores, key=len, reverse=True)
        self._base64 = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._gate = _gate(encoded + [f"(?i:{form})" for form in hexed] + [re.escape(core) for core in ordered])

    def _may_hold_one(self, text: str) -> bool:
        return self._gate is not None and (self._gate is _ALWAYS or prefilter.search(self._gate, text))

    def redact(self, text: str) -> str:
        if self._stale:
            self._compile()
        if not self._may_hold_one(text):
            return text  # one pass of one automaton instead of the patterns below
        for secret in self._by_length:
            while secret in text:  # a replacement may join neighbours into a new occurrence; each one shrinks
                text = text.replace(secret, MASK)
        # URL-encoded and escaped forms differ from the secret only by these characters
        if self._encoded is not None and any(c in text for c in "%+\\&'"):
            text = _sub_until_stable(self._encoded, text)
        if self._hex is not None:
            text = _sub_until_stable(self._hex, text)
        if self._base64 is not None:
            text = self._mask_base64_runs(text)
        return text

    def _mask_base64_runs(self, text: str) -> str:
        """Mask the whole base64 run around any core, so no decodable piece of the secret is left."""
        assert self._base64 is not None
        spans: list[tuple[int, int, str]] = []
        last = 0
        for match in self._base64.finditer(text):
            if match.start() < last:
                continue
            before = text[last : match.start()]
            start = match.start() - (len(before) - len(before.rstrip(_B64_CHARS)))
            run = _B64_RUN_RIGHT.match(text, match.end())
            end = run.end() if run else match.end()
            spans.append((start, end, MASK))
            last = end
        return _replace_spans(text, spans)


_ALWAYS = re2.compile("")


def _gate(expressions: list[str]) -> re2._Regexp | None:
    """A yes/no search for any form of any secret; a secret RE2 cannot take (a lone surrogate) opens the gate."""
    try:
        return prefilter.any_of(expressions)
    except (re2.error, UnicodeError):
        return _ALWAYS


def _sub_until_stable(pattern: re.Pattern[str], text: str) -> str:
    """Masking may join neighbours into a new match; every round shrinks the text, and 4 rounds are plenty."""
    for _ in range(4):
        text, count = pattern.subn(MASK, text)
        if not count:
            break
    return text


_secrets = _SecretIndex()


def register_secret(value: str | None) -> None:
    """Values from settings (tokens, DSN passwords) are masked wherever they appear, also URL-encoded, escaped
    in JSON/SQL/HTML, base64'd (alone or inside `user:password`; from 6 bytes) and hex (from 8 bytes)."""
    if not value or len(value) < 4:
        return
    _secrets.add(value)
    decoded = unquote(value)
    if decoded != value and len(decoded) >= 4:
        _secrets.add(decoded)
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password and password != value:
            register_secret(password)
