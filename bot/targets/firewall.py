"""Firewalls the bot bans addresses on: a table of its own in nftables, or a fail2ban jail.

Both are driven through their command-line tools as argument lists (never a shell), each call under a
timeout. Errors are `FirewallError`s: `FirewallUnavailable` when the tool is missing or may not act,
`FirewallUnreachable` (also a `ConnectionError`, so checks report "unreachable") when it does not answer
or what it should act on is not there, `NotBanned` when an unban finds nothing to remove.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.redact import shorten

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TABLE = "erpgo_chatops"
DEFAULT_TIMEOUT = 5.0
# Before the usual filter chains (priority 0), so a ban wins over whatever accepts the traffic later.
HOOK_PRIORITY = -10
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_MESSAGE_LIMIT = 300


class FirewallError(Exception):
    """The firewall did not do what was asked; the message says why in the tool's own words."""


class FirewallUnavailable(FirewallError):
    """The firewall tool is missing, or this process may not use it (permissions, sudo)."""


class FirewallUnreachable(FirewallError, ConnectionError):
    """The firewall did not answer in time, or what it should act on (namespace, server) is not there."""


class NotBanned(FirewallError):
    """An unban found no ban for exactly this network (it expired, was removed, or never existed)."""

    def __init__(self, network: Network, covered_by: Sequence[Network] = ()):
        message = f"{network} is not banned"
        if covered_by:
            message += "; it is inside " + ", ".join(str(net) for net in covered_by) + ", which stays banned"
        super().__init__(message)
        self.network = network
        self.covered_by = list(covered_by)


@dataclass(frozen=True)
class BanEntry:
    """A ban the firewall holds now; `expires_in` is the seconds left, None when it never expires."""

    network: Network
    expires_in: float | None


class FirewallBackend(Protocol):
    name: str
    # False when the backend applies its own ban time whatever duration is asked for (fail2ban).
    honours_duration: bool

    async def ensure(self) -> None:
        """Make the firewall ready to hold bans; safe to call any number of times."""

    async def ready(self) -> None:
        """Raise unless bans would work, changing nothing (`nft -c`, or the jail's status)."""

    async def ban(self, network: Network, seconds: int) -> BanEntry:
        """Ban `network`, replacing any ban of exactly that network; returns the ban as now held."""

    async def unban(self, network: Network) -> None:
        """Lift the ban of exactly `network`; NotBanned when there is none."""

    async def banned(self) -> list[BanEntry]:
        """Every ban the firewall holds now."""


@dataclass(frozen=True)
class _Completed:
    returncode: int
    stdout: str
    stderr: str


