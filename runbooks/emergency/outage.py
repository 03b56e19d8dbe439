"""Guide: "Emergency Procedures › Complete System Outage › System Recovery › Assess Situation" — `outage`.

The guide's `docker-compose ps`, `free -h && df -h`, `docker-compose logs --tail=100` and
`systemctl status docker`, all at once: every container of the deployment (state, health, restarts,
its last error lines), the Docker engine itself (does it answer, its version, its events of the last
minutes), `/health`, PostgreSQL, Redis, disk and memory. Each probe runs under its own timeout, all
of them together, so the report takes about as long as the slowest. On top, a verdict: what failed
first and what depends on it (the database down → the API unhealthy → the workers restarting),
from the containers' roles and the times the engine recorded (FinishedAt, the first failing health
check, die/oom events) — and, when containers are down, the Emergency Restart as a proposal.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.context import CheckContext
from bot.core.engine import run_checks
from bot.core.findings import Finding, Status, worst
from bot.core.registry import FIRST, Check, Runbook
from bot.core.units import human_bytes, human_duration, plural
from bot.targets.docker_models import parse_time
from runbooks import application, disk, quick
from runbooks.containers import startup
from runbooks.emergency.deployment import DEPENDS_ON, ROLE_TITLES, TIERS, Member, deployment
from runbooks.emergency.restart import restart_all_proposal
from runbooks.loglines import parse, strip_ansi
from runbooks.resources import memory

runbook = Runbook("outage", precedence=FIRST)  # several containers down is an outage before it is a start problem

ASSESS = "Emergency Procedures › Complete System Outage › System Recovery › Assess Situation"
RESTART = "Emergency Procedures › Complete System Outage › System Recovery › Emergency Restart"
EVENT_MINUTES = 10
LOG_TAIL = 200  # the guide's `logs --tail=100`, per container
ERROR_LINES = 3
NOTABLE_EVENTS = ("die", "oom", "kill", "stop", "restart", "health_status: unhealthy", "start")
FAILURE_EVENTS = ("die", "oom", "kill", "health_status: unhealthy")
PROBE_TIMEOUT = 12.0
_FAR = datetime.max.replace(tzinfo=UTC)

runbook.verb(
    "outage",
    "the whole deployment at once when things are down: every container, the Docker engine and its events, "
    "/health, PostgreSQL, Redis, disk, memory — and what failed first",
    ack="Assessing the whole deployment…",
)


def clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S UTC") if moment else "an unknown time"


# --- every container ---------------------------------------------------------------------------


async def last_error_lines(ctx: CheckContext, name: str) -> list[str]:
    """The last error, panic and 5xx lines of the container's newest LOG_TAIL lines."""
    try:
        lines = [strip_ansi(line) for line in await ctx.targets.docker.log_lines(name, tail=LOG_TAIL) or []]
    except (ConnectionError, TimeoutError):  # the engine's own state says the rest
        return []
    picked = [
        line
        for line in lines
        if application.is_error(parse(line)) or application.is_panic(parse(line)) or application.is_5xx(parse(line))
    ]
    return [line[:300] for line in picked[-ERROR_LINES:]]


def container_status(member: Member) -> Status:
    if not member.down:
        return Status.OK
    return Status.WARN if member.role == "monitoring" else Status.CRIT


def container_title(member: Member) -> str:
    info = member.info
    if info is None:
        return "container not found"
    state = info.state
    if member.finished_ok:
        return f"{member.role}: finished (exit code 0) at {clock(state.finished_at)}, as a one-shot job does"
    if member.down:
        return f"{member.role}: {member.problem()} since {clock(member.failed_at())}"
    health = f" ({state.health})" if state.health else ""
    up = human_duration((datetime.now(UTC) - state.started_at).total_seconds()) if state.started_at else "?"
    return f"{member.role}: running{health}, up {up}, {state.restart_count} restarts"


async def container_finding(ctx: CheckContext, member: Member) -> Finding:
    errors = await last_error_lines(ctx, member.name) if member.raw is not None else []
    failed_at = member.failed_at()
    data = {
        "name": member.name,
        "role": member.role,
        "down": member.down,
        "problem": member.problem(),
        "failed_at": failed_at.isoformat() if failed_at else None,
        "state": member.info.state.status if member.info else "missing",
        "health": member.info.state.health if member.info else None,
        "restarts": member.info.state.restart_count if member.info else None,
    }
    details = [f"last error lines (of the newest {LOG_TAIL}):"] if errors else []
    return Finding(
        container_status(member),
        f"Docker {member.name}",
        container_title(member),
        details=details,
        evidence=errors,
        data=data,
    )


