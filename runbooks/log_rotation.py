"""Guide: "Infrastructure Issues › Disk Space Issues › Log Management" step 3 — container logs that Docker
does not rotate: `docker.truncate_log` where the bot can reach the json-file log itself, and otherwise
the compose `logging:` options that stop the growth, with the exact snippet.

Truncating is only a relief: the log grows again until the service's `logging:` is set and the
container re-created, so every answer says both.
"""

from __future__ import annotations

import asyncio
import os

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Refused, Runbook
from bot.core.units import human_bytes
from runbooks.containers.actions import same_container
from runbooks.containers.common import docker_check, short_id
from runbooks.disk import MAX_LOGS_INSPECTED, LogFile, docker_df, log_files

runbook = Runbook("disk.logs")

SECTION = "Infrastructure Issues › Disk Space Issues › Log Management"
TRUNCATE_FROM_BYTES = 1024**2  # an unrotated log smaller than this is not worth an approval
MAX_PROPOSALS = 5


def logging_snippet(service: str) -> str:
    """What stops the growth: rotation by the json-file driver itself."""
    return "\n".join(
        [
            "services:",
            f"  {service}:",
            "    logging:",
            "      driver: json-file",
            "      options:",
            '        max-size: "10m"',
            '        max-file: "3"',
        ]
    )


def reachable(log: LogFile) -> bool:
    """The bot sees the engine's log file and may write it (it runs on the Docker host, or has it mounted)."""
    return bool(log.path) and os.path.isfile(log.path) and os.access(log.path, os.W_OK)


def truncate_proposal(log: LogFile) -> Proposal:
    size = human_bytes(log.size or 0)
    return truncate_log.propose(
        name=log.container,
        container_id=log.container_id,
        log_path=log.path,
        target=log.container_id,
        summary=f"Truncate the {size} log of {log.container} ({short_id(log.container_id)})",
        why=f"{log.container}'s json-file log is not rotated: {size} and growing until the disk is full",
        preview=f"truncate -s 0 {log.path}    # {log.container}, {size}\n"
        "re-checked first: the same container id, the same log file\n"
        "the log grows again until the service's `logging:` is set:\n" + logging_snippet(log.container),
    )


def unrotated_logs(logs: list[LogFile]) -> list[LogFile]:
    grown = [log for log in logs if log.driver == "json-file" and not log.rotated]
    return sorted(
        (log for log in grown if log.size is None or log.size >= TRUNCATE_FROM_BYTES), key=lambda log: -(log.size or 0)
    )


@docker_check(runbook, "disk", component="Log rotation", section=SECTION, proposes=("docker.truncate_log",))
async def log_rotation(ctx: CheckContext) -> Finding:
    df = await docker_df(ctx)
    ids = [str(c["Id"]) for c in (df.get("Containers") or [])][:MAX_LOGS_INSPECTED]
    unrotated = unrotated_logs(await log_files(ctx, ids))
    if not unrotated:
        return Finding.ok("Log rotation", f"no unrotated json-file log of {human_bytes(TRUNCATE_FROM_BYTES)} or more")
    at_hand = [log for log in unrotated if reachable(log)][:MAX_PROPOSALS]
    out_of_reach = [log for log in unrotated if log not in at_hand]
    details = [f"{log.describe()} — the bot can truncate it" for log in at_hand]
    details += [f"{log.describe()} — on the Docker host, out of the bot's reach" for log in out_of_reach]
    details.append(
        "set rotation in docker-compose.yml for each service (applies when the container is re-created, "
        f"`docker compose up -d <service>`):\n{logging_snippet(out_of_reach[0].container if out_of_reach else '<service>')}"
    )
    title = f"{len(unrotated)} json-file log{'s' if len(unrotated) != 1 else ''} not rotated, largest " + (
        unrotated[0].describe()
    )
    data = {
        "unrotated": [{"container": log.container, "size": log.size, "reachable": log in at_hand} for log in unrotated]
    }
    proposals = [truncate_proposal(log) for log in at_hand]
    return Finding(Status.WARN, "Log rotation", title, details=details, proposals=proposals, data=data)


async def same_log(ctx: CheckContext, name: str, container_id: str, log_path: str) -> int:
    """The size of the log file, if it is still the container's own json-file log; Refused otherwise."""
    await same_container(ctx.targets.docker, name, container_id)
    raw = await ctx.targets.docker.inspect_raw(container_id)
    if (raw.get("LogPath") or "") != log_path:
        raise Refused(f"{name}'s log is no longer {log_path} (now {raw.get('LogPath') or 'none'})")
    try:
        return os.stat(log_path).st_size
    except OSError as exc:
        raise Refused(f"{log_path}: {exc.strerror or 'cannot be read'} — out of the bot's reach now") from None


@runbook.remediation("docker.truncate_log", "Truncate a container's unrotated json-file log", timeout=30)
async def truncate_log(ctx: CheckContext, name: str, container_id: str, log_path: str) -> str:
    before = await same_log(ctx, name, container_id, log_path)
    await asyncio.to_thread(os.truncate, log_path, 0)
    after = os.stat(log_path).st_size
    return (
        f"truncated {name}'s log ({short_id(container_id)}): {human_bytes(before)} → {human_bytes(after)}; it grows "
        "again until its service sets `logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}}`"
    )
