"""Attack evidence in log lines: the API's own (zerolog, console or JSON, as runbooks/loglines.py reads
them) and a reverse proxy's access log (nginx "combined"). Pure functions over lines."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus

from runbooks import loglines as zerolog

MAX_EXAMPLE = 120
EXAMPLES_PER_IP = 2

RATE_LIMITED = "Rate limit exceeded for login attempt"
FAILED_LOGIN = "Failed to login user"
LOCKED_ATTEMPT = "Login attempt for locked account"
# internal/interfaces/http/middleware/input_validation.go: Warn().Interface("data", {client_ip, event, path, value…})
INPUT_EVENT = "Input validation security event"


@dataclass
class ApiLogSummary:
    lines: int = 0
    failed_by_email: Counter[str] = field(default_factory=Counter)
    rate_limited_by_ip: Counter[str] = field(default_factory=Counter)
    rate_limited_emails: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    locked_by_email: Counter[str] = field(default_factory=Counter)
    input_by_ip: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def input_events(self, ip: str) -> int:
        return sum(self.input_by_ip[ip].values()) if ip in self.input_by_ip else 0


def input_event(parsed: zerolog.LogLine) -> dict[str, object] | None:
    """The `data` of an "Input validation security event" line, console writer or JSON; None for other lines."""
    if parsed.message == INPUT_EVENT:
        raw = parsed.fields.get("data", "")
    elif parsed.message.startswith(INPUT_EVENT + " data="):
        raw = parsed.message.removeprefix(INPUT_EVENT + " data=")
    else:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def input_kinds(data: dict[str, object]) -> list[str]:
    """The kinds of attack in the value the API refused, else what its event says it saw."""
    value = str(data.get("value") or data.get("data") or "")
    if kinds := attack_kinds(value) if value else []:
        return kinds
    event = str(data.get("event") or "")
    return ["injection pattern" if "Injection" in event else (event[:60].lower() or "invalid input")]


def scan_api_log(lines: list[str]) -> ApiLogSummary:
    summary = ApiLogSummary(lines=len(lines))
    for line in lines:
        parsed = zerolog.parse(line)
        if not parsed.structured:
            continue
        message, fields = parsed.message, parsed.fields
        email = fields.get("email", "").lower() or "?"
        if message == FAILED_LOGIN:
            summary.failed_by_email[email] += 1
        elif message == RATE_LIMITED:
            ip = fields.get("ip") or "?"
            summary.rate_limited_by_ip[ip] += 1
            summary.rate_limited_emails[ip].add(email)
        elif message == LOCKED_ATTEMPT:
            summary.locked_by_email[email] += 1
        elif (event := input_event(parsed)) is not None:
            ip = str(event.get("client_ip") or "?")
            summary.input_by_ip[ip].update(input_kinds(event))
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