async def _run(argv: Sequence[str], timeout: float, stdin: str | None = None) -> _Completed:
    """Run `argv` with a deadline; the process is killed if the deadline passes or the caller gives up."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise FirewallUnavailable(f"{argv[0]} is not installed (not found on PATH)") from None
    except PermissionError:
        raise FirewallUnavailable(f"{argv[0]} may not be run by this user") from None
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        raise FirewallUnreachable(f"{' '.join(argv)} did not finish within {timeout:g}s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return _Completed(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def _short(text: str) -> str:
    text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return shorten(text, _MESSAGE_LIMIT)


def _json(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError:
        raise FirewallError(f"nft -j did not print JSON: {_short(text)!r}") from None
    if not isinstance(document, dict):
        raise FirewallError(f"nft -j printed unexpected JSON: {_short(text)!r}")
    return document


def _networks_of(value: Any) -> list[Network]:
    """An nft JSON set value as networks: "1.2.3.4", {"prefix": {...}} or {"range": [first, last]}."""
    if isinstance(value, str):
        return [ipaddress.ip_network(value)]
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return [ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")]
    if isinstance(value, dict) and "range" in value:
        first, last = (ipaddress.ip_address(end) for end in value["range"])
        return list(ipaddress.summarize_address_range(first, last))
    raise FirewallError(f"nft listed a set element the bot does not understand: {_short(json.dumps(value))}")


def _entries_of(element: Any) -> list[BanEntry]:
    """{"elem": {"val": V, "timeout": T, "expires": E}} for elements with a timeout, else the bare value."""
    if isinstance(element, dict) and "elem" in element:
        inner = element["elem"]
        expires = inner.get("expires", inner.get("timeout"))
        expires_in = float(expires) if expires is not None else None
        return [BanEntry(network, expires_in) for network in _networks_of(inner["val"])]
    return [BanEntry(network, None) for network in _networks_of(element)]


class Nftables:
    """Bans as elements of two sets in a table of the bot's own; the kernel expires them (element
    timeouts), so a ban ends on time even while the bot is down. Drop rules sit on both the input and
    the forward hook: ports Docker publishes are forwarded to containers and never pass input.

    `command` runs nft: ["nft"], ["sudo", "-n", "nft"], ["ip", "netns", "exec", "edge", "nft"]...
    """

    name = "nftables"
    honours_duration = True

    def __init__(self, command: Sequence[str] = ("nft",), table: str = DEFAULT_TABLE, timeout: float = DEFAULT_TIMEOUT):
        if not command:
            raise ValueError("the nft command is empty")
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"not a usable nft table name: {table!r}")
        self.command = list(command)
        self.table = table
        self.timeout = timeout

    def ruleset(self) -> str:
        """The nft script that creates the table, sets and chains if missing. Existing set elements
        (the bans) are kept; the chains' rules are replaced, so repeating it never duplicates a rule."""
        table = f"inet {self.table}"
        lines = [f"add table {table}"]
        for set_name, address_type in (("banned_v4", "ipv4_addr"), ("banned_v6", "ipv6_addr")):
            lines.append(f"add set {table} {set_name} {{ type {address_type}; flags interval, timeout; }}")
        for hook in ("input", "forward"):
            lines += [
                f"add chain {table} {hook} {{ type filter hook {hook} priority {HOOK_PRIORITY}; policy accept; }}",
                f"flush chain {table} {hook}",
                f"add rule {table} {hook} ip saddr @banned_v4 drop",
                f"add rule {table} {hook} ip6 saddr @banned_v6 drop",
            ]
        return "\n".join(lines) + "\n"

    async def ensure(self) -> None:
        await self._apply(self.ruleset())

    async def ready(self) -> None:
        result = await self._nft("-c", "-f", "-", stdin=self.ruleset())  # -c: checked, never applied
        if result.returncode != 0:
            raise self._error(result)

    async def ban(self, network: Network, seconds: int) -> BanEntry:
        if seconds < 1:
            raise ValueError(f"a ban lasts at least one second, not {seconds}")
        # One transaction: the table is (re)made, then add-delete-add replaces any ban of exactly this
        # network with one of the new duration (a plain add would leave an existing element's timeout alone
        # on older kernels). A ban therefore also works after someone flushed the ruleset.
        where = f"inet {self.table} {self._set_for(network)}"
        script = self.ruleset() + (
            f"add element {where} {{ {network} }}\n"
            f"delete element {where} {{ {network} }}\n"
            f"add element {where} {{ {network} timeout {int(seconds)}s }}\n"
        )
        await self._apply(script)
        return BanEntry(network, float(seconds))

    async def unban(self, network: Network) -> None:
        try:
            await self._apply(f"delete element inet {self.table} {self._set_for(network)} {{ {network} }}\n")
        except (FirewallUnavailable, FirewallUnreachable):
            raise
        except FirewallError:
            held = [entry.network for entry in await self.banned()]
            if network in held:
                raise
            raise NotBanned(network, [other for other in held if _contains(other, network)]) from None

    async def banned(self) -> list[BanEntry]:
        result = await self._nft("-j", "list", "table", "inet", self.table)
        if result.returncode != 0:
            error = self._error(result)
            if type(error) is FirewallError and not await self._table_exists():
                return []
            raise error
        entries: list[BanEntry] = []
        for item in _json(result.stdout).get("nftables", []):
            found = item.get("set")
            if found and found.get("name") in ("banned_v4", "banned_v6"):
                for element in found.get("elem", []):
                    entries += _entries_of(element)
        return entries

    @staticmethod
    def _set_for(network: Network) -> str:
        return "banned_v4" if network.version == 4 else "banned_v6"

    async def _table_exists(self) -> bool:
        result = await self._nft("-j", "list", "tables", "inet")
        if result.returncode != 0:
            raise self._error(result)
        tables = (item.get("table", {}) for item in _json(result.stdout).get("nftables", []))
        return any(table.get("name") == self.table for table in tables)

    async def _apply(self, script: str) -> None:
        result = await self._nft("-f", "-", stdin=script)
        if result.returncode != 0:
            raise self._error(result)

    async def _nft(self, *args: str, stdin: str | None = None) -> _Completed:
        return await _run([*self.command, *args], self.timeout, stdin)

    def _error(self, result: _Completed) -> FirewallError:
        message = _short(result.stderr) or f"exit status {result.returncode}"
        lowered = message.lower()
        if "operation not permitted" in lowered or "permission denied" in lowered or "password is required" in lowered:
            return FirewallUnavailable(f"{' '.join(self.command)} may not change the firewall: {message}")
        if "exec of" in lowered or result.returncode in (126, 127):
            return FirewallUnavailable(f"{' '.join(self.command)} could not run nft: {message}")
        if "cannot open network namespace" in lowered:
            return FirewallUnreachable(message)
        return FirewallError(f"nft: {message}")


