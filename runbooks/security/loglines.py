"""Attack evidence in log lines: the API's own (zerolog, console or JSON) and a reverse proxy's access log
(nginx "combined"). Pure functions over lines; reading them is the caller's business."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus

MAX_EXAMPLE = 120
EXAMPLES_PER_IP = 2

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FIELD = re.compile(r'(?<![\w"])([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')

RATE_LIMITED = "Rate limit exceeded for login attempt"
FAILED_LOGIN = "Failed to login user"
LOCKED_ATTEMPT = "Login attempt for locked account"


@dataclass
class ApiLogSummary:
    lines: int = 0
    failed_by_email: Counter[str] = field(default_factory=Counter)
    rate_limited_by_ip: Counter[str] = field(default_factory=Counter)
    rate_limited_emails: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    locked_by_email: Counter[str] = field(default_factory=Counter)


def zerolog_event(line: str) -> tuple[str, dict[str, str]] | None:
    """(message, fields) of a zerolog line, console writer (`… WRN msg ip=… email=…`) or JSON."""
    line = _ANSI.sub("", line).strip()
    if line.startswith("{"):
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        message = str(event.get("message") or event.get("msg") or "")
        return message, {str(k): str(v) for k, v in event.items() if isinstance(v, (str, int, float))}
    for message in (RATE_LIMITED, FAILED_LOGIN, LOCKED_ATTEMPT):
        at = line.find(message)
        if at >= 0:
            fields = {key: _unquoted(value) for key, value in _FIELD.findall(line[at + len(message) :])}
            return message, fields
    return None


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
            return decoded if isinstance(decoded, str) else value[1:-1]
        except ValueError:
            return value[1:-1]
    return value


def scan_api_log(lines: list[str]) -> ApiLogSummary:
    summary = ApiLogSummary(lines=len(lines))
    for line in lines:
        event = zerolog_event(line)
        if event is None:
            continue
        message, fields = event
        email = fields.get("email", "").lower() or "?"
        if message == FAILED_LOGIN:
            summary.failed_by_email[email] += 1
        elif message == RATE_LIMITED:
            ip = fields.get("ip") or "?"
            summary.rate_limited_by_ip[ip] += 1
            summary.rate_limited_emails[ip].add(email)
        elif message == LOCKED_ATTEMPT:
            summary.locked_by_email[email] += 1
    return summary


# --- access log ---------------------------------------------------------------------------------------

_COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]*)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\S+)'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)
_NGINX_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")

SQLI = "SQL injection"
XSS = "XSS"
TRAVERSAL = "path traversal"
PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    SQLI: (
        re.compile(r"'\s*or\s*'?\d+'?\s*=\s*'?\d+", re.IGNORECASE),
        re.compile(r"union(?:\s|/\*.*?\*/)+(?:all(?:\s|/\*.*?\*/)+)?select", re.IGNORECASE),
        re.compile(r";\s*--"),
    ),
    XSS: (re.compile(r"<\s*script", re.IGNORECASE), re.compile(r"javascript\s*:", re.IGNORECASE)),
    TRAVERSAL: (
        re.compile(r"\.\.[/\\]"),
        re.compile(r"%2e%2e", re.IGNORECASE),
        re.compile(r"/etc/passwd", re.IGNORECASE),
    ),
}
AUTH_STATUSES = (401, 403, 429)


@dataclass
class AccessRequest:
    ip: str
    request: str
    status: int
    agent: str


@dataclass
class AccessLogSummary:
    lines: int = 0
    parsed: int = 0
    requests_by_ip: Counter[str] = field(default_factory=Counter)
    auth_by_ip: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    suspicious_by_ip: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def auth_failures(self, ip: str) -> int:
        return sum(self.auth_by_ip[ip].values()) if ip in self.auth_by_ip else 0

    def suspicious(self, ip: str) -> int:
        return sum(self.suspicious_by_ip[ip].values()) if ip in self.suspicious_by_ip else 0


def parse_combined(line: str) -> AccessRequest | None:
    match = _COMBINED.match(line.strip())
    if match is None:
        return None
    return AccessRequest(match["ip"], match["request"], int(match["status"]), match["agent"] or "")


def decoded_forms(request: str) -> list[str]:
    """The request as logged, with nginx's \\xHH escapes undone, and URL-decoded (twice, for double encoding)."""
    raw = _NGINX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), request)
    once = unquote_plus(raw)
    return [raw, once, unquote(once)]


def attack_kinds(request: str) -> list[str]:
    forms = decoded_forms(request)
    return [kind for kind, patterns in PATTERNS.items() if any(p.search(form) for p in patterns for form in forms)]


def scan_access_log(lines: list[str]) -> AccessLogSummary:
    summary = AccessLogSummary(lines=len(lines))
    for line in lines:
        entry = parse_combined(line)
        if entry is None:
            continue
        summary.parsed += 1
        summary.requests_by_ip[entry.ip] += 1
        if entry.status in AUTH_STATUSES:
            summary.auth_by_ip[entry.ip][entry.status] += 1
        kinds = attack_kinds(entry.request)
        for kind in kinds:
            summary.suspicious_by_ip[entry.ip][kind] += 1
        if kinds and len(summary.examples[entry.ip]) < EXAMPLES_PER_IP:
            summary.examples[entry.ip].append(example(entry.request))
    return summary


def example(text: str) -> str:
    """A logged request as a code span: never a link, a mention or broken formatting once escaped for Slack."""
    text = text.replace("`", "'").replace("\n", " ")
    text = text if len(text) <= MAX_EXAMPLE else text[: MAX_EXAMPLE - 1] + "…"
    return f"`{text}`"
