"""Guide: "Network & Connectivity › Service Discovery Issues" step 3 — instead of the guide's
`docker-compose down` / `up -d` of everything: `docker.reconnect`, one container disconnected from its
compose network and connected again with its service name as an alias, so the network's DNS knows it
anew. Re-checked before (the same container, still on that network, its name still not resolving to it
from the API container), verified after by DNS from inside the API container.
"""

from __future__ import annotations

from typing import Any

from bot.context import CheckContext
from bot.core.findings import Proposal
from bot.core.registry import Failed, Refused, Runbook
from bot.targets import container_probes as probes
from runbooks.containers.actions import same_container
from runbooks.containers.common import short_id

runbook = Runbook("network.reconnect")

CONTAINER_ID_ALIAS_LENGTH = 12


def endpoint_config(raw: dict[str, Any], network: str, aliases: list[str]) -> dict[str, Any]:
    """The endpoint to connect with: the aliases, and a static address when compose gave one."""
    endpoint = (((raw.get("NetworkSettings") or {}).get("Networks") or {}).get(network)) or {}
    config: dict[str, Any] = {"Aliases": aliases}
    if endpoint.get("IPAMConfig"):
        config["IPAMConfig"] = endpoint["IPAMConfig"]
    return config


def reconnect_proposal(
    name: str, container_id: str, network: str, service: str, aliases: list[str], api: str, why: str
) -> Proposal:
    shown = " ".join(f"--alias {alias}" for alias in aliases)
    return reconnect.propose(
        name=name,
        container_id=container_id,
        network=network,
        service=service,
        aliases=aliases,
        api=api,
        target=f"{container_id}@{network}",
        summary=f"Reconnect {name} ({short_id(container_id)}) to {network} as {service}",
        why=why,
        preview=f"docker network disconnect {network} {short_id(container_id)}    # {name}\n"
        f"docker network connect {shown} {network} {short_id(container_id)}\n"
        f"re-checked first: the same container, still on {network}, `{service}` still not resolving to it from {api}\n"
        f"verified after: `{service}` resolves to {name}'s address from inside {api}",
    )


async def resolution_from(ctx: CheckContext, api: str, service: str) -> probes.Resolution:
    box = await probes.toolbox(ctx.targets.docker, api)
    return await probes.resolve(ctx.targets.docker, box, service)


async def recheck(ctx: CheckContext, name: str, container_id: str, network: str, api: str, service: str) -> dict:
    await same_container(ctx.targets.docker, name, container_id)
    raw = await ctx.targets.docker.inspect_raw(container_id)
    if network not in ((raw.get("NetworkSettings") or {}).get("Networks") or {}):
        raise Refused(f"{name} is no longer on {network}: `docker network connect {network} {name}` attaches it")
    if not (raw.get("State") or {}).get("Running"):
        raise Refused(f"{name} is not running: its name cannot resolve until it is started")
    address = (raw["NetworkSettings"]["Networks"][network] or {}).get("IPAddress")
    before = await resolution_from(ctx, api, service)
    if before.resolved and (not address or address in before.addresses):
        raise Refused(
            f"{service} resolves from {api} now ({', '.join(before.addresses) or 'an address'}): nothing to fix"
        )
    return raw


@runbook.remediation("docker.reconnect", "Reconnect a container to its compose network", timeout=60)
async def reconnect(
    ctx: CheckContext, name: str, container_id: str, network: str, service: str, aliases: list[str], api: str
) -> str:
    raw = await recheck(ctx, name, container_id, network, api, service)
    await ctx.targets.docker.reconnect(network, container_id, endpoint_config(raw, network, list(aliases)))
    after_raw = await ctx.targets.docker.inspect_raw(container_id)
    address = ((after_raw.get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("IPAddress")
    after = await resolution_from(ctx, api, service)
    if not after.resolved or (address and after.addresses and address not in after.addresses):
        raise Failed(
            f"reconnected {name} to {network}, but from {api} `{service}` still does not resolve to it "
            f"({after.detail or ', '.join(after.addresses)}) — recreate the network (the guide's step 3)"
        )
    return (
        f"reconnected {name} ({short_id(container_id)}) to {network} as {', '.join(aliases)}: from {api}, "
        f"{service} resolves to {', '.join(after.addresses)}"
    )