async def outage_containers(ctx: CheckContext) -> list[Finding]:
    members = await deployment(ctx)
    return list(await asyncio.gather(*(container_finding(ctx, m) for m in members)))


# --- the Docker engine (`systemctl status docker`) ---------------------------------------------


def event_line(event: dict[str, Any]) -> dict[str, Any]:
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    at = datetime.fromtimestamp(int(event.get("timeNano") or 0) / 1e9, UTC)
    action = event.get("Action") or event.get("status") or "?"
    return {
        "at": at.isoformat(),
        "name": attributes.get("name", "?"),
        "action": action,
        "exit": attributes.get("exitCode"),
    }


def said(event: dict[str, Any]) -> str:
    """A container that died with exit code 0 completed (the one-shot migrator does, every deployment):
    not a failure to colour the engine for — a container stopped that way is judged by its own finding."""
    return "completed" if event["action"] == "die" and str(event["exit"]) == "0" else event["action"]


async def outage_engine(ctx: CheckContext) -> Finding:
    docker = ctx.targets.docker
    now = datetime.now(UTC)
    ping, version, host, raw_events = await asyncio.gather(
        docker.ping(),
        docker.version(),
        docker.host_info(),
        docker.events(now - timedelta(minutes=EVENT_MINUTES), now, {"type": "container"}),
    )
    events = [event_line(e) for e in raw_events if (e.get("Action") or e.get("status")) in NOTABLE_EVENTS]
    counts = Counter(said(e) for e in events)
    summary = ", ".join(f"{n} {action}" for action, n in counts.most_common()) or "none"
    title = (
        f"answering{'' if ping else ' (ping odd)'}, version {version.get('Version', '?')}, "
        f"{plural(host.containers_running, 'container')} running, {host.containers_stopped} stopped; "
        f"last {EVENT_MINUTES} min: {summary}"
    )
    status = Status.WARN if counts["die"] or counts["oom"] else Status.OK
    evidence = [
        f"{datetime.fromisoformat(e['at']):%H:%M:%S} {said(e)} {e['name']}"
        + (f" (exit code {e['exit']})" if e["exit"] is not None else "")
        for e in events[-12:]
    ]
    details = [
        f"{host.operating_system}, kernel {host.kernel_version}, {host.ncpu} CPUs, {human_bytes(host.mem_total)}"
    ]
    details += [f"engine warning: {w}" for w in host.warnings[:3]]
    data = {"reachable": True, "version": version.get("Version"), "events": events, "mem_total": host.mem_total}
    return Finding(status, "Docker engine", title, details=details, evidence=evidence, data=data)


PROBES = [
    Check("outage_containers", outage_containers, "Containers", ASSESS, PROBE_TIMEOUT),
    Check("outage_engine", outage_engine, "Docker engine", ASSESS, PROBE_TIMEOUT),
    Check("api_health", quick.api_health, "ERPGo API", quick.SECTION, None),
    Check("postgres_health", quick.postgres_health, "PostgreSQL", ASSESS, None),
    Check("redis_health", quick.redis_health, "Redis", ASSESS, None),
    Check("filesystem_usage", disk.filesystem_usage, "Filesystem", disk.USAGE, None),
    Check("host_memory", memory.host_memory, "Host memory", memory.MEMORY_ISSUES, 10),
]


# --- the verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    role: str
    what: str
    at: datetime | None

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.at or _FAR, TIERS.get(self.role, 2))


SERVICE_ROLES = {"PostgreSQL": "database", "Redis": "cache", "ERPGo API": "api"}


def first_failure_events(findings: list[Finding]) -> dict[str, datetime]:
    """The first die / oom / kill / unhealthy event of each container in the engine's recent events."""
    first: dict[str, datetime] = {}
    for finding in findings:
        for event in finding.data.get("events") or []:
            if event["action"] in FAILURE_EVENTS:
                at = datetime.fromisoformat(event["at"])
                first[event["name"]] = min(first.get(event["name"], at), at)
    return first


def failures_of(findings: list[Finding]) -> list[Failure]:
    events = first_failure_events(findings)
    found = []
    for finding in findings:
        data = finding.data
        if "role" in data and data.get("down") and data["role"] != "monitoring":
            at = parse_time(data.get("failed_at")) if data.get("failed_at") else None
            if data["name"] in events:
                at = min(at or events[data["name"]], events[data["name"]])
            found.append(Failure(data["role"], f"{data['name']} {data['problem']}", at))
        elif finding.component in SERVICE_ROLES and finding.status in (Status.CRIT, Status.ERROR):
            found.append(Failure(SERVICE_ROLES[finding.component], f"{finding.component}: {finding.title}", None))
    return sorted(found, key=lambda f: f.order)


