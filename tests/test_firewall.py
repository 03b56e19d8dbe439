"""Bans on real firewalls: nft inside a network namespace made by the test, and a real fail2ban-server."""

from __future__ import annotations

import ipaddress
import sys

import pytest

from bot.targets.firewall import (
    BanEntry,
    Fail2ban,
    FirewallError,
    FirewallUnavailable,
    FirewallUnreachable,
    Nftables,
    NotBanned,
)
from tests.fixtures.network import EdgeNetwork, Fail2banServer, run
from tests.support import eventually_sync


def host(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(address)


async def test_ban_stops_only_the_banned_address_until_unbanned(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    attacker, bystander = edge_network.attacker_ip, edge_network.second_attacker_ip
    assert edge_network.attacker_can_connect(attacker)

    entry = await firewall.ban(host(attacker), 60)

    assert entry == BanEntry(host(attacker), 60.0)
    assert not edge_network.attacker_can_connect(attacker)
    assert edge_network.attacker_can_connect(bystander)
    [held] = await firewall.banned()
    assert held.network == host(attacker)
    assert held.expires_in is not None and 50 < held.expires_in <= 60

    await firewall.unban(host(attacker))

    assert edge_network.attacker_can_connect(attacker)
    assert await firewall.banned() == []


async def test_short_ban_expires_by_itself_with_nothing_of_ours_running(edge_network: EdgeNetwork) -> None:
    attacker = edge_network.attacker_ip
    await Nftables(edge_network.nft_command).ban(host(attacker), 2)
    assert not edge_network.attacker_can_connect(attacker)

    eventually_sync(lambda: edge_network.attacker_can_connect(attacker), timeout=8, what="the 2-second ban expiring")

    assert await Nftables(edge_network.nft_command).banned() == []


async def test_ipv6_ban_spares_the_neighbour_and_the_ipv4_side(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    attacker = edge_network.attacker_ip6
    assert edge_network.attacker_can_connect(attacker)

    await firewall.ban(host(attacker), 60)

    assert not edge_network.attacker_can_connect(attacker)
    assert edge_network.attacker_can_connect(edge_network.second_attacker_ip6)
    assert edge_network.attacker_can_connect(edge_network.attacker_ip)
    assert [entry.network for entry in await firewall.banned()] == [host(attacker)]


async def test_banning_a_range_covers_every_address_in_it(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    await firewall.ban(ipaddress.ip_network("198.51.100.2/31"), 60)

    assert not edge_network.attacker_can_connect(edge_network.attacker_ip)
    assert not edge_network.attacker_can_connect(edge_network.second_attacker_ip)
    with pytest.raises(FirewallError, match="overlaps"):
        await firewall.ban(host(edge_network.attacker_ip), 60)
    with pytest.raises(NotBanned, match=r"inside 198\.51\.100\.2/31"):
        await firewall.unban(host(edge_network.attacker_ip))
    await firewall.unban(ipaddress.ip_network("198.51.100.2/31"))
    assert edge_network.attacker_can_connect(edge_network.attacker_ip)


async def test_banning_again_sets_the_new_duration(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    await firewall.ban(host(edge_network.attacker_ip), 3600)

    await firewall.ban(host(edge_network.attacker_ip), 120)

    [held] = await firewall.banned()
    assert held.expires_in is not None and held.expires_in <= 120
    assert not edge_network.attacker_can_connect(edge_network.attacker_ip)


async def test_ensure_is_repeatable_and_keeps_bans(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    await firewall.ensure()
    await firewall.ban(host(edge_network.attacker_ip), 60)

    await firewall.ensure()
    await firewall.ensure()

    assert [entry.network for entry in await firewall.banned()] == [host(edge_network.attacker_ip)]
    assert not edge_network.attacker_can_connect(edge_network.attacker_ip)
    listing = run([*edge_network.nft_command, "list", "table", "inet", "erpgo_chatops"]).stdout
    assert listing.count("ip saddr @banned_v4 drop") == 2  # once on input, once on forward
    assert "hook input" in listing and "hook forward" in listing


async def test_a_ban_rebuilds_a_table_someone_flushed(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    await firewall.ensure()
    run([*edge_network.nft_command, "flush", "ruleset"])
    assert await firewall.banned() == []

    await firewall.ban(host(edge_network.attacker_ip), 60)

    assert not edge_network.attacker_can_connect(edge_network.attacker_ip)


async def test_unbanning_what_is_not_banned_says_so(edge_network: EdgeNetwork) -> None:
    firewall = Nftables(edge_network.nft_command)
    await firewall.ensure()
    with pytest.raises(NotBanned, match=r"198\.51\.100\.2/32 is not banned"):
        await firewall.unban(host(edge_network.attacker_ip))


async def test_missing_nft_and_missing_namespace_are_told_apart(edge_network: EdgeNetwork) -> None:
    with pytest.raises(FirewallUnavailable, match="not installed"):
        await Nftables(["nft-is-not-here"]).banned()
    with pytest.raises(FirewallUnreachable, match="network namespace"):
        await Nftables(["ip", "netns", "exec", f"{edge_network.edge}-gone", "nft"]).ensure()
    with pytest.raises(FirewallUnavailable, match="may not change the firewall"):
        await Nftables(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *edge_network.nft_command]
        ).ensure()


async def test_nft_that_hangs_is_cut_off(edge_network: EdgeNetwork) -> None:
    hanging = Nftables(
        ["ip", "netns", "exec", edge_network.edge, sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5
    )
    with pytest.raises(FirewallUnreachable, match=r"did not finish within 0\.5s"):
        await hanging.ensure()
    assert isinstance(FirewallUnreachable("x"), ConnectionError)


async def test_fail2ban_ban_list_unban(fail2ban_server: Fail2banServer) -> None:
    jail = Fail2ban(jail=fail2ban_server.jail, socket=fail2ban_server.socket)
    await jail.ensure()

    entry = await jail.ban(host("198.51.100.2"), 600)
    await jail.ban(ipaddress.ip_network("2001:db8:5::/48"), 600)

    # fail2ban applies the jail's bantime (1 h here), whatever was asked for.
    assert entry.network == host("198.51.100.2")
    assert entry.expires_in is not None and 3500 < entry.expires_in <= 3600
    held_networks = {held.network for held in await jail.banned()}
    assert held_networks == {host("198.51.100.2"), ipaddress.ip_network("2001:db8:5::/48")}
    assert "+198.51.100.2" in fail2ban_server.actions_log.read_text().split()

    await jail.unban(host("198.51.100.2"))

    assert [held.network for held in await jail.banned()] == [ipaddress.ip_network("2001:db8:5::/48")]
    assert "-198.51.100.2" in fail2ban_server.actions_log.read_text().split()
    with pytest.raises(NotBanned):
        await jail.unban(host("198.51.100.2"))


async def test_fail2ban_missing_jail_and_stopped_server(fail2ban_server: Fail2banServer) -> None:
    with pytest.raises(FirewallError, match="no jail 'nope'"):
        await Fail2ban(jail="nope", socket=fail2ban_server.socket).ensure()
    with pytest.raises(FirewallUnreachable, match="not running"):
        await Fail2ban(jail="erpgo", socket=f"{fail2ban_server.socket}.gone").banned()
