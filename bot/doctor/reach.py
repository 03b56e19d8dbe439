"""The targets of the remediations, probed without changing them: Docker answering and letting the
bot restart (asked of a container that does not exist: the engine's 404 means allowed), the firewall
(`nft -c` of the bot's table, or the fail2ban jail's status), the backup location writable and
pg_dump's major version at least the server's, Alertmanager's API with the bot's credentials."""

from __future__ import annotations

import asyncio
import os
import re

from bot.core.errors import describe_error
from bot.doctor import Readiness
from bot.settings import Settings
from bot.targets import Targets
from bot.targets.backup_store import location_of
from bot.targets.backups import find_tool
from bot.targets.docker import ContainerNotFound
from bot.targets.firewall import FirewallError

NO_SUCH_CONTAINER = "erpgo-chatops-doctor-no-such-container"


async def docker_allowed(capability: str, targets: Targets) -> Readiness:
    await targets.docker.ping()
    try:
        await targets.docker.restart(NO_SUCH_CONTAINER, 0)
    except ContainerNotFound:
        return Readiness(capability, True, "the Docker engine answers and accepts restarts (and inspects)")
    except Exception as exc:  # a socket proxy that forbids POST answers 403
        return Readiness(
            capability,
            False,
            f"the Docker engine answers but refused a restart: {describe_error(exc)}",
            "allow POST /containers/{id}/restart and /start on the Docker socket proxy (DOCKER_HOST)",
        )
    return Readiness(capability, False, f"the engine restarted {NO_SUCH_CONTAINER}?", "check DOCKER_HOST")


async def firewall_ready(capability: str, settings: Settings, targets: Targets) -> Readiness:
    if settings.erpgo_firewall == "none":
        return Readiness(capability, False, "ERPGO_FIREWALL is none: bans cannot be applied", "set ERPGO_FIREWALL")
    firewall = targets.firewall
    try:
        await firewall.ready()
    except FirewallError as exc:
        fix = (
            "check ERPGO_FIREWALL_COMMAND (it must run nft with the right to change the ruleset)"
            if settings.erpgo_firewall == "nftables"
            else "check ERPGO_FAIL2BAN_JAIL and that fail2ban runs (ERPGO_FAIL2BAN_SOCKET)"
        )
        return Readiness(capability, False, f"{firewall.name}: {exc}", fix)
    if settings.erpgo_firewall == "nftables":
        return Readiness(capability, True, f"`{settings.erpgo_firewall_command} -c` accepts the bot's table")
    return Readiness(capability, True, f"fail2ban jail {settings.erpgo_fail2ban_jail} exists")


async def backup_ready(capability: str, settings: Settings, targets: Targets, timeout: float) -> Readiness:
    location = location_of(settings)
    if location.container is None and not os.access(location.directory, os.W_OK | os.X_OK):
        return Readiness(
            capability,
            False,
            f"{location.directory} is missing or not writable by the bot",
            f"create {location.directory} and let the bot's user write to it",
        )
    tool = await pg_dump_major(timeout)
    async with targets.pg.connect(application_name="erpgo-chatops-doctor") as conn:
        server = int(await conn.fetchval("SELECT current_setting('server_version_num')::int")) // 10000
    if tool < server:
        return Readiness(
            capability,
            False,
            f"pg_dump is version {tool}, older than the server's {server}: it refuses to dump it",
            f"install postgresql-client-{server}",
        )
    where = location.describe()
    return Readiness(capability, True, f"{where} writable; pg_dump {tool} ≥ server {server}")


async def pg_dump_major(timeout: float) -> int:
    process = await asyncio.create_subprocess_exec(
        find_tool("pg_dump"), "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    match = re.search(r"(\d+)(?:\.\d+)?", out.decode(errors="replace"))
    return int(match.group(1)) if match else 0


async def alertmanager_ready(capability: str, targets: Targets) -> Readiness:
    status = await targets.alertmanager.status()
    version = (status.get("versionInfo") or {}).get("version", "?")
    return Readiness(capability, True, f"Alertmanager {version} answers with the bot's credentials")
