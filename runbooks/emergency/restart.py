"""Guide: "Emergency Procedures › Complete System Outage › System Recovery › Emergency Restart" —
`docker.restart_all`.

The guide stops everything and brings it up again (`docker-compose down`, `up -d`), then checks
`/health`. Here, through the approval engine (two approvers in the example policy): the deployment's
containers restarted in dependency order — the database, the cache and the queue first; each tier
waits until its containers are healthy (their health check says so, or, without one, they keep
running and answer: PostgreSQL a query, Redis a PING); then the API; then the workers; then
monitoring — and the first container that does not come back healthy stops the sequence, saying
what was restarted and what was not. A final `/health` closes it. One-shot containers (the
migrator) are left alone: they ran once, on purpose.
"""

from __future__ import annotations

import asyncio
import time
from itertools import groupby
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Proposal, Status
from bot.core.registry import Failed, Refused, Runbook
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import parse_time
from runbooks import quick
from runbooks.emergency.deployment import ROLE_TITLES, Member, inspect_fresh

runbook = Runbook("restart")

GRACE_SECONDS = 10  # `docker restart`'s own default: SIGTERM, then SIGKILL after this long
HEALTH_WAIT = 120.0  # s a tier may take to come back healthy
STABLE_SECONDS = 2.0  # without a health check: running this long without restarting, and answering
POLL = 0.5
RESTART_TIMEOUT = 900.0


def short(container_id: str) -> str:
    return container_id[:12]


def restart_all_proposal(members: list[Member], reason: str, grace_seconds: int = GRACE_SECONDS) -> Proposal:
    """Restart every existing container of the deployment but the one-shot jobs, tier by tier."""
    chosen = [m for m in members if m.raw is not None and m.role != "oneshot"]
    skipped = [m.name for m in members if m not in chosen]
    order = [{"name": m.name, "id": m.raw["Id"], "role": m.role, "tier": m.tier} for m in chosen if m.raw is not None]
    lines = []
    for step, (_, group) in enumerate(groupby(order, key=lambda c: c["tier"]), start=1):
        names = ", ".join(f"{c['name']} ({c['role']})" for c in group)
        lines.append(f"{step}. docker restart --time {grace_seconds} {names} — then wait until healthy")
    lines.append(f"{len(lines) + 1}. GET /health")
    if skipped:
        lines.append(f"not restarted: {', '.join(skipped)} (one-shot, or not found)")
    lines.append("the first container that does not come back healthy stops the sequence")
    return restart_all.propose(
        containers=order,
        grace_seconds=grace_seconds,
        summary=f"Restart the deployment's {len(order)} containers in dependency order",
        why=reason,
        preview="\n".join(lines),
    )


# --- waiting until a container is back -------------------------------------------------------------


async def answers(ctx: CheckContext, role: str) -> str | None:
    """Why the role's service does not answer yet (None: it does, or it is not one the bot can ask)."""
    try:
        if role == "database":
            async with ctx.targets.pg.connect() as conn:
                await conn.fetchval("SELECT 1")
        elif role == "cache":
            await ctx.targets.redis.client.ping()
    except NotConfigured:
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


async def back_healthy(ctx: CheckContext, name: str, role: str, deadline: float) -> tuple[bool, str]:
    """Wait until the container is healthy: (came back, how it went)."""
    started = time.monotonic()
    stable_since: float | None = None
    last = "not inspected yet"
    while True:
        raw = await ctx.targets.docker.inspect_raw(name)
        member = Member(name, raw)
        info = member.info
        assert info is not None
        state = info.state
        if member.has_healthcheck:
            health = health_since_start(raw)
            if health == "healthy":
                return True, f"healthy after {time.monotonic() - started:.1f} s"
            if health == "unhealthy":
                return False, f"unhealthy after the restart ({last_health_output(raw)})"
            last = f"health {health}"
        elif state.running and state.status != "restarting":
            stable_since = stable_since or time.monotonic()
            problem = await answers(ctx, role)
            if problem is None and time.monotonic() - stable_since >= STABLE_SECONDS:
                return True, f"running and answering after {time.monotonic() - started:.1f} s"
            last = problem or "running"
        else:
            stable_since = None
            last = f"{state.status} (exit code {state.exit_code})"
        if not state.running and state.status == "exited" and info.restart_policy in ("", "no"):
            return False, f"exited again (exit code {state.exit_code})"
        if time.monotonic() > deadline:
            return False, f"not healthy within {HEALTH_WAIT:g} s (last seen: {last})"
        await asyncio.sleep(POLL)  # polling the engine's record of the container, bounded by the deadline


