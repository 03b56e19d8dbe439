"""Guide: "Application Issues › 500 Internal Server Errors" — step 1, "Identify Error Pattern".

The guide greps the API container's logs for "500", for "panic|runtime error" with the lines
around them, and for errors in general. `api_error_logs` does the same through the Docker Engine
API on the recent window of the log: how many 5xx responses, panics and stack traces, a few of
them with their context as evidence. `/erpgo logs [container] [minutes]` runs it on demand; alert
triage (runbooks/triage.py) runs it for HighErrorRate and friends, from a little before the alert
fired.

The lines are the real ERPGo's (runbooks/loglines.py): zerolog's console and JSON writers, Go panics, gin's
recovery and access lines. Failed logins ("Failed to login user … email=…") are counted per e-mail and
rate-limited login attempts ("Rate limit exceeded for login attempt ip=… email=…") per address.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.parse import ascii_int
from bot.core.redact import redact
from bot.core.registry import Runbook, UsageError
from bot.core.units import plural
from runbooks.loglines import LogLine, parse, strip_ansi
from runbooks.watched import ContainerArgs

MAX_LINE = 300  # characters of a log line shown
runbook = Runbook("application")

SECTION = "Application Issues › 500 Internal Server Errors"
DEFAULT_MINUTES = 15
MAX_MINUTES = 24 * 60
MAX_LINES = 5000  # the newest lines of the window that are read
CONTEXT_BEFORE, CONTEXT_AFTER = 2, 6  # the guide's grep -B 5 -A 10, kept short for Slack
MAX_EVIDENCE = 15  # the digest: what one message shows (bot/slack/render.py MAX_EVIDENCE_LINES)
MAX_SHARED = 2000  # matching lines (with context) in the file shared in the thread
MANY_5XX = 10  # from this many 5xx lines in the window the finding is critical

CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# an HTTP status 5xx standing alone: "GET /x 500 12ms", "status=503", "\"status\":500", gin's "| 500 |"; not
# "5000", "0.500s", "500ms" or "10.0.0.500"
STATUS_5XX = re.compile(r"(?<![\w.-])5\d\d(?![\w.])")
PANIC = re.compile(r"\bpanic[:(]|\[Recovery\].*panic recovered|\bpanic recovered\b", re.IGNORECASE)
# the error a panic reports; a panic of its own unless it is the line below one (gin prints it there)
RUNTIME_ERROR = re.compile(r"runtime error|fatal error:", re.IGNORECASE)
PANIC_MESSAGE = re.compile(r"\bpanic\b", re.IGNORECASE)  # zerolog: "Request panic panic=…", "Panic recovered"
TRACE_START = re.compile(r"^\s*(goroutine \d+ \[|Traceback \(most recent call last\))")
ERROR = re.compile(r"\b(error|err|fatal|exception)\b", re.IGNORECASE)
ERROR_LEVELS = {"error", "fatal", "panic"}
# "Failed to login user" (the real API), "failed login for <email>"; not "Failed to record failed login attempt"
FAILED_LOGIN = re.compile(r"\bfailed to login\b|\bfailed login for\b|^failed login\b", re.IGNORECASE)
RATE_LIMITED_LOGIN = re.compile(r"rate limit exceeded for login|too many login attempts", re.IGNORECASE)
LOCKED_ACCOUNT = re.compile(r"login attempt for locked account", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
SAME_PANIC_LINES = 1  # a panic line right after another is the same panic (gin prints the error below it)
MANY_FAILED_LOGINS = 20  # from this many failed logins in the window the finding is a warning
TOP_COUNTED = 5


@dataclass(frozen=True)
class LogsArgs(ContainerArgs):
    minutes: int = DEFAULT_MINUTES


def parse_logs_args(words: list[str]) -> LogsArgs:
    container, minutes = None, DEFAULT_MINUTES
    for word in words:
        if word.isnumeric():  # digits of any script ("²", "①", "٩") are refused by ascii_int
            minutes = ascii_int(word, min=1, max=MAX_MINUTES, what="minutes")
        elif container is None and CONTAINER_NAME.fullmatch(word):
            container = word
        else:
            raise UsageError(f"unexpected argument {word[:40]!r}")
    return LogsArgs(container, minutes)


runbook.verb(
    "logs",
    "recent 5xx, panics, stack traces and failed logins in a container's logs (default: the API, 15 min)",
    usage="[container] [minutes]",
    parse=parse_logs_args,
    ack="Reading the logs…",
)


def who(line: LogLine, name: str, shape: re.Pattern[str]) -> str:
    """The e-mail or address a login line names: its zerolog field, else the first one in the text."""
    value = line.fields.get(name) or next(iter(shape.findall(line.text)), "")
    return value.lower() if value else "unknown"


def is_5xx(line: LogLine) -> bool:
    status = line.status()
    if status is not None:
        return 500 <= status <= 599
    return bool(STATUS_5XX.search(line.message if line.structured else line.text))


def is_panic(line: LogLine) -> bool:
    """Whether the line starts a panic report."""
    if line.level == "panic" or "panic" in line.fields:
        return True
    if line.structured and PANIC_MESSAGE.search(line.message):
        return True
    return bool(PANIC.search(line.text))


def continues_panic(found: dict, number: int, line: LogLine) -> bool:
    """Gin's recovered error below its "[Recovery] … panic recovered:", Go's indented re-panic lines."""
    if not found["panic"] or number - found["panic"][-1] > SAME_PANIC_LINES:
        return False
    return not is_panic(line) or line.text[:1].isspace()


def is_error(line: LogLine) -> bool:
    if line.structured and line.level is not None:
        return line.level in ERROR_LEVELS
    return bool(ERROR.search(line.text))


def scan(lines: list[str]) -> dict:
    """Counts and evidence from log lines (oldest first, ANSI colours already removed)."""
    found: dict = {
        "5xx": [],
        "panic": [],
        "trace": [],
        "error": [],
        "failed_login": 0,
        "logins": [],
        "failed_by_email": Counter(),
        "rate_limited_by_ip": Counter(),
        "rate_limited_emails": Counter(),
        "locked": Counter(),
    }
    for number, text in enumerate(lines):
        line = parse(text)
        if is_5xx(line):
            found["5xx"].append(number)
        if (is_panic(line) or RUNTIME_ERROR.search(text)) and not continues_panic(found, number, line):
            found["panic"].append(number)
        if TRACE_START.search(text):
            found["trace"].append(number)
        if FAILED_LOGIN.search(line.message):
            found["failed_login"] += 1
            found["failed_by_email"][who(line, "email", EMAIL)] += 1
            found["logins"].append(number)
        elif RATE_LIMITED_LOGIN.search(line.message):
            found["rate_limited_by_ip"][who(line, "ip", IPV4)] += 1
            found["rate_limited_emails"][who(line, "email", EMAIL)] += 1
            found["logins"].append(number)
        elif LOCKED_ACCOUNT.search(line.message):
            found["locked"][who(line, "email", EMAIL)] += 1
            found["logins"].append(number)
        elif is_error(line):  # a failed login is an ERR line of the real API, counted above instead
            found["error"].append(number)
    return found


def counted(counts: Counter, unit: str = "") -> str:
    """'a@b ×9, c@d ×3 and 2 more'."""
    top = [f"{unit}{name} ×{n}" for name, n in counts.most_common(TOP_COUNTED)]
    rest = len(counts) - len(top)
    return ", ".join(top) + (f" and {rest} more" if rest > 0 else "")


def login_details(found: dict) -> list[str]:
    details = []
    if found["failed_login"]:
        details.append(
            f"failed logins: {found['failed_login']} — {counted(found['failed_by_email'])} "
            "(the API logs no client address for them: `/erpgo security` reads audit_logs; "
            "guide: Security Issues)"
        )
    limited = sum(found["rate_limited_by_ip"].values())
    if limited:
        details.append(
            f"rate-limited login attempts: {limited} — {counted(found['rate_limited_by_ip'], 'ip ')}; "
            f"accounts tried: {counted(found['rate_limited_emails'])}"
        )
    if found["locked"]:
        refused = sum(found["locked"].values())
        details.append(f"logins refused for locked accounts: {refused} — {counted(found['locked'])}")
    return details


def clipped(lines: list[str]) -> list[str]:
    """The lines redacted as one block — a private key's body is told by the lines around it, which one
    line alone lacks — then each cut to 300 characters (redact first, then cut)."""
    return [line[:MAX_LINE] for line in redact("\n".join(lines)).split("\n")] if lines else []


def digest(lines: list[str], found: dict) -> list[int]:
    """The newest panics and traces with their context, then the newest 5xx lines; no line twice."""
    picked: list[int] = []
    for number in (found["panic"] + found["trace"])[-3:]:
        picked += range(max(0, number - CONTEXT_BEFORE), min(len(lines), number + CONTEXT_AFTER + 1))
    picked += found["5xx"][-5:]
    if not picked:
        picked = found["error"][-5:] or found["logins"][-5:]
    return sorted(set(picked))[-MAX_EVIDENCE:]


def every_match(lines: list[str], found: dict) -> list[int]:
    """Every matching line with its context, as the guide's grep -B/-A would print them."""
    matched = found["panic"] + found["trace"] + found["5xx"] + found["error"] + found["logins"]
    picked = {n for m in matched for n in range(max(0, m - CONTEXT_BEFORE), min(len(lines), m + CONTEXT_AFTER + 1))}
    return sorted(picked)[-MAX_SHARED:]


