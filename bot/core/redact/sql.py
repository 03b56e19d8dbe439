"""Secrets inside SQL text (passwords, role statements, crypto calls, sensitive settings, connection strings)."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core.redact.base import MASK

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
# what a text must hold for a SQL trigger to match (for the prefilter): words, and shapes for the triggers that
# need a sensitive name (common in text that is not SQL) together with what follows it in SQL
TRIGGER_WORDS = ("identified", "crypt", "pgp_", "hmac", "digest", "armor", "dblink", "set_config")
_ANY_SENSITIVE = "(?:passw|secret|token|key|credential)"
TRIGGER_SHAPES = (
    r"(?is)(?:create|alter).*(?:role|user|group)",
    r"(?is)password.*['\"$]",
    rf"(?is){_ANY_SENSITIVE}.*=.*['$]",
    rf"(?is)insert.*{_ANY_SENSITIVE}",
    rf"(?is)set.*{_ANY_SENSITIVE}",
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
