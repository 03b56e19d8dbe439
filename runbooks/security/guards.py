"""What may be banned, and for how long. Checked before a ban is proposed and again before it runs.

Documentation and private ranges may be banned (attackers inside a VPN exist); addresses that can
never be an attacker's, or whose ban would cut the deployment off from itself, may not.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

from bot.core import units

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHOWN_LIMIT = 60

# (range, what it is and why a ban on it is refused)
_NEVER_BANNED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", 'the unspecified ("this network") range, never a real source'),
        ("127.0.0.0/8", "loopback: banning it cuts this host off from itself"),
        ("169.254.0.0/16", "link-local: it only reaches the local link (neighbours, cloud metadata)"),
        ("224.0.0.0/4", "multicast, never the source of a connection"),
        ("240.0.0.0/4", "reserved (including the broadcast address), never a real source"),
        ("::/128", "the unspecified address, never a real source"),
        ("::1/128", "loopback: banning it cuts this host off from itself"),
        ("fe80::/10", "link-local: it only reaches the local link (neighbours, routers)"),
        ("ff00::/8", "multicast, never the source of a connection"),
    )
)


def ban_refusal(
    network_text: str,
    *,
    allowlist: Sequence[str],
    own_addresses: Sequence[str],
    protected_networks: Sequence[str],
    max_prefix_v4: int = 24,
    max_prefix_v6: int = 48,
) -> tuple[Network | None, str | None]:
    """(network, None) when `network_text` may be banned; (None, reason) when it may not.

    A range typed with host bits set (198.51.100.7/24) is accepted as its network, and then the second
    item is a note saying so: `network is None` is the only sign of a refusal. Never raises; an
    unparsable allowlist, own address or protected network refuses every ban (it fails closed).
    """
    network, problem = _parse(network_text)
    if network is None:
        return None, problem
    reason = (
        _too_wide(network, max_prefix_v4, max_prefix_v6)
        or _special(network)
        or _own(network, own_addresses)
        or _overlap(network, protected_networks, "a network of the deployment (Docker)", "protected network")
        or _overlap(network, allowlist, "in ERPGO_BAN_ALLOWLIST", "ERPGO_BAN_ALLOWLIST entry")
    )
    if reason:
        return None, reason
    return network, problem


def parse_duration(text: str, *, maximum: int | None = None) -> int:
    """A ban's duration ("30m", "4h", "7d", "1h30m") in seconds; ValueError says what is wrong."""
    return units.parse_duration(text, maximum=maximum, what="ban")


def own_addresses(proc: Path = Path("/proc/net")) -> list[str]:
    """This host's (or container's) interface addresses, from /proc; empty when it cannot be read."""
    return _local_ipv4(proc / "fib_trie") + _local_ipv6(proc / "if_inet6")


def _parse(text: str) -> tuple[Network | None, str | None]:
    cleaned = text.strip() if isinstance(text, str) else ""
    if not cleaned:
        return None, "give an IP address or a CIDR range to ban"
    try:
        network = ipaddress.ip_network(cleaned, strict=False)
    except (ValueError, TypeError):
        return None, f"{_shown(cleaned)} is not an IP address or CIDR range"
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        return None, f"{network} is an IPv4-mapped IPv6 range: ban the IPv4 address itself"
    return network, _host_bits_note(cleaned, network)


def _host_bits_note(cleaned: str, network: Network) -> str | None:
    if "/" not in cleaned:
        return None
    try:
        typed = ipaddress.ip_interface(cleaned).ip
    except ValueError:
        return None
    return None if typed == network.network_address else f"{cleaned} has host bits set; the range banned is {network}"


def _too_wide(network: Network, max_prefix_v4: int, max_prefix_v6: int) -> str | None:
    narrowest = max_prefix_v4 if network.version == 4 else max_prefix_v6
    if network.prefixlen >= narrowest:
        return None
    return (
        f"{network} is too wide ({network.num_addresses:,} addresses): "
        f"an IPv{network.version} ban may cover at most a /{narrowest}"
    )


def _special(network: Network) -> str | None:
    for special, why in _NEVER_BANNED:
        if _overlaps(network, special):
            inside = network.prefixlen >= special.prefixlen
            return f"{network} is {why}" if inside else f"{network} includes {special}, {why}"
    return None


def _own(network: Network, addresses: Iterable[str]) -> str | None:
    for text in addresses:
        try:
            address: Address = ipaddress.ip_interface(text.strip()).ip
        except (ValueError, TypeError, AttributeError):
            return f"this host's address {_shown(str(text))} cannot be read, so no ban is safe; fix it first"
        if address.version == network.version and address in network:
            return f"{network} contains {address}, an address of the bot's own host"
    return None


def _overlap(network: Network, ranges: Iterable[str], what: str, setting: str) -> str | None:
    for text in ranges:
        try:
            other = ipaddress.ip_network(text.strip(), strict=False)
        except (ValueError, TypeError, AttributeError):
            return f"the {setting} {_shown(str(text))} is not a CIDR range, so no ban is safe; fix it first"
        if _overlaps(network, other):
            return f"{network} overlaps {other}, {what}"
    return None


def _overlaps(one: Network, other: Network) -> bool:
    return one.version == other.version and one.overlaps(other)


def _shown(text: str) -> str:
    text = text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"
    return repr(text)


def _local_ipv4(fib_trie: Path) -> list[str]:
    """Addresses the kernel routes as "/32 host LOCAL": the line before names the address."""
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL" and "|--" in previous:
            address = previous.split("|--", 1)[1].strip()
            if address not in found:
                found.append(address)
    return found


def _local_ipv6(if_inet6: Path) -> list[str]:
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            try:
                address = str(ipaddress.IPv6Address(int(fields[0], 16)))
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return found
