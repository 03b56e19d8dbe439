"""Guide: "Application Issues › Application Won't Start" — `/erpgo app [container]`.

The guide's five steps, as the Docker engine answers them: the container's state (exit code,
OOMKilled, restart count and whether the restart policy is looping, from the engine's events), the
last error lines before it exited (the log recognition of runbooks/application.py), its
configuration (the settings the API needs — their names only, never a value), its port bindings
(a host port another container publishes too, or that something else holds), and whether its
database and cache answer. A running container that is not well is proposed a `docker.restart`,
a stopped one a `docker.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from bot.context import CheckContext
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, Proposal, Status
from bot.core.redact import shorten
from bot.core.registry import Runbook
from bot.core.units import human_bytes, human_duration
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound, Docker
from bot.targets.docker_models import ContainerInfo, PortBinding, port_conflicts
from runbooks.application import clipped, digest, read_logs, scan
from runbooks.containers.actions import proposal_for, proposed, stop_proposal
from runbooks.containers.common import (
    GO_RUNTIME_ENV,
    OPTIONAL_ENV,
    REQUIRED_ENV,
    chosen_container,
    clock,
    docker_check,
    inspect_or_none,
    is_api,
    parse_container,
    short_id,
)
from runbooks.containers.holders import port_holder
from runbooks.quick import postgres_health, redis_health

runbook = Runbook("containers")

SECTION = "Application Issues › Application Won't Start"
RESTART_WINDOW_MINUTES = 10
LOOP_RESTARTS = 3  # exits within the window, under a restart policy, that make a restart loop
LOG_LOOKBACK = timedelta(minutes=15)
LAST_LINES = 8
ENV_STATES = ("set", "empty", "missing")
MAX_CONTAINERS_COMPARED = 200  # port bindings of at most this many other containers are compared
INSPECT_CONCURRENCY = 8
PORT_PROBE_SECONDS = 0.5
EXIT_CODES = {
    0: "exited cleanly",
    1: "the application failed",
    2: "misuse of a shell builtin or bad arguments",
    125: "the engine could not run it",
    126: "its command cannot be executed",
    127: "its command was not found",
    137: "killed (SIGKILL)",
    139: "segmentation fault",
    143: "stopped (SIGTERM)",
}

runbook.verb(
    "app",
    "why a container won't start or keeps restarting (default: the API): state, exit code, OOM, restart loop, "
    "last errors, settings (names only), ports, its database and cache",
    usage="[container]",
    parse=parse_container,
    ack="Looking at the container…",
)


# --- state, restarts, last errors -----------------------------------------------------------


def exit_text(info: ContainerInfo) -> str:
    state = info.state
    meaning = EXIT_CODES.get(state.exit_code, "")
    if state.oom_killed:
        limit = human_bytes(info.memory_limit) if info.memory_limit else "the host's memory"
        meaning = f"killed by its memory limit (OOMKilled, limit {limit})"
    return f"exit code {state.exit_code}" + (f" — {meaning}" if meaning else "")


async def exits_in_window(docker: Docker, container_id: str) -> int:
    """How often the container died in the last RESTART_WINDOW_MINUTES, from the engine's events (under
    a restart policy each death is a restart, counted at once, not when its delayed start comes)."""
    now = datetime.now(UTC)
    events = await docker.events(
        now - timedelta(minutes=RESTART_WINDOW_MINUTES),
        now,
        {"type": "container", "container": container_id, "event": "die"},
    )
    return len(events)


def assess_state(info: ContainerInfo, exits: int) -> tuple[Status, str, bool]:
    """(status, title, in a restart loop)."""
    state = info.state
    policy = info.restart_policy or "no"
    looping = state.status == "restarting" or (exits >= LOOP_RESTARTS and policy != "no")
    if looping:
        title = (
            f"restart loop: exited {exits}× in the last {RESTART_WINDOW_MINUTES} min, last {exit_text(info)} "
            f"(restart policy {policy})"
        )
        return Status.CRIT, title, True
    if not state.running:
        title = f"{state.status}: {exit_text(info)}" if state.status == "exited" else f"{state.status}, not running"
        if state.error:
            title += f" — its last start failed: {shorten(state.error, 160, '')}"
        return Status.CRIT, title, False
    up = human_duration((datetime.now(UTC) - state.started_at).total_seconds()) if state.started_at else "?"
    if state.health == "unhealthy":
        return (
            Status.CRIT,
            f"running but unhealthy ({state.health_failing_streak} failed health checks in a row)",
            False,
        )
    if exits:
        return Status.WARN, f"running (up {up}), but it exited {exits}× in the last {RESTART_WINDOW_MINUTES} min", False
    return Status.OK, f"running (up {up}), {state.restart_count} restarts by its policy", False


def state_details(info: ContainerInfo, exits: int) -> list[str]:
    state = info.state
    retries = f", at most {info.restart_max_retries} retries" if info.restart_max_retries else ""
    created_ago = human_duration((datetime.now(UTC) - info.created).total_seconds()) if info.created else "?"
    lines = [
        f"state {state.status}, restart policy {info.restart_policy or 'no'}{retries}; restart count "
        f"{state.restart_count}; it exited {exits}× in the last {RESTART_WINDOW_MINUTES} min (the engine's events)",
        f"started {clock(state.started_at)}, finished {clock(state.finished_at)}",
        f"OOMKilled {'yes' if state.oom_killed else 'no'}; memory limit "
        f"{human_bytes(info.memory_limit) if info.memory_limit else 'none'}",
        f"image {info.image} ({short_id(info.image_id)}), container created {clock(info.created)} ({created_ago} ago)",
    ]
    if state.health:
        lines.append(f"health check: {state.health} ({state.health_failing_streak} failing in a row)")
    if state.error:
        lines.append(f"engine error of the last start: {shorten(state.error, 300, '')}")
    return lines


async def last_lines(ctx: CheckContext, info: ContainerInfo) -> tuple[list[str], str]:
    """The last error lines of its output (panics and traces with context, else error lines, else the
    last lines), and what was read."""
    now = datetime.now(UTC)
    since = min(info.state.started_at or now, now - LOG_LOOKBACK)
    lines = await read_logs(ctx, info.name, since) or []
    found = scan(lines)
    picked = clipped([lines[n] for n in digest(lines, found)]) or clipped(lines[-LAST_LINES:])
    errors = len(found["error"]) + len(found["panic"])
    return picked[-LAST_LINES * 2 :], f"{len(lines)} log lines since {clock(since)}: {errors} error or panic lines"


@docker_check(
    runbook, "app", component="Container", section=SECTION, timeout=15, proposes=("docker.restart", "docker.start")
)
async def container_start(ctx: CheckContext) -> Finding:
    """Steps 4 and 5: the state, the restart loop, the last errors; a restart or start to approve."""
    name = await chosen_container(ctx)
    component = f"Container {name}"
    docker = ctx.targets.docker
    try:
        info = await docker.inspect(name)
    except ContainerNotFound:
        return Finding.crit(
            component,
            "container not found",
            details=[
                f"watched containers: {', '.join(ctx.targets.containers)}",
                "it was never created or has been removed: `docker-compose up -d` creates it",
            ],
            data={"container": name, "state": "missing"},
        )
    exits = await exits_in_window(docker, info.id)
    status, title, looping = assess_state(info, exits)
    details = state_details(info, exits)
    lines: list[str] = []
    if status is not Status.OK:
        lines, read = await last_lines(ctx, info)
        details.append(read)
    proposals = []
    if status is Status.CRIT or ctx.alert is not None:  # running again after an exit: let it be
        why = title if status is Status.CRIT else "an alert says it is down"
        proposals = proposed(proposal_for(info, why, loop=looping))
    data = {
        "container": name,
        "id": info.id,
        "state": info.state.status,
        "exit_code": info.state.exit_code,
        "oom_killed": info.state.oom_killed,
        "restart_count": info.state.restart_count,
        "exits_in_window": exits,
        "restart_loop": looping,
        "image": info.image,
    }
    return Finding(status, component, title, details=details, evidence=lines, proposals=proposals, data=data)


# --- configuration ----------------------------------------------------------------------------


@docker_check(runbook, "app", component="Config", section=SECTION)
async def container_environment(ctx: CheckContext) -> Finding | list[Finding]:
    """Step 1: the settings the API reads — present, empty or missing; their values are never read."""
    name = await chosen_container(ctx)
    component = f"Config {name}"
    info = await inspect_or_none(ctx.targets.docker, name)
    if info is None:
        return []  # the state check says it is not there
    if not is_api(info):
        return Finding.skipped(
            component,
            f"none of the API's settings ({', '.join(REQUIRED_ENV)}) in its environment: not the API, not judged",
            data={"container": name, "variables": len(info.env)},
        )
    missing = [var for var in REQUIRED_ENV if var not in info.env]
    empty = [var for var in REQUIRED_ENV if info.env.get(var) == "empty"]
    problems = [f"{var} missing" for var in missing] + [f"{var} empty" for var in empty]
    # grouped by state, never "NAME: state": a secret-looking name before a colon reads as a value to mask
    by_state = {state: [v for v in REQUIRED_ENV if info.env.get(v, "missing") == state] for state in ENV_STATES}
    details = [f"{state} — {', '.join(names)}" for state, names in by_state.items() if names]
    optional = [var for var in OPTIONAL_ENV if var in info.env]
    details.append(f"optional settings present: {', '.join(optional) if optional else 'none'}")
    runtime = [f"{var} {'set' if info.env.get(var) == 'set' else 'not set'}" for var in GO_RUNTIME_ENV]
    details.append("Go runtime: " + ", ".join(runtime))
    details.append(f"{len(info.env)} variables in all; only their names are read, never a value")
    if problems and not info.state.running:
        title = ", ".join(problems) + " — the API cannot start without it"
        status = Status.CRIT
    elif problems:
        title = ", ".join(problems) + " — running all the same: is it set some other way?"
        status = Status.WARN
    else:
        title = f"{', '.join(REQUIRED_ENV)} set"
        status = Status.OK
    return Finding(
        status, component, title, details=details, data={"container": name, "missing": missing, "empty": empty}
    )


# --- ports --------------------------------------------------------------------------------------


def binding_text(binding: PortBinding) -> str:
    host = f"{binding.host_ip or '0.0.0.0'}:{binding.host_port or '(random)'}"
    return f"{binding.container_port}/{binding.protocol} → {host}"


async def other_containers(docker: Docker, exclude: str) -> list[ContainerInfo]:
    names = (await docker.container_names())[:MAX_CONTAINERS_COMPARED]
    slots = asyncio.Semaphore(INSPECT_CONCURRENCY)

    async def inspect(name: str) -> ContainerInfo | None:
        async with slots:
            return await inspect_or_none(docker, name)

    found = await asyncio.gather(*(inspect(name) for name in names))
    return [info for info in found if info is not None and info.id != exclude]


async def accepts_connections(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(PORT_PROBE_SECONDS):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def engine_is_local(ctx: CheckContext) -> bool:
    host = ctx.targets.docker.host
    return host is None or host.startswith("unix://")


async def held_elsewhere(ctx: CheckContext, info: ContainerInfo, publishers: set[str]) -> list[str]:
    """Host ports of a stopped container that something answers on: another process holds them."""
    if info.state.running or not engine_is_local(ctx):
        return []
    held = []
    for binding in info.ports:
        if binding.protocol != "tcp" or not binding.host_port.isdigit():
            continue
        host = binding.host_ip if binding.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if await accepts_connections(host, int(binding.host_port)):
            process = None if publishers else await asyncio.to_thread(port_holder, int(binding.host_port))
            by = f"container {', '.join(sorted(publishers))}" if publishers else process or "a process outside Docker"
            held.append(
                f"host port {binding.host_port} accepts connections while {info.name} is stopped: held by {by}"
                + ("" if publishers else f" (`lsof -i :{binding.host_port}` on the Docker host)")
            )
    return held


@docker_check(runbook, "app", component="Ports", section=SECTION, timeout=15, proposes=("docker.stop",))
async def container_ports(ctx: CheckContext) -> Finding | list[Finding]:
    """Step 2: its port bindings; a host port published by another container too, or held by something else."""
    name = await chosen_container(ctx)
    component = f"Ports {name}"
    docker = ctx.targets.docker
    info = await inspect_or_none(docker, name)
    if info is None:
        return []
    if not info.ports:
        return Finding.ok(component, "publishes no host ports", data={"container": name, "ports": []})
    others = await other_containers(docker, info.id)
    clashes: list[str] = []
    publishers: set[str] = set()
    holders: list[ContainerInfo] = []
    for other in others:
        for line in port_conflicts([info, other]):
            clashes.append(f"{line} ({other.name} is {other.state.status})")
            if other.state.running and other.name not in publishers:
                publishers.add(other.name)
                holders.append(other)
    running_clash = bool(holders)
    held = await held_elsewhere(ctx, info, publishers)
    start_error = "port is already allocated" in info.state.error or "address already in use" in info.state.error
    details = [binding_text(binding) for binding in info.ports]
    if start_error:
        details.append(f"its last start failed: {shorten(info.state.error, 300, '')}")
    details += clashes + held
    if clashes or held or start_error:
        status = Status.CRIT if (running_clash or held or start_error) and not info.state.running else Status.WARN
        title = (clashes + held + [f"its last start failed: {shorten(info.state.error, 160, '')}"])[0]
    else:
        status = Status.OK
        title = f"{', '.join(binding_text(b) for b in info.ports)}; no other container publishes these host ports"
    data = {"container": name, "ports": [binding_text(b) for b in info.ports], "conflicts": clashes, "held": held}
    proposals = [] if info.state.running else [holder_stop(holder, info) for holder in holders]
    return Finding(status, component, title, details=details, data=data, proposals=proposals)


def holder_stop(holder: ContainerInfo, blocked: ContainerInfo) -> Proposal:
    return stop_proposal(
        holder, f"{holder.name} holds a host port {blocked.name} publishes: stopped, it frees it for `/erpgo start`"
    )


# --- dependencies -------------------------------------------------------------------------------


def dependency_finding(component: str, result: Finding | list[Finding] | BaseException, service: str) -> Finding:
    name = f"{component} (for {service})"
    if isinstance(result, list):
        result = result[0] if result else Finding.error(name, "no answer")
    if isinstance(result, NotConfigured):
        return Finding.skipped(name, str(result))
    if isinstance(result, BaseException):
        if is_unreachable(result):
            return Finding.crit(
                name,
                "unreachable — " + describe_error(result),
                details=[f"{service} cannot start or serve without it: see the guide's Database Connection Issues"],
            )
        return Finding.error(name, describe_error(result))
    return Finding(result.status, name, "reachable — " + result.title, details=result.details, data=result.data)


@runbook.check("app", component="Dependencies", section=SECTION)
async def container_dependencies(ctx: CheckContext) -> list[Finding]:
    """Step 3: its database and cache answer (as the bot reaches them: ERPGO_DATABASE_URL, ERPGO_REDIS_URL)."""
    name = await chosen_container(ctx, checked=False)
    database, cache = await asyncio.gather(postgres_health(ctx), redis_health(ctx), return_exceptions=True)
    return [dependency_finding("PostgreSQL", database, name), dependency_finding("Redis", cache, name)]


runbook.triage_for(
    "DockerContainerDown",
    "ServiceDown",
    "ApplicationDown",
    checks=("container_start", "container_environment", "container_ports", "container_dependencies"),
)
