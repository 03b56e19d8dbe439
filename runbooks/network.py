"""Guide: "Network & Connectivity › Service Discovery Issues" — `net`.

Step 1, Check Docker Network: the networks the watched containers are on, with every container attached,
its aliases and address. Step 2, Verify Service Names: from inside the API container, as it sees them,
each service's name resolved and its ports connected to — with the tools its image has (see
bot/targets/container_probes.py) — and the same for the hosts in the API's DATABASE_URL, REDIS_URL and
NATS_URL (only host and port are taken from them; the values never leave memory). Then the published
ports: whether something answers on the host side.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.context import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.registry import Runbook
from bot.core.units import plural
from bot.targets import container_probes as probes
from bot.targets.docker import ContainerNotFound
from bot.targets.docker_models import ContainerInfo, NetworkInfo, PortBinding, container_info, port_conflicts
from runbooks.reconnect import reconnect_proposal
from runbooks.triage import name_matches
from runbooks.watched import watched_api

runbook = Runbook("network")

SECTION = "Network & Connectivity › Service Discovery Issues"
NETWORK = SECTION + " › Check Docker Network"
NAMES = SECTION + " › Verify Service Names"

URL_SETTINGS = {"DATABASE_URL": 5432, "REDIS_URL": 6379, "NATS_URL": 4222}  # with their schemes' default ports
PROBE_CONCURRENCY = 6  # execs at once in the API container
HOST_CONNECT_SECONDS = 2.0
PROXY_CLOSE_WINDOW = 0.3  # s: docker-proxy accepts, then hangs up at once when the container does not listen
CONTAINER_ID_ALIAS = re.compile(r"^[0-9a-f]{12}$")
FAILED_STATES = ("refused", "timeout", "unresolved", "unreachable")
_SURVEY = "_network_survey"

runbook.verb(
    "net",
    "service discovery: the compose networks, containers with aliases and addresses, DNS and TCP between the "
    "services as the API container sees them, published ports",
    ack="Looking at the networks…",
)


# --- what the engine says -------------------------------------------------------------------------


@dataclass
class Member:
    """A watched container as inspected; `raw` is None when there is no such container."""

    name: str
    raw: dict[str, Any] | None

    @property
    def info(self) -> ContainerInfo:
        assert self.raw is not None
        return container_info(self.raw)

    @property
    def endpoints(self) -> dict[str, dict[str, Any]]:
        return dict(((self.raw or {}).get("NetworkSettings") or {}).get("Networks") or {})

    def aliases(self, networks: set[str]) -> list[str]:
        found: list[str] = []
        for name, endpoint in self.endpoints.items():
            if name in networks:
                found += [a for a in endpoint.get("Aliases") or [] if not CONTAINER_ID_ALIAS.match(a)]
        return list(dict.fromkeys(found))

    def addresses(self, networks: set[str]) -> set[str]:
        return {str(e["IPAddress"]) for n, e in self.endpoints.items() if n in networks and e.get("IPAddress")}

    def service_name(self, networks: set[str]) -> str:
        """The name the other services use: the compose service, else a network alias, else the container's."""
        aliases = self.aliases(networks)
        service = self.info.service
        if service and (service in aliases or not aliases):
            return service
        return next((a for a in aliases if a != self.name), self.name)

    def exposed_tcp_ports(self) -> list[int]:
        exposed = ((self.raw or {}).get("Config") or {}).get("ExposedPorts") or {}
        ports = []
        for key in exposed:
            port, _, proto = key.partition("/")
            if (proto or "tcp") == "tcp" and port.isdigit():
                ports.append(int(port))
        return sorted(ports)


@dataclass
class Survey:
    api: str
    members: dict[str, Member]  # the API first, then the other watched containers
    networks: list[NetworkInfo]

    @property
    def api_member(self) -> Member:
        return self.members[self.api]


async def _inspect(ctx: CheckContext, name: str) -> Member:
    try:
        return Member(name, await ctx.targets.docker.inspect_raw(name))
    except ContainerNotFound:
        return Member(name, None)


async def _survey(ctx: CheckContext) -> Survey:
    api, watched = await watched_api(ctx)
    names = list(dict.fromkeys([api, *watched]))
    members = await asyncio.gather(*(_inspect(ctx, name) for name in names))
    existing = [m.name for m in members if m.raw is not None]
    networks = await ctx.targets.docker.networks_of(names=existing) if existing else []
    return Survey(api, {m.name: m for m in members}, networks)


async def survey(ctx: CheckContext) -> Survey:
    return await ctx.shared(_SURVEY, lambda: _survey(ctx))


