"""`/erpgo ban`, `bans`, `unban` through the real bot: proposals approved by a second person, bans on a
real nftables firewall inside a network namespace made by the test (an attacker namespace trying to
reach an HTTP server), a real fail2ban-server, and the bot's own database recording who did what."""

from __future__ import annotations

import asyncio
import copy

import asyncpg
import pytest

from tests.fixtures.network import EdgeNetwork, Fail2banServer, run
from tests.security_support import POLICY, approve, can_connect, content
from tests.security_support import run as command
from tests.support import eventually


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def nft_settings(fresh_database, policy_file, edge_network: EdgeNetwork) -> dict:
    return {
        "bot_database_url": fresh_database("bot"),
        "chatops_policy_file": policy_file,
        "erpgo_firewall": "nftables",
        "erpgo_firewall_command": " ".join(edge_network.nft_command),
    }


async def ledger(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM bans ORDER BY id")
    finally:
        await conn.close()


async def ban(bot, words: str, approver: str = "U0BOB") -> str:
    """Propose `ban <words>` as U0ALICE and approve it as `approver`; the approval message afterwards."""
    _, approvals = await command(bot, f"ban {words}")
    [message] = approvals
    return await approve(bot, message, approver)


async def test_approved_ban_stops_the_attacker_and_unban_lets_it_back(start_bot, nft_settings, edge_network):
    attacker, bystander = edge_network.attacker_ip, edge_network.second_attacker_ip
    bot = await start_bot(**nft_settings)
    assert await can_connect(edge_network, attacker) and await can_connect(edge_network, bystander)

    text, approvals = await command(bot, "ban 198.51.100.2 4h credential stuffing on /login")
    [message] = approvals
    proposal = content(message)
    assert "Ban 198.51.100.2 for 4h on nftables" in proposal and "credential stuffing on /login" in proposal
    assert "add element inet erpgo_chatops banned_v4 { 198.51.100.2/32 timeout 14400s }" in proposal
    assert await can_connect(edge_network, attacker), "proposing bans nothing"

    decided = await approve(bot, message, "U0BOB")

    assert "approved by @U0BOB — executed: Banned 198.51.100.2 on nftables until" in decided
    assert not await can_connect(edge_network, attacker)
    assert await can_connect(edge_network, bystander), "the other address of the attacker namespace is untouched"
    listing, _ = await command(bot, "bans")
    assert "1 active ban on nftables" in listing
    assert "198.51.100.2 — active — until" in listing and "(in 3h 59m" in listing
    assert "reason: credential stuffing on /login — requested by U0ALICE, approved by U0BOB (approval #1)" in listing
    [row] = await ledger(nft_settings["bot_database_url"])
    assert (str(row["address"]), row["backend"], row["requested_by"], row["approved_by"], row["approval_id"]) == (
        "198.51.100.2/32",
        "nftables",
        "U0ALICE",
        "U0BOB",
        1,
    )

    text, approvals = await command(bot, "unban 198.51.100.2", user="U0CAROL")
    assert "198.51.100.2 is banned on nftables" in text and "banned because: credential stuffing" in text
    decided = await approve(bot, approvals[0], "U0ALICE")

    assert "executed: Unbanned 198.51.100.2 on nftables" in decided
    assert await can_connect(edge_network, attacker) and await can_connect(edge_network, bystander)
    assert "0 active bans on nftables" in (await command(bot, "bans"))[0]
    [row] = await ledger(nft_settings["bot_database_url"])
    assert (row["removal"], row["removed_by"], row["removal_approval_id"]) == ("unbanned", "U0ALICE", 2)


async def test_a_short_ban_expires_with_the_bot_stopped_and_bans_says_so(start_bot, nft_settings, edge_network):
    attacker = edge_network.attacker_ip
    bot = await start_bot(**nft_settings)
    decided = await ban(bot, "198.51.100.2 2s probing")
    assert "executed: Banned 198.51.100.2" in decided
    assert not await can_connect(edge_network, attacker)
    slack = bot.slack
    await bot.stop()

    await eventually(lambda: can_connect(edge_network, attacker), timeout=8, what="the 2-second ban expiring")

    restarted = await start_bot(slack=slack, **nft_settings)
    listing, _ = await command(restarted, "bans")
    assert "0 active bans on nftables (1 expired)" in listing
    assert "198.51.100.2 — expired — until" in listing and "reason: probing" in listing
    assert await can_connect(edge_network, edge_network.second_attacker_ip)


async def test_bans_shows_a_ban_removed_by_hand_and_one_added_by_hand(start_bot, nft_settings, edge_network):
    bot = await start_bot(**nft_settings)
    await ban(bot, "198.51.100.2 1h scanner")
    await ban(bot, "2001:db8::2 1h scanner over IPv6")
    assert not await can_connect(edge_network, edge_network.attacker_ip6)
    assert await can_connect(edge_network, edge_network.second_attacker_ip6)
    nft = edge_network.nft_command
    run([*nft, "delete", "element", "inet", "erpgo_chatops", "banned_v4", "{ 198.51.100.2 }"])
    run([*nft, "add", "element", "inet", "erpgo_chatops", "banned_v4", "{ 198.51.100.77 timeout 600s }"])

    listing, _ = await command(bot, "bans")

    assert "1 active ban on nftables (1 removed outside the bot, 1 not recorded by the bot)" in listing
    assert "198.51.100.2 — removed outside the bot: the firewall no longer holds it" in listing
    assert "2001:db8::2 — active" in listing and "reason: scanner over IPv6" in listing
    assert "198.51.100.77 — on the firewall, not recorded by the bot (added by hand or by another tool)" in listing
    assert await can_connect(edge_network, edge_network.attacker_ip)
    text, approvals = await command(bot, "unban 198.51.100.2")
    assert "not banned on nftables: the ban the bot recorded was removed outside the bot" in text and not approvals


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("169.254.0.1", "link-local"),
    ("10.0.0.0/8", "too wide"),
    ("192.0.2.7", "overlaps 192.0.2.0/28, in ERPGO_BAN_ALLOWLIST"),
]