def evidence(lines: list[str], found: dict) -> list[str]:
    """The digest the message shows; when the matching lines are more, all of them after it (with context), which
    the report shares as a file in its thread."""
    shown = digest(lines, found)
    everything = every_match(lines, found)
    digested = clipped([lines[n] for n in shown])
    if not set(everything) - set(shown):
        return digested
    listing = clipped([lines[n] for n in everything])
    return [*digested, f"--- every matching line with context ({len(listing)}) ---", *listing]


async def read_logs(ctx: CheckContext, name: str, since: datetime) -> list[str] | None:
    """The container's stdout+stderr lines since `since`; None when there is no such container."""
    lines = await ctx.targets.docker.log_lines(name, since=since, tail=MAX_LINES)
    return None if lines is None else [strip_ansi(line) for line in lines]


def window_of(ctx: CheckContext, minutes: int) -> tuple[datetime, str]:
    """Since when the logs are read (the alert's start, else the minutes asked), and that in words."""
    now = datetime.now(UTC)
    since = ctx.alert.since if ctx.alert and ctx.alert.since else now - timedelta(minutes=minutes)
    if now - since > timedelta(hours=1):
        return since, f"since {since.astimezone(UTC):%H:%M} UTC"
    return since, f"last {max(1, round((now - since).total_seconds() / 60))} min"


