"""Names that say "secret", and the values written after them (`name=value`, `name: value`, `"name": "value"`,
`name value`).

A name is secret by a class of words, not a list of settings: anything that contains `passw`, `pwd`, `secret`,
`token`, `credential`…, a `pass`/`pw` segment (`DB_PASS`, `?pw=`), a `…_key` whose owner is not one of the
ordinary kinds of key (`group_key`, `primary_key`, `keyspace_hits` are not secrets). `auth`, `cookie`,
`session` and `sig` are weaker words (`session count: 3`, `auth: md5`): their values are masked only when they
look like credentials.
"""

from __future__ import annotations

import functools
import re

from bot.core.redact.base import MASK, looks_secret

STRONG, WEAK, NOT_SECRET = 2, 1, 0

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
_PASS_SEGMENTS = frozenset({"pass", "pw", "passcode", "passcodes"})
_NOT_PASSWORDS = frozenset({"bypass", "compass", "overpass", "underpass", "trespass", "surpass", "firstpass"})
# a `<owner>key` written as one word is secret only for these owners (`signingkey`, not `monkey` or `hotkey`)
_KEY_OWNERS = frozenset(
    [
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
    ]
)
# `<owner>_key` names that are not secrets: database and cache keys, public halves, identifiers of things
_ORDINARY_KEYS = frozenset(
    [
        "group",
        "primary",
        "foreign",
        "sort",
        "partition",
        "cache",
        "routing",
        "dedup",
        "dedupe",
        "idempotency",
        "object",
        "public",
        "pub",
        "hash",
        "range",
        "shard",
        "lookup",
        "unique",
        "composite",
        "natural",
        "surrogate",
        "label",
        "map",
        "row",
        "index",
        "hot",
        "thread",
        "alert",
        "silence",
        "issue",
        "project",
        "translation",
        "message",
        "config",
        "setting",
        "lock",
        "event",
        "order",
        "record",
        "join",
        "match",
        "cursor",
        "page",
        "next",
        "last",
        "first",
        "start",
        "end",
        "min",
        "max",
        "redis",
        "s3",
        "bucket",
        "dict",
        "sharding",
        "distribution",
        "fingerprint",
        "ssh_public",
        "host",
    ]
)
_KEY_TAILS = frozenset({"base", "material", "value", "data", "pair", "secret", "passphrase"})
_WEAK_SEGMENTS = frozenset(
    {"auth", "cookie", "cookies", "session", "sessionid", "sessid", "jsessionid", "phpsessid", "sid", "sig"}
)
_WEAK_OWNERS = frozenset({"session", "cookie", "auth"})
_SECRET_NAME_PART = re.compile("|".join(map(re.escape, _SECRET_NAME_PARTS)), re.IGNORECASE)
_NAME_SEGMENTS = re.compile(r"[_.\-]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "ntlm"})
# lower-case words one of which any secret name holds: where to look for `name=value` pairs
NAME_HINTS = ("pass", "pw", "secret", "token", "credential", "key", "auth", "cookie", "sess", "sig", "sid")


def name_strength(name: str) -> int:
    """STRONG for a name whose value is a secret (`password`, `JWT_SECRET`, `DB_PASS`, `STRIPE_KEY`), WEAK for one
    whose value is a secret when it looks like one (`session`, `sig`, `X-Auth`), NOT_SECRET otherwise."""
    # names come from any text: only ordinary ones are remembered, not a megabyte-long "name"
    return _cached_strength(name) if len(name) <= 128 else _strength(name)


@functools.lru_cache(maxsize=4096)
def _cached_strength(name: str) -> int:
    return _strength(name)


def _strength(name: str) -> int:
    if _SECRET_NAME_PART.search(name):
        return STRONG
    segments = [s.lower() for s in _NAME_SEGMENTS.split(name.strip("-")) if s]
    if not segments:
        return NOT_SECRET
    if any(_is_password_segment(s) for s in segments) or _is_secret_key(segments):
        return STRONG
    last, owner = segments[-1], segments[-2] if len(segments) > 1 else ""
    if last in _WEAK_SEGMENTS or last.endswith("auth") or (last in {"id", "key", "value"} and owner in _WEAK_OWNERS):
        return WEAK
    return NOT_SECRET


def is_secret_name(name: str) -> bool:
    """True for a setting, field or header name whose value is (or may be) a secret (`password`, `api-key`)."""
    return name_strength(name) != NOT_SECRET


def _is_password_segment(segment: str) -> bool:
    return segment in _PASS_SEGMENTS or (segment.endswith("pass") and segment not in _NOT_PASSWORDS)


def _is_secret_key(segments: list[str]) -> bool:
    for index, segment in enumerate(segments):
        owner = segments[index - 1] if index else ""
        following = segments[index + 1] if index + 1 < len(segments) else ""
        if segment in ("key", "keys") and (following == "" or following in _KEY_TAILS):
            if owner not in _ORDINARY_KEYS:
                return True
        elif segment.endswith("key") and segment[:-3] in _KEY_OWNERS:
            return True
    return False


def looks_like_credential(value: str) -> bool:
    """What a weak name's value must look like to be masked: a credential, not a count, a word or a method."""
    return looks_secret(value) or (len(value) >= 16 and not value.isalpha())


_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]*+")
_KEY_VALUE_TAIL = re.compile(
    r"(?:(?P<sep>[\"']?\s*+(?:=>|:=|[=:])\s*+)"
    r"(?P<value>\[[a-z ]{1,20} redacted\]|\\?\"(?:[^\"\\\n]|\\.)*+\"?|'(?:[^'\\\n]|\\.|'')*+'?|[^\s\"',;&]++)"
    # `secret hunter2xyz`: only a single word of 8 or more that starts like a credential (checked further on)
    r"|(?P<space>[\"']?[ \t]++)(?![a-z ]{0,20}redacted\])"
    r"(?P<word>(?P<quote>[\"']?)[A-Za-z0-9][^\s\"',;&]{7,}+(?P=quote)))"
)
_FUNCTION_CALL = re.compile(r"[A-Za-z_][\w.]*+\(")  # `pw = crypt('…')`: the arguments are the SQL step's
_NAME_CHAR_SET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _unquote_value(value: str) -> tuple[str, str, str]:
    for opening, closing in (('\\"', '\\"'), ('"', '"'), ("'", "'")):
        if value.startswith(opening):
            inner = value[len(opening) :]
            close = closing if inner.endswith(closing) and len(inner) >= len(closing) else ""
            return opening, inner[: len(inner) - len(close)] if close else inner, close
    return "", value, ""