async def test_refused_bans_say_why_and_propose_nothing(start_bot, nft_settings, edge_network):
    bot = await start_bot(**nft_settings | {"erpgo_ban_allowlist": "192.0.2.0/28"})
    for address, because in REFUSED:
        text, approvals = await command(bot, f"ban {address} 1h")
        assert because in text and "nothing" in text and approvals == [], (address, text)
    assert await ledger(nft_settings["bot_database_url"]) == []
    listing = run([*edge_network.nft_command, "list", "ruleset"]).stdout
    assert "erpgo_chatops" not in listing, "the firewall was not touched"

    assert "executed: Banned 198.51.100.2/31 on nftables" in await ban(bot, "198.51.100.2/31 1h both of them")
    assert not await can_connect(edge_network, edge_network.second_attacker_ip)
    text, approvals = await command(bot, "ban 198.51.100.3")
    assert "overlaps 198.51.100.2/31, banned until" in text and "unban 198.51.100.2/31 first" in text
    assert approvals == []


async def test_a_ban_longer_than_the_maximum_is_refused(start_bot, nft_settings):
    bot = await start_bot(**nft_settings | {"erpgo_ban_max_duration": "1d"})
    text, approvals = await command(bot, "ban 198.51.100.2 2d")
    assert "2d is longer than ERPGO_BAN_MAX_DURATION (1d)" in text and approvals == []
    text, approvals = await command(bot, "ban 198.51.100.2")
    assert "Ban 198.51.100.2 for 1h on nftables" in content(approvals[0]), "ERPGO_BAN_DEFAULT_DURATION"


async def test_an_address_allowlisted_after_the_proposal_is_refused_when_approved(
    start_bot, nft_settings, edge_network
):
    first = await start_bot(**nft_settings)
    _, [message] = await command(first, "ban 198.51.100.2 1h")
    slack = first.slack
    await first.stop()
    guarded = await start_bot(slack=slack, **nft_settings | {"erpgo_ban_allowlist": "198.51.100.0/30"})

    decided = await approve(guarded, message)

    assert "nothing done: 198.51.100.2/32 overlaps 198.51.100.0/30, in ERPGO_BAN_ALLOWLIST" in decided
    assert await can_connect(edge_network, edge_network.attacker_ip)
    assert await ledger(nft_settings["bot_database_url"]) == []


async def test_twenty_concurrent_approvals_ban_once(start_bot, nft_settings, edge_network):
    first = await start_bot(**nft_settings)
    second = await start_bot(slack=first.slack, **nft_settings)  # a second replica on the same database
    _, [message] = await command(second, "ban 198.51.100.2 1h")
    seen = copy.deepcopy(message)

    results = await asyncio.gather(
        *(first.slack.click(seen, "approval.approve", user_id=user) for _ in range(10) for user in ("U0BOB", "U0CAROL"))
    )
    await first.settle()
    await second.settle()

    assert all(result.status == 200 for result in results) and len(results) == 20
    [row] = await ledger(nft_settings["bot_database_url"])
    assert row["approved_by"] in ("U0BOB", "U0CAROL")
    conn = await asyncpg.connect(nft_settings["bot_database_url"])
    try:
        executed = await conn.fetchval("SELECT count(*) FROM audit_log WHERE event = 'executed'")
    finally:
        await conn.close()
    assert executed == 1
    assert not await can_connect(edge_network, edge_network.attacker_ip)
    assert "1 active ban on nftables" in (await command(second, "bans"))[0]  # commands go to the newest replica


async def test_fail2ban_ban_list_unban_through_the_bot(start_bot, fresh_database, policy_file, fail2ban_server):
    server: Fail2banServer = fail2ban_server
    settings = {
        "bot_database_url": fresh_database("bot"),
        "chatops_policy_file": policy_file,
        "erpgo_firewall": "fail2ban",
        "erpgo_fail2ban_jail": server.jail,
        "erpgo_fail2ban_socket": server.socket,
    }
    bot = await start_bot(**settings)

    text, [message] = await command(bot, "ban 198.51.100.2 30m brute force")
    assert "applies its jail's own bantime" in text
    assert f"fail2ban-client -s {server.socket} set erpgo banip 198.51.100.2" in content(message)
    decided = await approve(bot, message)

    assert "executed: Banned 198.51.100.2 on fail2ban until" in decided and "(in 59m" in decided
    assert "+198.51.100.2" in server.actions_log.read_text().split()
    assert "198.51.100.2" in server.client("get", server.jail, "banned").stdout
    listing, _ = await command(bot, "bans")
    assert "1 active ban on fail2ban" in listing and "reason: brute force" in listing
    assert "requested by U0ALICE, approved by U0BOB" in listing

    _, [message] = await command(bot, "unban 198.51.100.2")
    assert "executed: Unbanned 198.51.100.2 on fail2ban" in await approve(bot, message)
    assert "-198.51.100.2" in server.actions_log.read_text().split()
    assert "0 active bans on fail2ban" in (await command(bot, "bans"))[0]


async def test_without_a_firewall_nothing_is_proposed(start_bot, fresh_database, policy_file):
    bot = await start_bot(bot_database_url=fresh_database("bot"), chatops_policy_file=policy_file)
    text, approvals = await command(bot, "ban 198.51.100.2")
    assert "not configured (set ERPGO_FIREWALL)" in text and approvals == []
