"""Names that say "secret", and the values written after them (`name=value`, `name: value`, `name value`)."""

from __future__ import annotations

import functools
import re

from bot.core.redact.base import MASK, looks_secret

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