def _contains(outer: Network, inner: Network) -> bool:
    return outer.version == inner.version and outer != inner and inner.subnet_of(outer)  # type: ignore[arg-type]


_F2B_BAN_LINE = re.compile(
    r"^(?P<address>\S+)\s+(?P<start>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+ (?P<bantime>-?\d+) = "
    r"(?P<end>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$"
)
_F2B_ERROR = re.compile(r"\bERROR\s+(?P<message>.*)$", re.MULTILINE)


class Fail2ban:
    """Bans in a fail2ban jail, for sites where fail2ban already owns the firewall. fail2ban decides
    how long a ban lasts (the jail's bantime, possibly grown by bantime.increment): `banip` takes no
    duration, so `ban` ignores `seconds` and returns the ban as fail2ban really holds it."""

    name = "fail2ban"
    honours_duration = False

    def __init__(
        self,
        *,
        jail: str,
        client: Sequence[str] = ("fail2ban-client",),
        socket: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        if not jail or not jail.isprintable() or jail.startswith("-") or " " in jail:
            raise ValueError(f"not a usable fail2ban jail name: {jail!r}")
        if not client:
            raise ValueError("the fail2ban-client command is empty")
        self.jail = jail
        self.client = list(client)
        self.socket = socket
        self.timeout = timeout

    async def ensure(self) -> None:
        await self._client("status", self.jail)

    async def ready(self) -> None:
        await self._client("status", self.jail)

    async def ban(self, network: Network, seconds: int) -> BanEntry:
        await self._client("set", self.jail, "banip", _f2b_address(network))
        for entry in await self.banned():
            if entry.network == network:
                return entry
        raise FirewallError(f"fail2ban did not ban {network}: it does not list it after banip")

    async def unban(self, network: Network) -> None:
        try:
            await self._client("set", self.jail, "unbanip", "--report-absent", _f2b_address(network))
        except FirewallError as exc:
            if type(exc) is FirewallError and "not banned" in str(exc):
                raise NotBanned(network) from None
            raise

    async def banned(self) -> list[BanEntry]:
        output = await self._client("get", self.jail, "banip", "--with-time")
        now = time.time()
        entries = []
        for line in output.splitlines():
            match = _F2B_BAN_LINE.match(line.strip())
            if match is None:
                continue
            try:
                network = ipaddress.ip_network(match["address"])
            except ValueError:
                continue  # fail2ban also holds bans of names it could not resolve; nothing to list for them
            entries.append(BanEntry(network, _f2b_expires_in(match, now)))
        return entries

    async def _client(self, *words: str) -> str:
        argv = [*self.client, *(["-s", self.socket] if self.socket else []), *words]
        result = await _run(argv, self.timeout)
        if result.returncode != 0:
            raise self._error(result)
        return result.stdout

    def _error(self, result: _Completed) -> FirewallError:
        # On a refused command fail2ban-client prints the server's answer on stdout ("Sorry but the jail 'x' does
        # not exist", "not banned: [...]") and its own complaint ("ERROR ...") on stderr.
        found = _F2B_ERROR.findall(result.stderr)
        message = _short(result.stdout) or _short(found[-1] if found else result.stderr)
        message = message or f"exit status {result.returncode}"
        if "failed to access socket" in message.lower():
            return FirewallUnreachable(f"fail2ban is not running: {message}")
        if "permission denied" in message.lower():
            return FirewallUnavailable(f"fail2ban-client may not talk to the server: {message}")
        if "does not exist" in message.lower():
            return FirewallError(f"fail2ban has no jail {self.jail!r}: {message}")
        return FirewallError(f"fail2ban: {message}")


def _f2b_address(network: Network) -> str:
    """fail2ban lists single addresses without a prefix; speak the same way so bans compare equal."""
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _f2b_expires_in(match: re.Match[str], now: float) -> float | None:
    if int(match["bantime"]) < 0:
        return None
    end = time.mktime(time.strptime(match["end"], "%Y-%m-%d %H:%M:%S"))  # fail2ban prints local time
    return max(0.0, end - now)
