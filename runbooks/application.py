"""Guide: "Application Issues › 500 Internal Server Errors" — step 1, "Identify Error Pattern".

The guide greps the API container's logs for "500", for "panic|runtime error" with the lines
around them, and for errors in general. `api_error_logs` does the same through the Docker Engine
API on the recent window of the log: how many 5xx responses, panics and stack traces, a few of
them with their context as evidence. `/erpgo logs [container] [minutes]` runs it on demand; alert
triage (runbooks/triage.py) runs it for HighErrorRate and friends, from a little before the alert
fired.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.core.engine import CheckContext
from bot.core.findings import Finding, Status
from bot.core.parse import ascii_int
from bot.core.registry import Runbook, UsageError
from bot.targets.docker import translated

runbook = Runbook("application")

SECTION = "Application Issues › 500 Internal Server Errors"
DEFAULT_MINUTES = 15
MAX_MINUTES = 24 * 60
MAX_LINES = 5000  # the newest lines of the window that are read
CONTEXT_BEFORE, CONTEXT_AFTER = 2, 6  # the guide's grep -B 5 -A 10, kept short for Slack
MAX_EVIDENCE = 15
MANY_5XX = 10  # from this many 5xx lines in the window the finding is critical

CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# an HTTP status 5xx standing alone: "GET /x 500 12ms", "status=503", "\"status\":500"; not "5000",
# "0.500s", "500ms" or "10.0.0.500"
STATUS_5XX = re.compile(r"(?<![\w.-])5\d\d(?![\w.])")
PANIC = re.compile(r"\bpanic[:(]|runtime error|fatal error:", re.IGNORECASE)
TRACE_START = re.compile(r"^\s*(goroutine \d+ \[|Traceback \(most recent call last\))")
ERROR = re.compile(r"\b(error|err|fatal|exception)\b", re.IGNORECASE)
FAILED_LOGIN = re.compile(r"failed login", re.IGNORECASE)


def parse_logs_args(words: list[str]) -> dict:
    container, minutes = None, DEFAULT_MINUTES
    for word in words:
        if word.isnumeric():  # digits of any script ("²", "①", "٩") are refused by ascii_int
            minutes = ascii_int(word, min=1, max=MAX_MINUTES, what="minutes")
        elif container is None and CONTAINER_NAME.fullmatch(word):
            container = word
        else:
            raise UsageError(f"unexpected argument {word[:40]!r}")
    return {"container": container, "minutes": minutes}


runbook.verb(
    "logs",
    "recent 5xx, panics and stack traces in a container's logs (default: the API, 15 min)",
    usage="[container] [minutes]",
    parse=parse_logs_args,
    ack="Reading the logs…",
)


def api_container(containers: list[str]) -> str:
    """The watched container that runs the API (compose may call it `api` or `erpgo-api`)."""
    return next((name for name in containers if "api" in name.lower()), containers[0] if containers else "erpgo-api")


def scan(lines: list[str]) -> dict:
    """Counts and evidence from log lines, oldest first."""
    found = {"5xx": [], "panic": [], "trace": [], "error": [], "failed_login": 0}
    for number, line in enumerate(lines):
        if STATUS_5XX.search(line):
            found["5xx"].append(number)
        if PANIC.search(line):
            found["panic"].append(number)
        if TRACE_START.search(line):
            found["trace"].append(number)
        if ERROR.search(line):
            found["error"].append(number)
        if FAILED_LOGIN.search(line):
            found["failed_login"] += 1
    return found


def evidence(lines: list[str], found: dict) -> list[str]:
    """The newest panics and traces with their context, then the newest 5xx lines; no line twice."""
    picked: list[int] = []
    for number in (found["panic"] + found["trace"])[-3:]:
        picked += range(max(0, number - CONTEXT_BEFORE), min(len(lines), number + CONTEXT_AFTER + 1))
    picked += found["5xx"][-5:]
    if not picked:
        picked = found["error"][-5:]
    seen: set[int] = set()
    ordered = [n for n in sorted(picked) if not (n in seen or seen.add(n))]
    shown = ordered[-MAX_EVIDENCE:]
    return [lines[n][:300] for n in shown]


async def read_logs(ctx: CheckContext, name: str, since: datetime) -> list[str] | None:
    """The container's stdout+stderr lines since `since`; None when there is no such container."""
    from aiodocker.exceptions import DockerError

    docker = ctx.targets.docker.client()
    try:
        container = await docker.containers.get(name)
        pieces = await container.log(stdout=True, stderr=True, since=int(since.timestamp()), tail=MAX_LINES)
    except DockerError as exc:
        if exc.status == 404:
            return None
        raise translated(exc, name) from exc
    return "".join(pieces).splitlines()


@runbook.check("logs", component="Logs", section=SECTION, timeout=10)
async def api_error_logs(ctx: CheckContext) -> Finding:
    name = ctx.params.get("container") or api_container(ctx.targets.containers)
    component = f"Logs {name}"
    if name not in ctx.targets.containers:  # only the deployment's own containers are read
        return Finding.skipped(component, f"not a watched container (watched: {', '.join(ctx.targets.containers)})")
    now = datetime.now(UTC)
    since = ctx.params.get("since")
    if not isinstance(since, datetime):
        since = now - timedelta(minutes=int(ctx.params.get("minutes") or DEFAULT_MINUTES))
    window = (
        f"since {since.astimezone(UTC):%H:%M} UTC"
        if now - since > timedelta(hours=1)
        else f"last {max(1, round((now - since).total_seconds() / 60))} min"
    )
    lines = await read_logs(ctx, name, since)
    if lines is None:
        return Finding.crit(component, "container not found", data={"container": name})
    found = scan(lines)
    n5xx, panics, traces, errors = (len(found[k]) for k in ("5xx", "panic", "trace", "error"))
    data = {
        "container": name,
        "lines": len(lines),
        "5xx": n5xx,
        "panics": panics,
        "stack_traces": traces,
        "error_lines": errors,
        "failed_logins": found["failed_login"],
        "since": since.isoformat(),
    }
    details = [
        f"read {len(lines)} lines ({window}) of {name}"
        + (f", the newest {MAX_LINES}" if len(lines) >= MAX_LINES else "")
    ]
    if found["failed_login"]:
        details.append(f"failed logins: {found['failed_login']} (see the guide's Security Issues)")
    if panics or traces or n5xx or errors:
        parts = [
            f"{n5xx} × 5xx",
            f"{panics} panic{'s' if panics != 1 else ''}",
            f"{traces} stack trace{'s' if traces != 1 else ''}",
            f"{errors} error lines",
        ]
        status = Status.CRIT if panics or traces or n5xx >= MANY_5XX else Status.WARN
        title = f"{window}: " + ", ".join(parts)
        return Finding(status, component, title, details=details, evidence=evidence(lines, found), data=data)
    return Finding.ok(
        component, f"{window}: no 5xx, panics or errors in {len(lines)} lines", details=details, data=data
    )