def _hint_positions(text: str) -> list[int]:
    lower = text.lower()
    found: set[int] = set()
    for hint in NAME_HINTS:
        at = lower.find(hint)
        while at >= 0:
            found.add(at)
            at = lower.find(hint, at + 1)
    return sorted(found)


def _name_start(text: str, at: int, floor: int) -> int:
    while at > floor and text[at - 1] in _NAME_CHAR_SET:
        at -= 1
    return at


def _keeps_value(name: str, kind: str, inner: str) -> bool:
    """A value that gives nothing away (already masked, an auth scheme's name) or, for the `name value` form
    and for weak names, one that does not look like a credential."""
    strength = name_strength(name)
    return (
        strength == NOT_SECRET
        or inner == ""
        or inner.endswith(MASK)
        or inner.startswith(MASK + "@")
        or inner.lower() in _AUTH_SCHEMES
        or (inner.startswith("[") and inner.endswith("redacted]"))
        or _FUNCTION_CALL.fullmatch(inner) is not None
        or (kind == "word" and not looks_secret(inner))
        or (strength == WEAK and not looks_like_credential(inner))
    )


def mask_key_values(text: str) -> str:
    """Mask values of secret-named keys; for the `name value` form only when the value looks like a secret.

    Only names that hold a hint are looked at, so the cost follows the hints, not the length of the text."""
    out: list[str] = []
    pos = last = name_end = 0
    for at in _hint_positions(text):
        if at < max(pos, name_end):
            continue  # inside a name already looked at, or a value already masked
        start = _name_start(text, at, pos)
        name_end = _NAME_CHARS.match(text, at).end()  # type: ignore[union-attr]
        match = _KEY_VALUE_TAIL.match(text, name_end)
        if match is None or (start > 0 and text[start - 1] in _NAME_CHAR_SET):
            continue
        kind = "value" if match.group("space") is None else "word"
        opening, inner, closing = _unquote_value(match.group(kind))
        if _keeps_value(text[start:name_end], kind, inner):
            continue  # the value may itself hold a secret pair: its hints come next
        out += [text[last : match.start(kind)], opening + MASK + closing]
        pos = last = match.end()
    out.append(text[last:])
    return "".join(out)