def url_targets(raw: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(setting, host, port) of the URLs the container is configured with; nothing else of them is kept."""
    found = []
    for entry in (raw.get("Config") or {}).get("Env") or []:
        key, _, value = entry.partition("=")
        if key not in URL_SETTINGS or "://" not in value:
            continue
        try:
            parts = urlsplit(value)
            host, port = parts.hostname, parts.port or URL_SETTINGS[key]
        except ValueError:
            continue
        if host:
            found.append((key, host, port))
    return found


# --- step 1: networks -------------------------------------------------------------------------


def network_finding(network: NetworkInfo, watched: set[str]) -> Finding:
    kind = network.driver + (", internal" if network.internal else "")
    subnets = ", ".join(network.subnets) or "no subnet"
    title = f"{kind}, {subnets}, {plural(len(network.containers), 'container')}"
    details = [
        f"{'• ' if a.container in watched else ''}{a.container}: {a.ipv4 or 'no IPv4 address'}; "
        f"aliases: {', '.join(x for x in a.aliases if not CONTAINER_ID_ALIAS.match(x)) or 'none'}"
        for a in network.containers
    ]
    data = {
        "name": network.name,
        "driver": network.driver,
        "internal": network.internal,
        "subnets": network.subnets,
        "containers": {a.container: {"ipv4": a.ipv4, "aliases": a.aliases} for a in network.containers},
    }
    return Finding.ok(f"Network {network.name}", title, details=details, data=data)


@runbook.check("net", component="Docker networks", section=NETWORK, timeout=15)
async def compose_networks(ctx: CheckContext) -> list[Finding]:
    found = await survey(ctx)
    existing = {name for name, m in found.members.items() if m.raw is not None}
    if not existing:
        return [Finding.crit("Docker networks", "none of the watched containers exists: " + ", ".join(found.members))]
    findings = [network_finding(network, existing) for network in found.networks]
    unattached = sorted(name for name in existing if not found.members[name].endpoints)
    if unattached:
        findings.append(
            Finding.warn(
                "Docker networks",
                f"on no network: {', '.join(unattached)}",
                details=["network_mode none (or a network that was removed): no other service can reach them"],
            )
        )
    if not found.networks and not unattached:
        findings.append(Finding.warn("Docker networks", "the watched containers share no bridge or overlay network"))
    return findings


# --- step 2: names and ports as the API sees them --------------------------------------------


@dataclass
class Target:
    """One service to reach from the API: its name, its ports, and which settings point at it."""

    name: str
    container: str  # the watched container, or the host itself for a setting that names no container
    ports: list[int] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)  # the addresses the engine gave it
    settings: list[str] = field(default_factory=list)
    container_id: str = ""  # "" for a host that is no watched container
    network: str = ""  # the network it shares with the API: where a reconnect would put it back
    aliases: list[str] = field(default_factory=list)  # the names it should answer to there


def _connection_line(connection: probes.Connection) -> str:
    via = f" via {connection.tool}" if connection.tool else ""
    to = f" ({connection.address})" if connection.address and connection.address != connection.host else ""
    detail = f" — {connection.detail}" if connection.detail else ""
    return f"TCP {connection.port}{to}: {connection.state}{via}{detail}"


def _resolution_line(resolution: probes.Resolution) -> str:
    tool = f" (via {resolution.tool})" if resolution.tool else ""
    if resolution.resolved:
        shown = ", ".join(resolution.addresses) or "an address the tool does not show"
        return f"{resolution.name} resolves to {shown}{tool}"
    if resolution.resolved is False:
        return f"{resolution.name} does not resolve{tool}: {resolution.detail}"
    return f"{resolution.name}: resolution unknown{tool} — {resolution.detail}"


def judge_reachability(
    resolution: probes.Resolution, connections: list[probes.Connection], expected: set[str]
) -> tuple[Status, str]:
    """(status, the one line that matters most)."""
    if resolution.resolved is False:
        return Status.CRIT, _resolution_line(resolution)
    if expected and resolution.addresses and not set(resolution.addresses) & expected:
        return Status.CRIT, (
            f"{resolution.name} resolves to {', '.join(resolution.addresses)}, but the container's address is "
            f"{', '.join(sorted(expected))}: a stale or foreign DNS entry"
        )
    failed = [c for c in connections if c.state in FAILED_STATES]
    if failed and resolution.resolved is None:
        return Status.CRIT, f"{_resolution_line(resolution)}; {_connection_line(failed[0])}"
    if failed:
        return Status.CRIT, _connection_line(failed[0])
    unknown = [c for c in connections if c.state == "unknown"]
    if resolution.resolved is None:
        return Status.WARN, _resolution_line(resolution)
    if unknown:
        return Status.WARN, _connection_line(unknown[0])
    opened = ", ".join(str(c.port) for c in connections)
    return Status.OK, _resolution_line(resolution) + (f"; TCP {opened} open" if connections else "")


async def probe_target(
    ctx: CheckContext, box: probes.Toolbox, target: Target, gate: asyncio.Semaphore, component: str
) -> Finding:
    docker = ctx.targets.docker
    async with gate:
        resolution = await probes.resolve(docker, box, target.name)
    address = resolution.addresses[0] if resolution.addresses else next(iter(sorted(target.expected)), None)

    async def one(port: int) -> probes.Connection:
        async with gate:
            return await probes.connect(docker, box, target.name, port, address=address)

    connections = list(await asyncio.gather(*(one(port) for port in target.ports)))
    status, title = judge_reachability(resolution, connections, target.expected)
    details = [_resolution_line(resolution), *(_connection_line(c) for c in connections)]
    if not target.ports:
        details.append("no TCP port to try: it exposes none and no setting of the API names one")
    if target.settings:
        details.append(
            "the API's " + ", ".join(target.settings) + (" points" if len(target.settings) == 1 else " point") + " here"
        )
    if status is Status.CRIT:
        details.append(
            f"guide: `docker-compose exec {box.container} nc -z {target.name} <port>`; if names do not resolve "
            "although both are on the network, recreate it (step 3: `docker-compose down`, `docker-compose up -d`)"
        )
    details.append(f"probed from {box.container}; {box.describe()}")
    proposals = []
    misses = resolution.resolved is not True or not set(resolution.addresses) & target.expected
    if status is Status.CRIT and misses and target.container_id:
        proposals.append(
            reconnect_proposal(
                target.container, target.container_id, target.network, target.name, target.aliases, box.container, title
            )
        )
    data = {
        "name": target.name,
        "resolved": resolution.resolved,
        "addresses": resolution.addresses,
        "dns_tool": resolution.tool,
        "tcp": {str(c.port): {"state": c.state, "tool": c.tool} for c in connections},
        "expected": sorted(target.expected),
    }
    return Finding(status, component, title, details=details, data=data, proposals=proposals)


def _not_probed(api: Member, peer: Member, shared: set[str]) -> Finding | None:
    """The finding for a peer the API cannot reach whatever DNS says, or None when it is worth probing."""
    component = f"{api.name} → {peer.name}"
    if peer.raw is None:
        return Finding.crit(
            component, "no such container: nothing answers to its name", details=["`docker-compose up -d` creates it"]
        )
    info = peer.info
    if not info.state.running:
        if info.state.exit_code == 0 and info.restart_policy in ("", "no"):
            return Finding.ok(component, "a one-shot container that exited 0: not expected to answer")
        return Finding.crit(
            component,
            f"{info.state.status} (exit code {info.state.exit_code}): not running, so its name does not resolve",
            details=["`app` (or `docker logs`) says why it stopped"],
        )
    if not shared:
        theirs = ", ".join(peer.endpoints) or "none"
        return Finding.crit(
            component,
            f"shares no network with {api.name}: its name cannot resolve there",
            details=[
                f"{api.name} is on {', '.join(api.endpoints) or 'none'}; {peer.name} on {theirs}",
                f"`docker network connect <network> {peer.name}`, or fix `networks:` in docker-compose.yml",
            ],
        )
    return None


def targets_of(found: Survey) -> tuple[list[Target | Finding], dict[str, Target]]:
    """One probe target (or a finding without a probe) per peer, and the targets by every name they answer to."""
    api = found.api_member
    api_networks = set(api.endpoints)
    planned: list[Target | Finding] = []
    by_name: dict[str, Target] = {}
    for peer in found.members.values():
        if peer.name == api.name:
            continue
        shared = api_networks & set(peer.endpoints)
        finding = _not_probed(api, peer, shared)
        if finding is not None:
            planned.append(finding)
            continue
        target = Target(peer.service_name(shared), peer.name, peer.exposed_tcp_ports(), peer.addresses(shared))
        target.container_id, target.network = peer.info.id, sorted(shared)[0]
        target.aliases = list(dict.fromkeys([target.name, *peer.aliases({target.network})]))
        planned.append(target)
        for name in {peer.name, target.name, *peer.aliases(shared)}:
            by_name[name] = target
    return planned, by_name


@runbook.check("net", component="Service discovery", section=NAMES, timeout=30, proposes=("docker.reconnect",))
async def service_discovery(ctx: CheckContext) -> list[Finding]:
    found = await survey(ctx)
    api = found.api_member
    component = f"Service discovery from {api.name}"
    if api.raw is None:
        return [Finding.crit(component, f"no container {api.name}: nothing to probe from")]
    if not api.info.state.running:
        return [Finding.crit(component, f"{api.name} is {api.info.state.status}: cannot look from inside it")]
    planned, by_name = targets_of(found)
    for setting, host, port in url_targets(api.raw):
        target = by_name.get(host)
        if target is None:
            target = by_name[host] = Target(host, host)
            planned.append(target)
        target.settings.append(f"{setting} ({host}:{port})")
        if port not in target.ports:
            target.ports.append(port)
    box = await probes.toolbox(ctx.targets.docker, api.name)
    gate = asyncio.Semaphore(PROBE_CONCURRENCY)

    async def finding_for(item: Target | Finding) -> Finding:
        if isinstance(item, Finding):
            return item
        return await probe_target(ctx, box, item, gate, f"{api.name} → {item.container}")

    findings = list(await asyncio.gather(*(finding_for(item) for item in planned)))
    if not findings:
        findings.append(Finding.ok(component, "no other watched container to reach", details=[box.describe()]))
    return findings


# --- published ports --------------------------------------------------------------------------


def engine_host(docker_host: str | None) -> str | None:
    """Where published ports can be reached from the bot: this host for a local engine, else the engine's
    host; None when that cannot be known."""
    if not docker_host or docker_host.startswith("unix://"):
        return "127.0.0.1"
    return urlsplit(docker_host).hostname


async def knock(host: str, port: int) -> str:
    """'listening', 'refused', 'timeout', 'closed at once' (a proxy with no listener behind it) or an error."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), HOST_CONNECT_SECONDS)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    try:
        first = await asyncio.wait_for(reader.read(1), PROXY_CLOSE_WINDOW)
    except TimeoutError:
        return "listening"  # it waits for the client to speak first, as PostgreSQL, Redis and HTTP do
    except OSError:
        return "closed at once"
    finally:
        writer.transport.abort()
    return "listening" if first else "closed at once"


def _bind_target(binding: PortBinding, host: str | None) -> str | None:
    if binding.host_ip in ("", "0.0.0.0", "::"):
        return host
    if binding.host_ip.startswith("127.") or binding.host_ip == "::1":
        return binding.host_ip if host in ("127.0.0.1", None) or (host or "").startswith("127.") else None
    return binding.host_ip


async def published_line(info: ContainerInfo, binding: PortBinding, host: str | None) -> tuple[Status, str]:
    where = f"{binding.host_ip or '*'}:{binding.host_port or '(random)'} → {binding.container_port}/{binding.protocol}"
    if not info.state.running:
        return Status.CRIT, f"{where}: {info.name} is {info.state.status}, nothing is published"
    if binding.protocol != "tcp" or not binding.host_port.isdigit():
        return Status.OK, f"{where}: not tested ({binding.protocol}, {binding.host_port or 'random port'})"
    target = _bind_target(binding, host)
    if target is None:
        return Status.OK, f"{where}: bound to the engine host's loopback, not reachable from the bot"
    state = await knock(target, int(binding.host_port))
    if state == "listening":
        return Status.OK, f"{where}: listening"
    if state == "closed at once":
        return Status.CRIT, (
            f"{where}: the engine accepts, then hangs up — nothing in {info.name} listens on {binding.container_port}"
        )
    return Status.CRIT, f"{where}: {state} from {target}"


@runbook.check("net", component="Published ports", section=SECTION, timeout=15)
async def published_ports(ctx: CheckContext) -> list[Finding]:
    found = await survey(ctx)
    infos = [m.info for m in found.members.values() if m.raw is not None]
    host = engine_host(ctx.settings.docker_host)
    findings = []
    for info in infos:
        if not info.ports:
            continue
        lines = await asyncio.gather(*(published_line(info, binding, host) for binding in info.ports))
        status = worst(s for s, _ in lines)
        worst_line = next(line for s, line in lines if s is status)
        findings.append(
            Finding(
                status,
                f"Published {info.name}",
                worst_line,
                details=[line for _, line in lines],
                data={"ports": [line for _, line in lines]},
            )
        )
    conflicts = port_conflicts(infos)
    if conflicts:
        findings.append(Finding.crit("Published ports", conflicts[0], details=conflicts))
    if not findings:
        findings.append(Finding.ok("Published ports", "no watched container publishes a port"))
    return findings


# --- alerts ----------------------------------------------------------------------------------

runbook.triage_for(
    "NetworkErrors",
    "ServiceDiscoveryFailure",
    checks=("service_discovery", "compose_networks", "published_ports"),
    match=name_matches(r"network|dns|discovery"),
)
