"""What may be banned and for how long: refusals say why, documentation ranges may be banned."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbooks.security.guards import Network, ban_refusal, own_addresses, parse_duration

ALLOWLIST = ["192.0.2.0/28", "2001:db8:aaaa::/48"]
OWN = ["10.20.30.40", "fd00::2"]
PROTECTED = ["172.18.0.0/16", "fd42::/64"]


def check(text: str, **overrides: object) -> tuple[Network | None, str | None]:
    settings: dict[str, object] = {"allowlist": ALLOWLIST, "own_addresses": OWN, "protected_networks": PROTECTED}
    settings.update(overrides)
    return ban_refusal(text, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, because",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.5", "overlaps 192.0.2.0/28, in ERPGO_BAN_ALLOWLIST"),
        ("192.0.2.0/24", "overlaps 192.0.2.0/28"),
        ("2001:db8:aaaa:1::9", "ERPGO_BAN_ALLOWLIST"),
        ("10.0.0.0/8", "too wide"),
        ("203.0.112.0/23", "at most a /24"),
        ("2001:db8::/40", "at most a /48"),
        ("10.20.30.40", "an address of the bot's own host"),
        ("10.20.30.0/24", "contains 10.20.30.40"),
        ("172.18.0.5", "overlaps 172.18.0.0/16, a network of the deployment"),
        ("fd42::7", "a network of the deployment"),
        ("::ffff:198.51.100.2", "IPv4-mapped"),
        ("not-an-ip", "not an IP address"),
        ("198.51.100.300", "not an IP address"),
        ("", "give an IP address"),
    ],
)
def test_refusals_say_why(text: str, because: str) -> None:
    network, reason = check(text)
    assert network is None
    assert reason is not None and because in reason


@pytest.mark.parametrize(
    "text, banned",
    [
        ("198.51.100.2", "198.51.100.2/32"),
        (" 198.51.100.2/32 ", "198.51.100.2/32"),
        ("2001:db8::2", "2001:db8::2/128"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("2001:db8:1::/48", "2001:db8:1::/48"),
        ("10.9.8.7", "10.9.8.7/32"),  # private: attackers inside a VPN exist
        ("fd00::9", "fd00::9/128"),
    ],
)
def test_documentation_and_private_addresses_may_be_banned(text: str, banned: str) -> None:
    assert check(text) == (ipaddress.ip_network(banned), None)


def test_host_bits_are_cleared_and_said() -> None:
    network, note = check("198.51.100.7/24")
    assert network == ipaddress.ip_network("198.51.100.0/24")
    assert note == "198.51.100.7/24 has host bits set; the range banned is 198.51.100.0/24"


def test_wider_limits_can_be_configured() -> None:
    assert check("203.0.112.0/23", max_prefix_v4=16)[0] == ipaddress.ip_network("203.0.112.0/23")


@pytest.mark.parametrize("setting", ["allowlist", "protected_networks", "own_addresses"])
def test_an_unreadable_safety_setting_refuses_every_ban(setting: str) -> None:
    network, reason = check("198.51.100.2", **{setting: ["10.0.0.0/33"]})
    assert network is None
    assert reason is not None and "no ban is safe" in reason


@given(st.text(max_size=80))
def test_any_text_gets_a_network_or_a_reason(text: str) -> None:
    network, reason = check(text)
    assert network is not None or reason


@given(st.ip_addresses())
def test_any_address_gets_a_network_or_a_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    network, reason = check(str(address))
    assert (network is None) != (reason is None)
    if network is not None:
        assert not (network.is_loopback or network.is_link_local or network.is_multicast or network.is_unspecified)


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("30m", 1800), ("4h", 14400), ("7d", 604800), ("1w", 604800), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text, because",
    [
        ("", "give a duration"),
        ("30", "has no unit"),
        ("30x", "not a duration"),
        ("-5m", "not a duration"),
        ("1.5h", "not a duration"),
        ("0m", "at least one second"),
        ("forever", "not a duration"),
    ],
)
def test_bad_durations_say_why(text: str, because: str) -> None:
    with pytest.raises(ValueError, match=because):
        parse_duration(text)


def test_duration_above_the_maximum_is_refused() -> None:
    assert parse_duration("7d", maximum=7 * 86400) == 7 * 86400
    with pytest.raises(ValueError, match=r"longer than the longest ban allowed \(7d\)"):
        parse_duration("8d", maximum=7 * 86400)


def test_own_addresses_lists_this_hosts_loopback() -> None:
    assert "127.0.0.1" in own_addresses()


def test_own_addresses_without_proc_is_empty(tmp_path: Path) -> None:
    assert own_addresses(tmp_path) == []
