"""How the real ERPGo's log lines read: zerolog's console and JSON writers, Go panics and gin's recovery.

The API logs through zerolog. Its console writer (what `docker logs erpgo-api` shows by default) prints

    2025-11-30T01:02:03.000Z ERR Failed to login user error="UNAUTHORIZED: invalid credentials" email=user@example.com

— coloured with ANSI escapes unless told not to, and in development mode with the level spelt out, the caller,
a `| ` before the message and `key:value` fields. Its JSON writer prints the same event as
`{"level":"error","error":"…","email":"…","time":"…","message":"Failed to login user"}`. Around them: Go's own
`panic: …` / `goroutine N [running]:` dumps, gin's `[Recovery] … panic recovered:` and, where gin's access
logger is on, `[GIN] … | 500 | …` lines. `parse` turns any of these into a level, a message and fields;
lines it does not recognise keep their text as the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from bot.core.parse import is_ascii_digits

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LEVELS = {
    "TRC": "trace",
    "DBG": "debug",
    "INF": "info",
    "WRN": "warn",
    "ERR": "error",
    "FTL": "fatal",
    "PNC": "panic",
    "TRACE": "trace",
    "DEBUG": "debug",
    "INFO": "info",
    "WARN": "warn",
    "WARNING": "warn",
    "ERROR": "error",
    "FATAL": "fatal",
    "PANIC": "panic",
}
CONSOLE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?|\d{1,2}:\d\d[AP]M|<nil>)\s+"
    r"(?P<level>" + "|".join(sorted(LEVELS, key=len, reverse=True)) + r"|\?\?\?)\s+"
    r"(?:(?P<caller>\S+\.go:\d+)\s+)?(?:\|\s?)?(?:>\s)?(?P<rest>.*)$"
)
FIELD = re.compile(r'(?P<key>[A-Za-z_][\w.-]*)[=:](?P<value>"(?:[^"\\]|\\.)*"|[^\s"]*)')
TOKEN = re.compile(r'[A-Za-z_][\w.-]*[=:]"(?:[^"\\]|\\.)*"|\S+')
STATUS_FIELDS = ("status", "status_code", "statusCode", "http_status", "code")


@dataclass(frozen=True)
class LogLine:
    text: str  # the line without ANSI colours
    level: str | None = None  # trace … panic; None when the line is not zerolog's
    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    writer: str = "plain"  # "console" | "json" | "plain"

    @property
    def structured(self) -> bool:
        return self.writer != "plain"

    def status(self) -> int | None:
        """The HTTP status a structured line carries in a field, if any."""
        for name in STATUS_FIELDS:
            value = self.fields.get(name, "")
            if is_ascii_digits(value, 3) and len(value) == 3:  # "²²²".isdigit() too, and int() takes it
                return int(value)
        return None


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)  # Go's strconv.Quote reads as JSON for everything zerolog writes
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    return value


def split_fields(rest: str) -> tuple[str, dict[str, str]]:
    """'Failed to login user error="X: y" email=a@b' → ('Failed to login user', {'error': 'X: y', 'email': 'a@b'})."""
    tokens = list(TOKEN.finditer(rest))
    first = len(tokens)
    while first > 0 and FIELD.fullmatch(tokens[first - 1].group()):
        first -= 1
    if first == len(tokens):
        return rest.strip(), {}
    message = rest[: tokens[first].start()].strip() if first else ""
    pairs = (FIELD.fullmatch(token.group()) for token in tokens[first:])
    return message, {m["key"]: unquote(m["value"]) for m in pairs if m}


def parse_json(text: str) -> LogLine | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not ({"level", "message", "msg"} & set(doc)):
        return None
    level = LEVELS.get(str(doc.get("level", "")).upper())
    message = as_text(doc.get("message", doc.get("msg", "")))
    fields = {str(k): as_text(v) for k, v in doc.items() if k not in ("level", "message", "msg")}
    return LogLine(text, level, message, fields, "json")


def parse(line: str) -> LogLine:
    text = strip_ansi(line).rstrip("\r\n")
    stripped = text.strip()
    if stripped.startswith("{") and (parsed := parse_json(stripped)):
        return parsed
    match = CONSOLE.match(stripped)
    if match:
        message, fields = split_fields(match["rest"])
        return LogLine(text, LEVELS.get(match["level"]), message, fields, "console")
    return LogLine(text, None, stripped)
