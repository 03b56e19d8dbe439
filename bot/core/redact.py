"""The one redaction function everything that leaves the bot passes through.

`redact(text)` masks, in this order: every secret the bot itself holds (in any encoding it may travel in),
private keys (also when the text starts or ends in the middle of one), credentials in URLs (also
percent-encoded), known token formats, JWTs, Authorization headers, secrets inside SQL text (passwords,
role statements, crypto calls, sensitive settings, connection strings), and `name=value` / `name: value` /
`name value` pairs whose name says they are secret. Every pattern is precompiled and linear-time: no
pattern can backtrack quadratically, so a megabyte of hostile text costs milliseconds, not seconds.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import functools
import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
PRIVATE_KEY_MASK = "[private key redacted]"
JWT_MASK = "[jwt redacted]"

# --- names that say "secret" ------------------------------------------------------------------------

_SECRET_NAME_PARTS = (
    "passw",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "authorization",
)
# `key` alone is secret (`key=…` in a vault's log); `<owner>_key` only for owners that make it one
# (`signing_key` is, `group_key`, `primary_key` and `thread_key` are not).
_KEY_OWNERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "signing",
        "sign",
        "encryption",
        "encrypt",
        "enc",
        "decryption",
        "master",
        "client",
        "app",
        "license",
        "licence",
        "auth",
        "session",
        "hmac",
        "jwt",
        "ssh",
        "crypto",
        "aes",
        "gpg",
        "pgp",
        "ssl",
        "tls",
        "service",
        "shared",
        "root",
        "admin",
        "webhook",
        "consumer",
        "subscription",
        "cipher",
        "kms",
        "storage",
        "account",
        "vault",
        "unseal",
        "recovery",
    }
)
_SECRET_NAME_PART = re.compile("|".join(map(re.escape, _SECRET_NAME_PARTS)), re.IGNORECASE)
_NAME_SEGMENTS = re.compile(r"[_.\-]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "ntlm"})


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for a setting, field or header name whose value is a secret (`password`, `JWT_SECRET`, `api-key`)."""
    if _SECRET_NAME_PART.search(name):
        return True
    segments = [s.lower() for s in _NAME_SEGMENTS.split(name) if s]
    if not segments or segments[-1] != "key":
        return False
    return len(segments) == 1 or segments[-2] in _KEY_OWNERS


_LETTER = re.compile(r"[^\W\d_]")
_DIGIT_OR_SYMBOL = re.compile(r"[\d+/=_!@#$%^&*~]")
_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")


def looks_secret(value: str) -> bool:
    """A value that reads like a credential rather than a word: long enough and mixed, or random-looking."""
    if len(value) < 8:
        return False
    if _LETTER.search(value) and _DIGIT_OR_SYMBOL.search(value):
        return True
    if _LOWER.search(value) and _UPPER.search(value, 1):
        return True
    return len(value) >= 16 and _entropy(value) >= 3.5


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace non-overlapping (start, end, replacement) spans; overlapping later spans are dropped."""
    if not spans:
        return text
    out, last = [], 0
    for start, end, replacement in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)


# --- secrets the bot holds, in every encoding ------------------------------------------------------

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
        self._stale = False

    def add(self, value: str) -> None:
        if value not in self.values:
            self.values.add(value)
            self._stale = True  # compiled on the next redact: many adds cost one compile

    def clear(self) -> None:
        self.values.clear()
        self._stale = True

    def replace(self, values: set[str]) -> None:
        self.values = set(values)
        self._stale = True

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

    def redact(self, text: str) -> str:
        if self._stale:
            self._compile()
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


# --- private keys, cut at any boundary -------------------------------------------------------------

_PEM_MARKER = re.compile(r"-----(BEGIN|END) (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
_LINE_SEP = re.compile(r"\r?\n|\\r\\n|\\n")
_PEM_LINE = re.compile(r"=?[A-Za-z0-9+/]{1,80}={0,2}")
_PEM_HEADER = re.compile(r"(?:Proc-Type|DEK-Info|Version|Comment): .{0,200}")
_PEM_FULL_LINE = re.compile(r"(?m)(?:^|(?<=\\n))[ \t]*+[A-Za-z0-9+/]{60,76}[ \t]*+\r?(?=\n|\\[rn]|\Z)")


def _lines_forward(text: str, pos: int, limit: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line from pos (the first is the rest of pos's line), separators as in PEM or JSON."""
    while pos <= limit:
        sep = _LINE_SEP.search(text, pos, limit)
        end = sep.start() if sep else limit
        yield pos, end
        if not sep:
            return
        pos = sep.end()