def engine_down(findings: list[Finding]) -> Finding | None:
    return next(
        (
            f
            for f in findings
            if f.component in ("Docker engine", "Containers") and f.status is Status.CRIT and "unreachable" in f.title
        ),
        None,
    )


def chain(failures: list[Failure]) -> tuple[list[str], list[str]]:
    """(roles that failed on their own, in time order; the rest, which depend on a failed one)."""
    roles = list(dict.fromkeys(f.role for f in failures))
    roots = [r for r in roles if not set(DEPENDS_ON.get(r, ())) & set(roles)]
    return roots, [r for r in roles if r not in roots]


def verdict(findings: list[Finding], members: list[Member]) -> Finding:
    status = worst(f.status for f in findings)
    down_engine = engine_down(findings)
    if down_engine is not None:
        return Finding.crit(
            "Verdict",
            "the Docker engine does not answer: every container's state is unknown — start there",
            details=[
                down_engine.title,
                "on the host: `systemctl status docker`, `journalctl -u docker --since -15min`, then "
                "`systemctl restart docker`; the containers come back with their restart policies",
            ],
            section=RESTART,
        )
    failures = failures_of(findings)
    if not failures:
        title = "no outage: no container is down, and /health, PostgreSQL and Redis answer"
        trouble = [f for f in sorted(findings, key=lambda f: -f.status.rank) if f.status.rank >= Status.WARN.rank]
        if trouble:
            title += f" — but {trouble[0].component}: {trouble[0].title}"
        return Finding(status, "Verdict", title)
    roots, dependents = chain(failures)
    first = next(f for f in failures if f.role in roots)
    later = [next(f for f in failures if f.role == role) for role in dependents]
    arrows = " → ".join(
        [f"{ROLE_TITLES[first.role]} failed first ({first.what}, at {clock(first.at)})"]
        + [f"{ROLE_TITLES[f.role]}: {f.what}" for f in later]
    )
    details = [f"{clock(f.at)} — {ROLE_TITLES[f.role]}: {f.what}" for f in failures]
    other_roots = [r for r in roots if r != first.role]
    if other_roots:
        details.append("also failed on their own: " + ", ".join(ROLE_TITLES[r] for r in other_roots))
    details.append(f"start with {ROLE_TITLES[first.role]}: what depends on it recovers once it is back")
    proposals = []
    stopped = [m for m in members if m.down and m.role != "monitoring"]
    if stopped and members:
        proposals.append(restart_all_proposal(members, f"{plural(len(stopped), 'container')} down: {arrows}"))
    return Finding(Status.CRIT, "Verdict", arrows, details=details, section=RESTART, proposals=proposals)


@runbook.check(
    "outage", component="Outage", section=ASSESS, timeout=PROBE_TIMEOUT + 8, proposes=("docker.restart_all",)
)
async def system_outage(ctx: CheckContext) -> list[Finding]:
    return await assess(ctx)


async def assess(ctx: CheckContext) -> list[Finding]:
    """Every probe at once, and the verdict on top."""
    findings = await run_checks(PROBES, ctx)
    try:
        members = await deployment(ctx)
    except Exception:  # the engine is down: the verdict says so from the findings
        members = []
    return [verdict(findings, members), *findings]


# --- ServiceDown, ApplicationDown: an outage when several containers are down ----------------------

# one container down: the Application Won't Start checks (runbooks/containers), with their restart proposal
APP_CHECKS = ("container_start", "container_environment", "container_ports", "container_dependencies")
SEVERAL = 2


def app_checks() -> list[Check]:
    return [check for _, check in startup.runbook.checks if check.name in APP_CHECKS]


@runbook.check(component="Service down", section=ASSESS, timeout=PROBE_TIMEOUT + 8, proposes=("docker.restart_all",))
async def outage_or_service_down(ctx: CheckContext) -> list[Finding]:
    """One service down gets the Application Won't Start checks; with several containers down (or the
    engine not answering) it is an outage and gets the whole assessment with its verdict."""
    try:
        down = [m for m in await deployment(ctx) if m.down and m.role != "monitoring"]
    except Exception:
        down = [Member("engine", None)] * SEVERAL
    if len(down) >= SEVERAL:
        return await assess(ctx)
    return await run_checks(app_checks(), ctx)


runbook.triage_for("ServiceDown", "ApplicationDown", checks=("outage_or_service_down",))
