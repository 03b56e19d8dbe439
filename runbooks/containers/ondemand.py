"""Actions on demand: `/erpgo restart <container>`, `stop <container>`, `start <container>` for any watched
container — the engineer decides, a colleague approves. The container's state is read first and the action
that fits it is proposed (a restart asked of a stopped container becomes a start); the remediations in
`runbooks/containers/actions.py` re-check the world before they act. A database container is restarted with
a longer grace period, and the proposal says every connection is cut (guide: Database Connection Issues 4).

`PostgreSQLDown` triage asks the same of the database container: when it is down, its start or restart is
proposed beside the database's own checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import FIRST, Args, Runbook, UsageError
from bot.targets.docker_models import ContainerInfo
from runbooks.application import CONTAINER_NAME
from runbooks.containers.actions import RESTARTABLE, STARTABLE, is_database, proposal_for, stop_proposal
from runbooks.containers.common import clock, docker_check, inspect_or_none

runbook = Runbook("containers.ondemand", precedence=FIRST)

SECTION = "Application Issues › Application Won't Start"
DB_SECTION = "Database Issues › Database Connection Issues"
RECOVERY = "Data Integrity Issues › Data Recovery"
ACTIONS = ("docker.restart", "docker.start", "docker.stop")
DATABASE_CUT = (
    "it is the database: every connection is cut, open transactions roll back, and the API answers errors "
    "until PostgreSQL accepts connections again"
)


@dataclass(frozen=True)
class ActionArgs(Args):
    container: str


def parse_action(words: list[str]) -> ActionArgs:
    if len(words) != 1:
        raise UsageError("name one watched container, e.g. `erpgo-api`")
    if not CONTAINER_NAME.match(words[0]):
        raise UsageError(f"{words[0][:40]!r} is not a container name")
    return ActionArgs(words[0])


for verb, what in (
    ("restart", "propose restarting a watched container (approval needed; a stopped one is proposed a start)"),
    ("stop", "propose stopping a watched container, e.g. while its data is checked (approval needed)"),
    ("start", "propose starting a stopped watched container (approval needed)"),
):
    runbook.verb(verb, what, usage="<container>", parse=parse_action, ack="Reading the container's state…")


def state_line(info: ContainerInfo) -> str:
    state = info.state
    if state.status == "running":
        health = f", {state.health}" if state.health else ""
        return f"running{health} since {clock(state.started_at)}, {state.restart_count} restarts"
    if state.status == "restarting":
        return f"restarting: its restart policy keeps restarting it (last exit code {state.exit_code})"
    return f"{state.status} (exit code {state.exit_code}) since {clock(state.finished_at)}"


def state_status(info: ContainerInfo) -> Status:
    healthy = info.state.status == "running" and info.state.health in (None, "healthy", "starting")
    return Status.OK if healthy else Status.WARN


def asked_reason(verb: str, info: ContainerInfo, requester: str) -> str:
    reason = f"asked for with `/erpgo {verb} {info.name}`" + (f" by <@{requester}>" if requester else "")
    return reason + (f"; {DATABASE_CUT}" if is_database(info) and verb != "start" else "")


def proposal_asked(verb: str, info: ContainerInfo, reason: str) -> tuple[Proposal | None, str | None]:
    """The proposal that fits the container's state for the verb asked, or why there is none."""
    status = info.state.status
    if verb == "stop":
        if status in RESTARTABLE:
            return stop_proposal(info, reason), None
        return None, f"{info.name} is {status}: there is nothing to stop"
    if verb == "start" and status not in STARTABLE:
        return None, f"{info.name} is {status}: there is nothing to start" + (
            f" — `/erpgo restart {info.name}` proposes a restart" if status in RESTARTABLE else ""
        )
    proposal = proposal_for(info, reason)
    if proposal is None:
        return None, f"{info.name} is {status}: neither a restart nor a start would help"
    return proposal, None


async def action_finding(ctx: CheckContext, verb: str) -> Finding:
    name = await ctx.targets.ensure_watched(ctx.arg(ActionArgs).container)
    info = await inspect_or_none(ctx.targets.docker, name)
    component = f"Container {name}"
    if info is None:
        return Finding.warn(component, "container not found: nothing to act on", data={"state": "missing"})
    proposal, refused = proposal_asked(verb, info, asked_reason(verb, info, ctx.actor.requester))
    details = [refused] if refused else []
    if proposal is not None and proposal.action != f"docker.{verb}":
        details.append(f"proposed a {proposal.action.split('.')[1]} instead: {info.name} is {info.state.status}")
    section = DB_SECTION if is_database(info) else RECOVERY if verb == "stop" else SECTION
    return Finding(
        state_status(info),
        component,
        state_line(info),
        details=details,
        section=section,
        proposals=[proposal] if proposal else [],
        data={"state": info.state.status, "proposed": proposal.action if proposal else None},
    )


@docker_check(runbook, "restart", component="Container", section=SECTION, proposes=ACTIONS)
async def restart_on_demand(ctx: CheckContext) -> Finding:
    return await action_finding(ctx, "restart")


@docker_check(runbook, "stop", component="Container", section=RECOVERY, proposes=ACTIONS)
async def stop_on_demand(ctx: CheckContext) -> Finding:
    return await action_finding(ctx, "stop")


@docker_check(runbook, "start", component="Container", section=SECTION, proposes=ACTIONS)
async def start_on_demand(ctx: CheckContext) -> Finding:
    return await action_finding(ctx, "start")


# --- PostgreSQLDown: the database container ------------------------------------------------------------


@docker_check(runbook, component="Database container", section=DB_SECTION, proposes=("docker.restart", "docker.start"))
async def database_container(ctx: CheckContext) -> Finding:
    """The guide's DB Connection 4 ("restart the database"): the database container's state, and when it is
    down (stopped, crash-looping or unhealthy) its start or restart proposed."""
    name = await ctx.targets.container_of("postgres")
    info = await inspect_or_none(ctx.targets.docker, name)
    component = f"Database container {name}"
    if info is None:
        return Finding.crit(component, "container not found", data={"state": "missing"})
    down = not info.state.up or info.state.health == "unhealthy"
    if not down:
        return Finding.ok(component, state_line(info), data={"state": info.state.status})
    reason = f"PostgreSQL is down and its container is {info.state.status}" + (
        f"; {DATABASE_CUT}" if info.state.running else ""
    )
    proposal = proposal_for(info, reason)
    return Finding.crit(
        component,
        state_line(info),
        proposals=[proposal] if proposal else [],
        data={"state": info.state.status, "health": info.state.health},
    )


runbook.triage_for(
    "PostgreSQLDown",
    checks=("postgres_health", "connection_diagnosis", "database_container", "docker_containers", "api_health"),
)