def health_since_start(raw: dict[str, Any]) -> str:
    """The health status, unless no check has run since the container (re)started: the engine keeps
    the status of before the restart until the first new check, so that reads "starting"."""
    state = raw.get("State") or {}
    started = parse_time(state.get("StartedAt"))
    health = state.get("Health") or {}
    checks = [e for e in health.get("Log") or [] if started and (parse_time(e.get("Start")) or started) >= started]
    return str(health.get("Status") or "starting") if checks else "starting"


def last_health_output(raw: dict[str, Any]) -> str:
    log = ((raw.get("State") or {}).get("Health") or {}).get("Log") or []
    if not log:
        return "no health check output"
    entry = log[-1]
    output = (entry.get("Output") or "").strip().splitlines()
    return f"last check: exit code {entry.get('ExitCode')}" + (f", {output[-1][:120]}" if output else "")


# --- the remediation -----------------------------------------------------------------------------


async def recheck(ctx: CheckContext, containers: list[dict[str, Any]]) -> None:
    """Every proposed container still exists under the same id."""
    now = {m.name: m for m in await inspect_fresh(ctx)}
    for proposed in containers:
        member = now.get(proposed["name"])
        if member is None or member.raw is None:
            raise Refused(f"container {proposed['name']} no longer exists — run `/erpgo outage` again")
        if member.raw["Id"] != proposed["id"]:
            raise Refused(
                f"{proposed['name']} is another container now ({short(member.raw['Id'])}, proposed "
                f"{short(proposed['id'])}) — run `/erpgo outage` again"
            )


async def restart_tier(ctx: CheckContext, tier: list[dict[str, Any]], grace: int) -> list[tuple[dict, bool, str]]:
    docker = ctx.targets.docker

    async def one(container: dict[str, Any]) -> tuple[dict, bool, str]:
        try:
            await docker.restart(container["id"], grace)
        except ContainerNotFound:
            return container, False, "disappeared before it could be restarted"
        deadline = time.monotonic() + HEALTH_WAIT
        came_back, how = await back_healthy(ctx, container["name"], container["role"], deadline)
        return container, came_back, how

    return list(await asyncio.gather(*(one(c) for c in tier)))


async def final_health(ctx: CheckContext) -> str:
    try:
        api = ctx.targets.api
    except NotConfigured:
        return "/health: not checked (ERPGO_API_URL is not set)"
    deadline = time.monotonic() + HEALTH_WAIT
    while True:
        try:
            finding = quick.health_finding(await api.get("/health"))
            if finding.status is Status.OK or time.monotonic() > deadline:
                return f"/health: {finding.title}"
        except Exception as exc:
            if time.monotonic() > deadline:
                return f"/health: no answer ({type(exc).__name__})"
        await asyncio.sleep(POLL)  # the API may take a moment to come up


@runbook.remediation("docker.restart_all", "Restart the deployment in dependency order", timeout=RESTART_TIMEOUT)
async def restart_all(ctx: CheckContext, containers: list[dict[str, Any]], grace_seconds: int = GRACE_SECONDS) -> str:
    await recheck(ctx, containers)
    done: list[str] = []
    tiers = [list(group) for _, group in groupby(containers, key=lambda c: c["tier"])]
    for step, tier in enumerate(tiers, start=1):
        results = await restart_tier(ctx, tier, int(grace_seconds))
        lines = [f"{c['name']} ({ROLE_TITLES.get(c['role'], c['role'])}): {how}" for c, _, how in results]
        failed = [c["name"] for c, came_back, _ in results if not came_back]
        done.append(f"{step}. " + "; ".join(lines))
        if failed:
            left = [c["name"] for later in tiers[step:] for c in later]
            raise Failed(
                "\n".join(
                    [
                        f"stopped at step {step} of {len(tiers)}: {', '.join(failed)} did not come back healthy",
                        *done,
                        f"not restarted: {', '.join(left)}" if left else "nothing was left to restart",
                    ]
                )
            )
    return "\n".join([f"restarted {len(containers)} containers in dependency order:", *done, await final_health(ctx)])