def _pem_line(text: str, start: int, stop: int) -> str:
    line = text[start:stop].strip()
    return line[:-2].rstrip() if line.endswith("\\r") else line


def _is_full_line(line: str) -> bool:
    return 60 <= len(line) <= 76


def _looks_like_base64(line: str) -> bool:
    """A partial base64 line rather than a word that happens to use the same letters (`before`, `Done`)."""
    return any(c.isdigit() or c in "+/=" for c in line) or (
        any(c.isupper() for c in line[1:]) and any(c.islower() for c in line)
    )


def _pem_body_end(text: str, pos: int, limit: int) -> int:
    """Where a key body that starts at pos ends: PEM headers, then full base64 lines and the short last one."""
    end, in_body = pos, False
    for index, (start, stop) in enumerate(_lines_forward(text, pos, limit)):
        line = _pem_line(text, start, stop)
        if not line:
            if index == 0 or not in_body:
                continue  # the rest of the BEGIN line; the blank line after PEM headers
            break
        if not in_body and _PEM_HEADER.fullmatch(line):
            end = stop
            continue
        if not _PEM_LINE.fullmatch(line):
            break
        if _is_full_line(line):
            in_body, end = True, stop
            continue
        if _looks_like_base64(line):
            end = stop
        break
    return end


def _line_before(text: str, cursor: int, floor: int) -> tuple[int, int]:
    """(start of the line that ends at cursor, start of the separator before it or -1 at the floor)."""
    newline, escaped = text.rfind("\n", floor, cursor), text.rfind("\\n", floor, cursor)
    if newline < 0 and escaped < 0:
        return floor, -1
    if escaped >= 0 and escaped + 2 > newline + 1:
        return escaped + 2, escaped
    return newline + 1, newline


def _pem_body_start(text: str, end: int, floor: int) -> int:
    """Where a key body that ends at `end` begins: walk back over the short last line, full base64 lines and
    the partial line the text may start with."""
    start, cursor, taken = end, end, 0
    while cursor > floor:
        line_start, separator = _line_before(text, cursor, floor)
        line = _pem_line(text, line_start, cursor)
        if line:
            if not _PEM_LINE.fullmatch(line):
                break
            full = _is_full_line(line)
            if not full and not _looks_like_base64(line):
                break
            start, taken = line_start, taken + 1
            if not full and taken > 1:
                break  # the partial first line of the body
        elif cursor != end:
            break  # a blank line above the body
        if separator < 0:
            break
        cursor = separator
    return start


def _mask_private_keys(text: str) -> str:
    spans: list[tuple[int, int, str]] = []
    markers = list(_PEM_MARKER.finditer(text)) if "PRIVATE KEY" in text else []
    floor, index = 0, 0
    while index < len(markers):
        marker = markers[index]
        following = markers[index + 1] if index + 1 < len(markers) else None
        if marker.group(1) == "BEGIN" and following is not None and following.group(1) == "END":
            spans.append((marker.start(), following.end(), PRIVATE_KEY_MASK))
            floor, index = following.end(), index + 2
            continue
        if marker.group(1) == "BEGIN":
            limit = following.start() if following is not None else len(text)
            end = _pem_body_end(text, marker.end(), limit)
            spans.append((marker.start(), end, PRIVATE_KEY_MASK))
            floor = end
        else:
            spans.append((_pem_body_start(text, marker.start(), floor), marker.end(), PRIVATE_KEY_MASK))
            floor = marker.end()
        index += 1
    spans += _bare_key_bodies(text, spans)
    return _replace_spans(text, spans)


