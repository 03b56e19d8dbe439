"""Credentials on command lines and in cookie headers.

Command lines (`docker top`, `ps`, shell history): `--password X`, `--db-password=X` and every other flag named
like a secret, `mysql -pX` (also `-p` attached to a credential-looking value elsewhere), `curl -u user:X`.
Cookie headers: every `name=value` of `Cookie:` and `Set-Cookie:` loses its value, attributes stay.
"""

from __future__ import annotations

import re

from bot.core.redact.base import MASK, looks_secret
from bot.core.redact.names import STRONG, name_strength

_FLAG = re.compile(
    r"(?P<flag>-(?<![^\s\"']-)-?[A-Za-z][\w-]*+)(?P<sep>=|[ \t]++)(?P<value>\"[^\"\n]*+\"?|'[^'\n]*+'?|[^\s\"']++)"
)
_NOT_A_SECRET_FLAG = re.compile(r"(?i)(?:file|stdin|path|dir|env|prompt|policy|min|max|length|age|expiry)$")
_ATTACHED_P = re.compile(r"-(?<![^\s\"']-)p(?P<value>[^\s\"']++)")
_MYSQL_FAMILY = re.compile(r"(?i)mysql|mariadb")
_PORT_LIKE = re.compile(r"[0-9.:\[\]a-f/]*+(?:tcp|udp)?")
PROGRAM_PASSWORD_FLAGS = {"redis-cli": "a", "sshpass": "p", "mongo": "p"}
_PROGRAM_FLAG = {
    flag: re.compile(rf"(?P<flag>-(?<![^\s\"']-){flag}(?:[ \t]++|=)?)(?P<value>[^\s\"'-][^\s\"']*+)")
    for flag in set(PROGRAM_PASSWORD_FLAGS.values())
}
_USER_PASSWORD = re.compile(r"-(?<![^\s\"']-)(?:u|-user)(?:=|[ \t]*+)(?P<user>[^\s:\"']*+):(?P<password>[^\s\"']++)")
_COOKIE_HEADER = re.compile(r"(?i)(?<![\w-])(?:set-)?cookie\s*+:[ \t]*+")
_COOKIE_PAIR = re.compile(r"(?P<name>[^=;,\s\"\\]++)=(?P<value>[^;\s\"\\]*+)(?:;[ \t]*+)?")
_COOKIE_ATTRIBUTES = frozenset({"path", "domain", "expires", "max-age", "samesite", "priority", "version", "comment"})


def _masked(value: str) -> bool:
    return value.strip("\"'") in ("", MASK)


def mask_secret_flags(text: str) -> str:
    """`--password X`, `--api-token=X`: any value, not only one that looks like a credential."""

    def replace(match: re.Match[str]) -> str:
        flag, value = match.group("flag"), match.group("value")
        name = flag.lstrip("-")
        if (
            name_strength(name) != STRONG
            or _NOT_A_SECRET_FLAG.search(name)
            or (not flag.startswith("--") and match.group("sep") != "=" and not name.islower())  # `-pS3cret erp`
            or value.startswith("-")
            or _masked(value)
        ):
            return match.group(0)
        quote = value[0] if value[0] in "\"'" else ""
        return f"{flag}{match.group('sep')}{quote}{MASK}{quote}"

    return _FLAG.sub(replace, text)


def mask_attached_password(text: str) -> str:
    """`mysql -pX`; elsewhere `-p` is a port or a flag (`docker -p 8080:80`, `cp -pR`) unless X looks secret."""
    mysql = _MYSQL_FAMILY.search(text) is not None

    def replace(match: re.Match[str]) -> str:
        value = match.group("value")
        if _masked(value) or not (mysql or (looks_secret(value) and not _PORT_LIKE.fullmatch(value))):
            return match.group(0)
        return "-p" + MASK

    return _ATTACHED_P.sub(replace, text)


def mask_program_password(text: str) -> str:
    """`redis-cli -a X`, `sshpass -p X`, `mongosh -p X`: the short flag that is a password for that program."""
    for program, flag in PROGRAM_PASSWORD_FLAGS.items():
        if program in text:
            text = _PROGRAM_FLAG[flag].sub(
                lambda m: m.group(0) if _masked(m.group("value")) else m.group("flag") + MASK, text
            )
    return text


def mask_user_password(text: str) -> str:
    """`curl -u user:X`, `--user=user:X`; a numeric `uid:gid` (`docker run -u 1000:1000`) stays."""

    def replace(match: re.Match[str]) -> str:
        user, password = match.group("user"), match.group("password")
        if _masked(password) or (user.isdigit() and password.isdigit()):
            return match.group(0)
        return match.group(0)[: match.start("password") - match.start()] + MASK

    return _USER_PASSWORD.sub(replace, text)


def mask_cookies(text: str) -> str:
    out: list[str] = []
    last = pos = 0
    for header in _COOKIE_HEADER.finditer(text):
        if header.start() < pos:
            continue  # inside the pairs of the header before
        pos = header.end()
        while (pair := _COOKIE_PAIR.match(text, pos)) is not None:
            name, value = pair.group("name"), pair.group("value")
            if name.lower() not in _COOKIE_ATTRIBUTES and value and value != MASK:
                out += [text[last : pair.start("value")], MASK]
                last = pair.end("value")
            pos = pair.end()
    out.append(text[last:])
    return "".join(out)
