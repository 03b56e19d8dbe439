"""Restart, start or stop a container, only through the approval engine — the guide's most common fix
(Memory Leaks step 4, Database Connection Issues step 4, System Recovery step 2, Application Won't
Start step 5) and Data Recovery step 1's "stop the application" while the data is checked.

A proposal names the container by name *and* id and carries the state it was seen in. Before acting
the remediation inspects it again: the same id (not another container created under the old name
since), and still in a state where the action is right — a restart is refused for a container that
was started again in the meantime (someone restarted it already) or that is stopped now; a start
for one that is running again; a stop for one that stopped or was started again meanwhile. The action is
addressed by id, never by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Proposal
from bot.core.registry import Refused, Runbook, Settle, Verdict
from bot.targets.docker import ContainerNotFound, Docker
from bot.targets.docker_models import ContainerInfo, parse_time
from runbooks.containers.common import clock, short_id

runbook = Runbook("containers.actions")

GRACE_SECONDS = 10  # docker's own default for `docker restart`
# PostgreSQL answers SIGTERM with a fast shutdown and a checkpoint: SIGKILL after 10 s could cut that
# short and cost a crash recovery at the next start
DATABASE_GRACE_SECONDS = 60
MAX_GRACE_SECONDS = 300
RESTARTABLE = ("running", "restarting")
STARTABLE = ("exited", "created")
# a container must stay up this long before its start counts (a command that exits at once is running
# for a moment after POST /start); a restart is looked at again until healthy, for up to a minute
START_SETTLE = Settle(at_least=3.0, at_most=3.0)
RESTART_SETTLE = Settle(at_least=3.0, at_most=60.0)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def restart_proposal(
    info: ContainerInfo, reason: str, *, loop: bool = False, grace_seconds: int = GRACE_SECONDS
) -> Proposal:
    """Restart `info`'s container by id with a grace period; `loop` when the restart policy is already
    restarting it (its start time then changes by itself and is not part of the re-check)."""
    seen = info.state.status + ("" if loop else f", started {clock(info.state.started_at)}")
    return restart.propose(
        name=info.name,
        container_id=info.id,
        status=info.state.status,
        started_at=_iso(info.state.started_at),
        loop=loop,
        grace_seconds=grace_seconds,
        target=info.id,
        summary=f"Restart container {info.name} ({short_id(info.id)})",
        why=reason,
        preview=f"docker restart --time {grace_seconds} {short_id(info.id)}    # {info.name}\n"
        f"= POST /containers/{short_id(info.id)}/restart?t={grace_seconds}: SIGTERM, up to "
        f"{grace_seconds} s to exit, then SIGKILL, then start\n"
        f"re-checked first: the same container id, still {seen}",
    )


def is_database(info: ContainerInfo) -> bool:
    return any("postgres" in text for text in (info.service or "", info.image, info.name))


def grace_for(info: ContainerInfo) -> int:
    return DATABASE_GRACE_SECONDS if is_database(info) else GRACE_SECONDS


def stop_proposal(info: ContainerInfo, reason: str) -> Proposal:
    """Stop `info`'s container by id with a grace period; re-checked: the same id, still running since the same
    start (not restarted by someone meanwhile)."""
    grace = grace_for(info)
    return stop.propose(
        name=info.name,
        container_id=info.id,
        status=info.state.status,
        started_at=_iso(info.state.started_at),
        grace_seconds=grace,
        target=info.id,
        summary=f"Stop container {info.name} ({short_id(info.id)})",
        why=reason,
        preview=f"docker stop --time {grace} {short_id(info.id)}    # {info.name}\n"
        f"= POST /containers/{short_id(info.id)}/stop?t={grace}: SIGTERM, up to {grace} s to exit, then SIGKILL; "
        f"it stays stopped until someone starts it (`/erpgo start {info.name}`)\n"
        f"re-checked first: the same container id, still {info.state.status} since {clock(info.state.started_at)}",
    )


def start_proposal(info: ContainerInfo, reason: str) -> Proposal:
    return start.propose(
        name=info.name,
        container_id=info.id,
        status=info.state.status,
        finished_at=_iso(info.state.finished_at),
        target=info.id,
        summary=f"Start container {info.name} ({short_id(info.id)})",
        why=reason,
        preview=f"docker start {short_id(info.id)}    # {info.name}\n"
        f"= POST /containers/{short_id(info.id)}/start\n"
        f"re-checked first: the same container id, still {info.state.status} (not running)",
    )


def proposal_for(info: ContainerInfo, reason: str, *, loop: bool = False) -> Proposal | None:
    """A restart for a running (or looping) container, a start for a stopped one; None otherwise
    (paused, dead, being removed: neither would help)."""
    if info.state.status in RESTARTABLE:
        looping = loop or info.state.status == "restarting"
        return restart_proposal(info, reason, loop=looping, grace_seconds=grace_for(info))
    if info.state.status in STARTABLE:
        return start_proposal(info, reason)
    return None


def proposed(proposal: Proposal | None) -> list[Proposal]:
    """[proposal], or none. Its target is the container: one approval message per restart in a
    report, however many checks see a reason for it."""
    return [] if proposal is None else [proposal]


# --- re-checking the world ------------------------------------------------------------------


async def same_container(docker: Docker, name: str, container_id: str) -> ContainerInfo:
    """The container as it is now, if it is still the one proposed; Refused otherwise."""
    try:
        info = await docker.inspect(container_id)
    except ContainerNotFound:
        raise Refused(
            f"container {name} ({short_id(container_id)}) no longer exists: it was removed or recreated "
            "since it was proposed — run the check again"
        ) from None
    if info.name != name:
        raise Refused(f"container {short_id(container_id)} is called {info.name} now, not {name}")
    return info


def refuse_restart(info: ContainerInfo, status: str, started_at: str | None, loop: bool) -> None:
    state = info.state
    if state.status in STARTABLE or state.status == "dead":
        raise Refused(
            f"{info.name} is {state.status} now (it was {status} when proposed): that needs a start, "
            f"not a restart — `/erpgo app {info.name}` proposes one"
        )
    if state.status not in RESTARTABLE:
        raise Refused(f"{info.name} is {state.status}: a restart would not help now")
    if not loop and _iso(state.started_at) != started_at:
        was = parse_time(started_at) if started_at else None
        raise Refused(
            f"{info.name} was started again at {clock(state.started_at)} since it was proposed "
            f"(then running since {clock(was)}): it has been restarted already"
        )


def refuse_start(info: ContainerInfo, status: str) -> None:
    state = info.state
    if state.running or state.status == "restarting":
        raise Refused(
            f"{info.name} is {state.status} again (since {clock(state.started_at)}; it was {status} when "
            "proposed): there is nothing to start"
        )
    if state.status not in STARTABLE:
        raise Refused(f"{info.name} is {state.status}: it cannot be started as it is")


def refuse_stop(info: ContainerInfo, status: str, started_at: str | None) -> None:
    state = info.state
    if state.status not in RESTARTABLE:
        raise Refused(f"{info.name} is {state.status} now (it was {status} when proposed): there is nothing to stop")
    if state.status == "running" and _iso(state.started_at) != started_at:
        raise Refused(
            f"{info.name} was started again at {clock(state.started_at)} since it was proposed: "
            "someone acted on it meanwhile — run the check again"
        )


def _grace(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRACE_SECONDS:
        raise Refused(f"the grace period must be 0 to {MAX_GRACE_SECONDS} seconds")
    return value


# --- whether it worked ------------------------------------------------------------------------


async def until_healthy(ctx: CheckContext, name: str, container_id: str, **_proposed: Any) -> Verdict:
    """A restarted container is fixed once running and healthy (or running, without a health check);
    not fixed when it stopped or its health check fails; undecided while it is still starting."""
    try:
        info = await ctx.targets.docker.inspect(container_id)
    except ContainerNotFound:
        return Verdict(False, f"{name} no longer exists", f"`/erpgo app {name}` shows what runs under that name now")
    state = info.state
    if not state.running:
        return Verdict(False, f"{state.status} (exit code {state.exit_code})", f"`/erpgo app {name}` shows why")
    if state.health == "unhealthy":
        return Verdict(False, "running but unhealthy", f"`/erpgo app {name}` shows the failing health check")
    if state.health == "starting" or state.status == "restarting":
        return Verdict(None, f"{state.status}, health {state.health or 'not checked'}: still starting")
    return Verdict(True, f"running since {clock(state.started_at)}" + (", healthy" if state.health else ""))


# --- the remediations -----------------------------------------------------------------------


@runbook.remediation(
    "docker.restart",
    "Restart a container: SIGTERM, a grace period, SIGKILL, start",
    timeout=MAX_GRACE_SECONDS + 60,
    settle=RESTART_SETTLE,
    verify=until_healthy,
)
async def restart(
    ctx: CheckContext,
    name: str,
    container_id: str,
    status: str,
    started_at: str | None = None,
    loop: bool = False,
    grace_seconds: int = GRACE_SECONDS,
) -> str:
    grace = _grace(grace_seconds)
    docker = ctx.targets.docker
    before = await same_container(docker, name, container_id)
    refuse_restart(before, status, started_at, loop)
    await docker.restart(container_id, grace)
    after = await docker.inspect(container_id)
    if after.state.running:
        return (
            f"restarted {name} ({short_id(container_id)}) with a {grace} s grace period: running again since "
            f"{clock(after.state.started_at)} (it had been running since {clock(before.state.started_at)})"
        )
    return (
        f"restarted {name} ({short_id(container_id)}), but it is {after.state.status} now "
        f"(exit code {after.state.exit_code}) — `/erpgo app {name}` shows why"
    )


@runbook.remediation("docker.start", "Start a stopped container", timeout=60, settle=START_SETTLE)
async def start(ctx: CheckContext, name: str, container_id: str, status: str, finished_at: str | None = None) -> str:
    docker = ctx.targets.docker
    before = await same_container(docker, name, container_id)
    refuse_start(before, status)
    await docker.start(container_id)
    after = await docker.inspect(container_id)
    if after.state.running:  # at first: whether it stays up is the verification's to say
        return (
            f"started {name} ({short_id(container_id)}); whether it stays up is verified "
            f"{START_SETTLE.at_least:g} s later"
        )
    return (
        f"started {name} ({short_id(container_id)}), but it is {after.state.status} again "
        f"(exit code {after.state.exit_code}) — `/erpgo app {name}` shows why"
    )


@runbook.remediation(
    "docker.stop", "Stop a container: SIGTERM, a grace period, SIGKILL", timeout=MAX_GRACE_SECONDS + 60
)
async def stop(
    ctx: CheckContext,
    name: str,
    container_id: str,
    status: str,
    started_at: str | None = None,
    grace_seconds: int = GRACE_SECONDS,
) -> str:
    grace = _grace(grace_seconds)
    docker = ctx.targets.docker
    before = await same_container(docker, name, container_id)
    refuse_stop(before, status, started_at)
    await docker.stop(container_id, grace)
    after = await docker.inspect(container_id)
    if after.state.running:
        return f"asked {name} ({short_id(container_id)}) to stop, but it is {after.state.status} — its restart policy?"
    return (
        f"stopped {name} ({short_id(container_id)}) with a {grace} s grace period: exit code {after.state.exit_code} "
        f"at {clock(after.state.finished_at)}; `/erpgo start {name}` proposes starting it again"
    )