@runbook.check("logs", component="Logs", section=SECTION, timeout=10)
async def api_error_logs(ctx: CheckContext) -> Finding:
    asked = ctx.arg(LogsArgs)
    name = asked.container or await ctx.targets.container_of("api")
    component = f"Logs {name}"
    if asked.container:  # only the deployment's own containers are read
        try:
            await ctx.targets.ensure_watched(name)
        except UsageError as exc:
            return Finding.skipped(component, str(exc))
    since, window = window_of(ctx, asked.minutes)
    lines = await read_logs(ctx, name, since)
    if lines is None:
        return Finding.crit(component, "container not found", data={"container": name})
    found = scan(lines)
    n5xx, panics, traces, errors = (len(found[k]) for k in ("5xx", "panic", "trace", "error"))
    limited = sum(found["rate_limited_by_ip"].values())
    data = {
        "container": name,
        "lines": len(lines),
        "5xx": n5xx,
        "panics": panics,
        "stack_traces": traces,
        "error_lines": errors,
        "failed_logins": found["failed_login"],
        "since": since.isoformat(),
        "failed_logins_by_email": dict(found["failed_by_email"].most_common()),
        "rate_limited_logins": limited,
        "rate_limited_by_ip": dict(found["rate_limited_by_ip"].most_common()),
        "locked_accounts": dict(found["locked"].most_common()),
    }
    details = [
        f"read {plural(len(lines), 'line')} ({window}) of {name}"
        + (f", the newest {MAX_LINES}" if len(lines) >= MAX_LINES else "")
    ]
    details += login_details(found)
    logins = []
    if found["failed_login"]:
        logins.append(f"{found['failed_login']} failed login{'s' if found['failed_login'] != 1 else ''}")
    if limited:
        logins.append(f"{limited} rate-limited")
    if panics or traces or n5xx or errors:
        parts = [
            f"{n5xx} × 5xx",
            f"{panics} panic{'s' if panics != 1 else ''}",
            f"{traces} stack trace{'s' if traces != 1 else ''}",
            f"{errors} error lines",
        ] + logins
        status = Status.CRIT if panics or traces or n5xx >= MANY_5XX else Status.WARN
        title = f"{window}: " + ", ".join(parts)
        return Finding(status, component, title, details=details, evidence=evidence(lines, found), data=data)
    title = f"{window}: no 5xx, panics or errors in {plural(len(lines), 'line')}" + (
        f"; {', '.join(logins)}" if logins else ""
    )
    if found["failed_login"] >= MANY_FAILED_LOGINS or limited:
        return Finding.warn(component, title, details=details, evidence=evidence(lines, found), data=data)
    return Finding.ok(component, title, details=details, data=data)