def _bare_key_bodies(text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Two or more consecutive full base64 lines with neither BEGIN nor END in view: the middle of a key."""
    found: list[tuple[int, int, str]] = []
    run: list[re.Match[str]] = []
    starts, ends = [s for s, _, _ in taken], [e for _, e, _ in taken]  # in text order, not overlapping

    def close_run() -> None:
        if len(run) >= 2:
            start, end = run[0].start(), run[-1].end()
            before = bisect.bisect_right(ends, start)  # spans [0, before) end at or before the run
            if before == len(starts) or starts[before] >= end:
                start = _pem_body_start(text, start, ends[before - 1] if before else 0)
                end = _pem_body_end(text, end, starts[before] if before < len(starts) else len(text))
                found.append((start, end, PRIVATE_KEY_MASK))
        run.clear()

    for line in _PEM_FULL_LINE.finditer(text):
        if run and not _LINE_SEP.fullmatch(text[run[-1].end() : line.start()].strip(" \t\r") or "x"):
            close_run()
        run.append(line)
    close_run()
    return found


# --- SQL ---------------------------------------------------------------------------------------------

_SQL_MASKED_LITERAL = "'" + MASK + "'"
_STD_STRING = re.compile(r"'[^']*+(?:''[^']*+)*+(?:'|\Z)")
_ESC_STRING = re.compile(r"'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+(?:'|\\?\Z)", re.DOTALL)
_DOLLAR_OPEN = re.compile(r"\$(?:[^\W\d]\w{0,62})?\$")
_QUOTED_IDENT = re.compile(r'"[^"]*+(?:""[^"]*+)*+(?:"|\Z)')
_CRYPTO_FUNCTIONS = (
    r"pgp_sym_encrypt(?:_bytea)?|pgp_sym_decrypt(?:_bytea)?|pgp_pub_encrypt(?:_bytea)?|pgp_pub_decrypt(?:_bytea)?"
    r"|crypt|encrypt(?:_iv)?|decrypt(?:_iv)?|hmac|digest|armor|dearmor"
)
_SQL_NAME = r'(?:"[^"\n]{0,128}"|[^\W\d][\w$]{0,127})'
_SENSITIVE_WORD = r"(?:passw|secret|key|token)"
_SENSITIVE_COLUMN = r"(?:passw|secret|token|api_?key|private_?key|credential)"
_MASKED = r"'?\*\*\*"  # already masked: nothing to do (keeps the second pass cheap)
_SQL_TRIGGER = re.compile(
    rf"""
    \b(?:
      (?P<role>(?:CREATE|ALTER)\s++(?:ROLE|USER|GROUP)\b)
    | (?P<password>(?:PASSWORD|IDENTIFIED\s++BY)\s++(?=[eE]?'|\$|")(?!{_MASKED}))
    | (?P<crypto>(?:{_CRYPTO_FUNCTIONS})\s*+\()
    | (?P<dblink>dblink(?:_connect(?:_u)?|_exec|_send_query|_open)?\s*+\()
    | (?P<set_config>set_config\s*+\(\s*+(?='[^']{{0,200}}?{_SENSITIVE_WORD}))
    | (?P<assign>(?=[\w.]{{0,64}}?{_SENSITIVE_COLUMN})[\w.]{{1,64}}+\s*+=\s*+(?=[eE]?'|\$))
    | (?P<insert>INSERT\s++INTO\s++{_SQL_NAME}(?:\s*+\.\s*+{_SQL_NAME})?\s*+\(
          (?=[^()'$;]{{0,500}}?{_SENSITIVE_COLUMN}))
    | (?P<set>SET\s++(?:SESSION\s++|LOCAL\s++)?(?=[\w."$]{{0,260}}?{_SENSITIVE_WORD})
          (?P<setting>{_SQL_NAME}(?:\s*+\.\s*+{_SQL_NAME}){{0,3}})\s*+(?:=|\bTO\b)\s*+(?!{_MASKED}))
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)
# after a literal the scan resumes right at the next token, so only a word character rules out a prefix or a `$`
_SQL_SCAN = re.compile(r"""(?<!\w)(?:[eE]|[bBxXnN]|[uU]&)'|'|"|(?<!\w)\$(?:[^\W\d]\w{0,62})?\$|[;()]""")
_SENSITIVE_SETTING = re.compile(_SENSITIVE_WORD, re.IGNORECASE)
# words without which no SQL trigger can match (checked on the lower-cased text before any regex runs)
_SQL_WORDS = (
    "passw",
    "identified",
    "role",
    "user",
    "group",
    "crypt",
    "pgp_",
    "hmac",
    "digest",
    "armor",
    "dblink",
    "set",
    "insert",
    "secret",
    "token",
    "key",
    "credential",
)
_BARE_SETTING_VALUE = re.compile(r"[^\s;,)]++")
_CONNINFO_PASSWORD = re.compile(r"(?i)(\b\w*pass(?:word|wd)?\s*+=\s*+)('(?:[^'\\]|\\.)*+'?|[^\s']++)")


def _literal_end(text: str, start: int) -> int | None:
    """End of the SQL literal starting at `start` (an unterminated one runs to the end of the text)."""
    head = text[start : start + 3]
    if head[:1] == "'":
        return _STD_STRING.match(text, start).end()  # type: ignore[union-attr]
    if head[:1] in "eE" and head[1:2] == "'":
        return _ESC_STRING.match(text, start + 1).end()  # type: ignore[union-attr]
    if head[:1] in "bBxXnN" and head[1:2] == "'":
        return _STD_STRING.match(text, start + 1).end()  # type: ignore[union-attr]
    if head[:1] in "uU" and head[1:3] == "&'":
        return _STD_STRING.match(text, start + 2).end()  # type: ignore[union-attr]
    opener = _DOLLAR_OPEN.match(text, start) if head[:1] == "$" else None
    if opener:
        close = text.find(opener.group(), opener.end())
        return len(text) if close < 0 else close + len(opener.group())
    return None


def _scan_sql(text: str, pos: int, *, call: bool) -> tuple[int, list[tuple[int, int]]]:
    """The literals from pos to the end of the statement (`;`) or, for a call, to its closing parenthesis."""
    depth = 1
    literals: list[tuple[int, int]] = []
    while (token := _SQL_SCAN.search(text, pos)) is not None:
        char = token.group()
        if char == ";":
            return token.start(), literals
        if char in "()":
            depth += 1 if char == "(" else -1
            if call and depth == 0:
                return token.end(), literals
            pos = token.end()
        elif char == '"':
            pos = _QUOTED_IDENT.match(text, token.start()).end()  # type: ignore[union-attr]
        else:
            end = _literal_end(text, token.start())
            if end is None:
                pos = token.end()
                continue
            literals.append((token.start(), end))
            pos = end
    return len(text), literals


def _literal_body(literal: str) -> tuple[str, str, str]:
    """(opening, decoded body, closing) of a literal, so its content can be edited and written back."""
    opener = _DOLLAR_OPEN.match(literal)
    if opener:
        tag = opener.group()
        closed = len(literal) >= 2 * len(tag) and literal.endswith(tag)
        return tag, literal[len(tag) : len(literal) - len(tag) if closed else None], tag
    quote_at = literal.index("'")
    body = literal[quote_at + 1 :]
    closed = len(body) > 0 and body.endswith("'") and (len(body) - len(body.rstrip("'"))) % 2 == 1
    body = body[:-1] if closed else body
    return literal[: quote_at + 1], body.replace("''", "'"), "'"


def _scrub_conninfo(literal: str) -> str:
    opening, body, closing = _literal_body(literal)
    scrubbed = _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, body)
    if scrubbed == body:
        return literal
    return opening + (scrubbed if opening.startswith("$") else scrubbed.replace("'", "''")) + closing


def _sql_role(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    end, literals = _scan_sql(text, match.end(), call=False)
    spans += [(s, e, _SQL_MASKED_LITERAL) for s, e in literals]
    return end


def _sql_next_literal(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    """PASSWORD 'x', password_hash = 'x': the literal right after the match."""
    start = match.end()
    if text[start : start + 1] == '"':
        end: int | None = _QUOTED_IDENT.match(text, start).end()  # type: ignore[union-attr]
    else:
        end = _literal_end(text, start)
    if end is None:
        return match.end()
    spans.append((start, end, _SQL_MASKED_LITERAL))
    return end


def _sql_crypto(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    end, literals = _scan_sql(text, match.end(), call=True)
    spans += [(s, e, _SQL_MASKED_LITERAL) for s, e in literals]
    return end


def _sql_dblink(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    end, literals = _scan_sql(text, match.end(), call=True)
    for start, stop in literals:
        scrubbed = _scrub_conninfo(text[start:stop])
        if scrubbed != text[start:stop]:
            spans.append((start, stop, scrubbed))
    return end


def _sql_set_config(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    name_end = _literal_end(text, match.end()) if text[match.end() : match.end() + 1] == "'" else None
    if name_end is None or not _SENSITIVE_SETTING.search(text[match.end() : name_end]):
        return match.end()
    end, literals = _scan_sql(text, name_end, call=True)
    spans += [(s, e, _SQL_MASKED_LITERAL) for s, e in literals]
    return end


def _sql_insert(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    """INSERT INTO users (email, password_hash) VALUES (…): every literal (the trigger saw a secret column)."""
    end, literals = _scan_sql(text, match.end(), call=False)
    spans += [(s, e, _SQL_MASKED_LITERAL) for s, e in literals]
    return end


def _sql_set(text: str, match: re.Match[str], spans: list[tuple[int, int, str]]) -> int:
    if not _SENSITIVE_SETTING.search(match.group("setting")):
        return match.end()
    start = match.end()
    end = _literal_end(text, start)
    if end is not None:
        spans.append((start, end, _SQL_MASKED_LITERAL))
        return end
    bare = _BARE_SETTING_VALUE.match(text, start)
    if bare and bare.group().upper() != "DEFAULT" and bare.group() != MASK:
        spans.append((start, bare.end(), MASK))
        return bare.end()
    return start


_SQL_HANDLERS: dict[str, Callable[[str, re.Match[str], list[tuple[int, int, str]]], int]] = {
    "role": _sql_role,
    "password": _sql_next_literal,
    "assign": _sql_next_literal,
    "crypto": _sql_crypto,
    "dblink": _sql_dblink,
    "set_config": _sql_set_config,
    "insert": _sql_insert,
    "set": _sql_set,
}


def scrub_sql(text: str) -> str:
    """Mask the secrets in SQL text, keeping the statement readable.

    String literals after PASSWORD, every literal of CREATE/ALTER ROLE|USER and of INSERTs into secret
    columns, the arguments of pgcrypto calls, values of sensitive settings (SET, set_config) and the passwords
    in dblink connection strings become '***'. Doubled quotes, E'' strings and dollar quoting are understood;
    an unterminated literal (truncated query text) is masked to the end.
    """
    spans: list[tuple[int, int, str]] = []
    pos = 0
    while (match := _SQL_TRIGGER.search(text, pos)) is not None:
        kind = next(name for name in _SQL_HANDLERS if match.group(name) is not None)
        pos = max(_SQL_HANDLERS[kind](text, match, spans), match.end())
    return _join_apart(text, spans)


def _join_apart(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Like _replace_spans, but '***' right next to another literal would read as one literal with a doubled
    quote (and be masked again next time): a space keeps them apart."""
    out: list[str] = []
    last, tail = 0, text[:0]
    for start, end, replacement in sorted(spans):
        if start < last:
            continue
        gap = text[last:start]
        tail = gap[-1:] or tail
        if replacement.startswith("'") and tail == "'":
            replacement = " " + replacement
        if replacement.endswith("'") and text[end : end + 1] == "'":
            replacement += " "
        out += [gap, replacement]
        tail, last = replacement[-1:] or tail, end
    out.append(text[last:])
    return "".join(out)


_NORMALISE_TOKEN = re.compile(
    r"""
      (?P<keep>--[^\n]*+|/\*.*?(?:\*/|\Z)|"[^"]*+(?:""[^"]*+)*+(?:"|\Z)|\$\d++)
    | (?P<string>(?:[eE]'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+|(?:[bBxXnN]|[uU]&)?'[^']*+(?:''[^']*+)*+)(?:'|\\?\Z))
    | (?P<word>[^\W\d][\w$]*+)
    | (?P<dollar>\$(?:[^\W\d]\w{0,62})?\$)
    | (?P<number>0[xXoObB][0-9a-fA-F_]++|(?:\d[\d_]*+(?:\.[\d_]*+)?|\.\d[\d_]*+)(?:[eE][+-]?\d++)?)
    | (?P<other>\s++|[^\w\s'"$./-]++|.)
    """,
    re.DOTALL | re.VERBOSE,
)


def normalise_sql(text: str) -> str:
    """The query with every literal (strings, dollar-quoted strings, numbers) replaced by `?`, the way
    pg_stat_statements shows `$1`: for showing a query where its constants are not needed."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        token = _NORMALISE_TOKEN.match(text, pos)
        assert token is not None  # `other` matches any single character
        kind = token.lastgroup
        if kind == "dollar":
            close = text.find(token.group(), token.end())
            pos = len(text) if close < 0 else close + len(token.group())
            out.append("?")
            continue
        out.append("?" if kind in ("string", "number") else token.group())
        pos = token.end()
    return "".join(out)


# --- credentials in URLs ----------------------------------------------------------------------------

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


# --- name=value pairs ---------------------------------------------------------------------------------

_NAME_HINTS = ("passw", "pwd", "secret", "token", "credential", "key", "passphrase", "authorization")
_KEY_VALUE = re.compile(
    rf"(?<![A-Za-z0-9_.-])(?=[A-Za-z0-9_.-]*?(?i:{'|'.join(_NAME_HINTS)}))"
    r"(?P<name>[A-Za-z0-9_.-]++)"
    r"(?:(?P<sep>[\"']?\s*+(?:=>|:=|[=:])\s*+)"
    r"(?P<value>\[[a-z ]{1,20} redacted\]|\\?\"(?:[^\"\\\n]|\\.)*+\"?|'(?:[^'\\\n]|\\.|'')*+'?|[^\s\"',;&]++)"
    # `secret hunter2xyz`: only a single word of 8 or more that starts like a credential (checked further on)
    r"|(?P<space>[\"']?[ \t]++)(?![a-z ]{0,20}redacted\])"
    r"(?P<word>(?P<quote>[\"']?)[A-Za-z0-9][^\s\"',;&]{7,}+(?P=quote)))"
)


def _unquote_value(value: str) -> tuple[str, str, str]:
    for opening, closing in (('\\"', '\\"'), ('"', '"'), ("'", "'")):
        if value.startswith(opening):
            inner = value[len(opening) :]
            close = closing if inner.endswith(closing) and len(inner) >= len(closing) else ""
            return opening, inner[: len(inner) - len(close)] if close else inner, close
    return "", value, ""


def _mask_key_values(text: str) -> str:
    """Mask values of secret-named keys; for the `name value` form only when the value looks like a secret."""
    out: list[str] = []
    pos, last = 0, 0
    while (match := _KEY_VALUE.search(text, pos)) is not None:
        value = "value" if match.group("space") is None else "word"
        if not is_secret_name(match.group("name")):
            pos = match.start(value)  # the value may itself hold a secret pair: look at it again
            continue
        opening, inner, closing = _unquote_value(match.group(value))
        if (
            inner == ""
            or inner.endswith(MASK)
            or inner.startswith(MASK + "@")
            or inner.lower() in _AUTH_SCHEMES
            or (inner.startswith("[") and inner.endswith("redacted]"))
            or (value == "word" and not looks_secret(inner))
        ):
            pos = match.start(value)
            continue
        out.append(text[last : match.start(value)])
        out.append(opening + MASK + closing)
        pos = last = match.end()
    out.append(text[last:])
    return "".join(out)


# --- putting it together ------------------------------------------------------------------------------


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
