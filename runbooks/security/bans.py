"""Guide: "Security Issues › Block Malicious IPs" — what the guide meant, not what it wrote.

`iptables -A INPUT -s <ip> -j DROP` misses every port Docker publishes (that traffic is forwarded, not
input). `/erpgo ban <ip|cidr> [duration] [reason…]` proposes `security.ban_ip` on the configured
firewall (bot/targets/firewall.py: a table of the bot's own in nftables, hooked on input and forward,
with element timeouts; or a fail2ban jail). `/erpgo bans` lists the bans, the bot's records next to
what the firewall really holds; `/erpgo unban <ip|cidr>` proposes `security.unban_ip`.

Every ban passes the guard (runbooks/security/guards.py) when proposed and again when it runs: never
loopback, link-local, multicast, this host's addresses, the deployment's Docker subnets or the
allowlist, never wider than a /24 (IPv6 /48). Every ban and unban is recorded in the bot's database.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Args, Refused, Runbook, UsageError
from bot.core.units import parse_duration, plural, short_duration
from bot.targets import NotConfigured
from bot.targets.firewall import BanEntry, Fail2ban, FirewallBackend, Nftables, NotBanned
from runbooks.security import auditlog
from runbooks.security.common import (
    BLOCK,
    as_network,
    ban_guard,
    expiry,
    shown,
    static_refusal,
    until_text,
)
from runbooks.security.guards import Network
from runbooks.security.ledger import (
    ACTIVE,
    EXPIRED,
    NOT_RECORDED,
    REMOVED_OUTSIDE,
    BanRecord,
    Reconciled,
    open_ledger,
    reconcile,
)

runbook = Runbook("bans")

MAX_REASON = 300
EVIDENCE_WINDOW = timedelta(hours=24)
_DURATION_WORD = re.compile(r"\d[\dsmhdw]*", re.IGNORECASE)


# --- ban <ip|cidr> [duration] [reason…] --------------------------------------------------------------


@dataclass(frozen=True)
class BanArgs(Args):
    network: str = ""
    seconds: int | None = None  # None: ERPGO_BAN_DEFAULT_DURATION
    reason: str = ""


def parse_ban(words: list[str]) -> BanArgs:
    if not words:
        raise UsageError("What to ban? e.g. `/erpgo ban 203.0.113.7 4h brute force on the login`")
    network, why = static_refusal(words[0])
    if network is None:
        raise UsageError(f"Refused, nothing proposed: {why}")
    rest = words[1:]
    seconds = None
    if rest and _DURATION_WORD.fullmatch(rest[0]):
        try:
            seconds = parse_duration(rest[0], what="ban")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        rest = rest[1:]
    return BanArgs(words[0], seconds, " ".join(rest)[:MAX_REASON])


runbook.verb(
    "ban",
    "propose banning an address or range on the firewall",
    usage="<ip|cidr> [duration] [reason…]",
    parse=parse_ban,
    ack="Checking the address…",
)


def ban_preview(firewall: FirewallBackend, network: Network, seconds: int) -> str:
    if isinstance(firewall, Nftables):
        where = f"inet {firewall.table} {'banned_v4' if network.version == 4 else 'banned_v6'}"
        return (
            f"{shlex.join(firewall.command)} -f - <<'EOF'\n"
            f"# the table inet {firewall.table}, its sets and its input + forward drop rules, where missing\n"
            f"add element {where} {{ {network} timeout {seconds}s }}\nEOF"
        )
    if isinstance(firewall, Fail2ban):
        return shlex.join([*_f2b_client(firewall), "set", firewall.jail, "banip", shown(network)])
    return f"ban {network} for {seconds}s on {firewall.name}"


def unban_preview(firewall: FirewallBackend, network: Network) -> str:
    if isinstance(firewall, Nftables):
        where = f"inet {firewall.table} {'banned_v4' if network.version == 4 else 'banned_v6'}"
        return f"{shlex.join(firewall.command)} delete element {where} '{{ {network} }}'"
    if isinstance(firewall, Fail2ban):
        return shlex.join([*_f2b_client(firewall), "set", firewall.jail, "unbanip", "--report-absent", shown(network)])
    return f"unban {network} on {firewall.name}"


def _f2b_client(firewall: Fail2ban) -> list[str]:
    return [*firewall.client, *(["-s", firewall.socket] if firewall.socket else [])]


def covering(held: list[BanEntry], network: Network) -> list[BanEntry]:
    """Wider bans that already cover `network`."""
    return [
        entry
        for entry in held
        if entry.network != network and entry.network.version == network.version and network.subnet_of(entry.network)  # type: ignore[arg-type]
    ]


def overlaps(one: Network, other: Network) -> bool:
    return one.version == other.version and one.overlaps(other)


def ban_proposal(
    firewall: FirewallBackend, network: Network, seconds: int, reason: str, evidence: str = ""
) -> Proposal:
    duration = short_duration(seconds) if firewall.honours_duration else "the jail's bantime"
    return ban_ip.propose(
        network=str(network),
        seconds=seconds,
        reason=reason,
        summary=f"Ban {shown(network)} for {duration} on {firewall.name}",
        why=reason + (f" — {evidence}" if evidence else ""),
        preview=ban_preview(firewall, network, seconds),
    )


def refused(component: str, why: str) -> Finding:
    return Finding.warn(component, f"refused: {why}", details=["nothing was proposed"], data={"refused": why})


async def audit_evidence(ctx: CheckContext, network: Network) -> list[str]:
    """What ERPGo's audit_logs say about the address in the last day; nothing when they cannot be read."""
    since = datetime.now(UTC) - EVIDENCE_WINDOW
    try:
        async with ctx.targets.pg.connect() as conn:
            if not await auditlog.has_table(conn, "audit_logs"):
                return []
            failures, accounts = await auditlog.failures_from(conn, str(network), since)
    except Exception:  # NotConfigured, unreachable, not ERPGo: the ban request stands without it
        return []
    return [
        f"ERPGo's audit_logs, last 24 h: {plural(failures, 'failed login')} from it, for {plural(accounts, 'account')}"
    ]


@runbook.check("ban", component="Ban", section=BLOCK, timeout=15, proposes=("security.ban_ip",))
async def ban_request(ctx: CheckContext) -> Finding:
    asked = ctx.arg(BanArgs)
    network, note = await ban_guard(ctx, asked.network)
    if network is None:
        return refused("Ban", note or "not bannable")
    maximum = ctx.settings.erpgo_ban_max_duration
    seconds = asked.seconds or ctx.settings.erpgo_ban_default_duration
    if seconds > maximum:
        return refused(
            "Ban", f"{short_duration(seconds)} is longer than ERPGO_BAN_MAX_DURATION ({short_duration(maximum)})"
        )
    firewall = ctx.targets.firewall
    held = await firewall.banned()
    now = datetime.now(UTC)
    details = [note] if note else []
    title = f"{shown(network)} may be banned on {firewall.name}"
    same = [entry for entry in held if entry.network == network]
    if same:
        title = f"{shown(network)} is already banned {until_text(expiry(now, same[0].expires_in), now)}"
        details.append("approving bans it again with the duration asked for")
    overlapping = [entry for entry in held if entry.network != network and overlaps(entry.network, network)]
    if overlapping:
        other = overlapping[0]
        return refused(
            "Ban",
            f"{shown(network)} overlaps {shown(other.network)}, banned {until_text(expiry(now, other.expires_in), now)}: "
            f"unban {shown(other.network)} first, or leave it",
        )
    if not firewall.honours_duration:
        details.append(f"{firewall.name} applies its jail's own bantime: a duration asked for is not used")
    details += await audit_evidence(ctx, network)
    reason = ctx.arg(BanArgs).reason or "asked for by hand"
    return Finding.ok(
        "Ban",
        title,
        details=details,
        proposals=[ban_proposal(firewall, network, seconds, reason)],
        data={"network": str(network), "seconds": seconds, "backend": firewall.name},
    )


@runbook.remediation("security.ban_ip", "Ban an address or range on the firewall", timeout=30)
async def ban_ip(ctx: CheckContext, network: str, seconds: int, reason: str = "") -> str:
    banned, why = await ban_guard(ctx, network)
    if banned is None:
        raise Refused(why or "not bannable")
    maximum = ctx.settings.erpgo_ban_max_duration
    if int(seconds) > maximum:
        raise Refused(
            f"{short_duration(int(seconds))} is longer than ERPGO_BAN_MAX_DURATION ({short_duration(maximum)})"
        )
    firewall = ctx.targets.firewall
    async with open_ledger(ctx) as ledger:  # NotConfigured before anything is banned
        entry = await firewall.ban(banned, int(seconds))
        now = datetime.now(UTC)
        done = f"Banned {shown(banned)} on {firewall.name} {until_text(expiry(now, entry.expires_in), now)}"
        try:
            await ledger.record_ban(
                banned,
                firewall.name,
                entry.expires_in,
                reason=reason,
                requested_by=ctx.actor.requester or "?",
                approved_by=ctx.actor.approver or "?",
                approval_id=ctx.actor.approval_id,
            )
        except Exception as exc:  # the ban holds; `bans` will show it as not recorded
            return f"{done}, but the bot could not record it ({describe_error(exc)})"
    return done


# --- bans ------------------------------------------------------------------------------------------

runbook.verb(
    "bans",
    "the bans, who asked, approved and why, checked against the firewall",
    ack="Reading the bans…",
)

STATE_TEXT = {
    ACTIVE: "active",
    EXPIRED: "expired",
    REMOVED_OUTSIDE: "removed outside the bot: the firewall no longer holds it",
    NOT_RECORDED: "on the firewall, not recorded by the bot (added by hand or by another tool)",
}


def ban_line(item: Reconciled, backend: str, now: datetime) -> str:
    record = item.record
    if item.held is not None:
        ends = until_text(expiry(now, item.held.expires_in), now)
    else:
        ends = until_text(record.until if record else None, now)
    parts = [f"{shown(item.network)} — {STATE_TEXT[item.state]} — {ends}"]
    if record is not None:
        parts.append(f"reason: {record.reason or '—'}")
        parts.append(
            f"requested by {record.requested_by}, approved by {record.approved_by}"
            + (f" (approval #{record.approval_id})" if record.approval_id else "")
        )
    parts.append(backend)
    return " — ".join(parts)


def ban_data(item: Reconciled, backend: str) -> dict[str, object]:
    record = item.record
    return {
        "address": str(item.network),
        "state": item.state,
        "backend": backend,
        "expires_in": item.held.expires_in if item.held else None,
        "until": record.until.isoformat() if record and record.until else None,
        "reason": record.reason if record else None,
        "requested_by": record.requested_by if record else None,
        "approved_by": record.approved_by if record else None,
    }


@runbook.check("bans", component="Bans", section=BLOCK, timeout=15)
async def active_bans(ctx: CheckContext) -> Finding:
    firewall = ctx.targets.firewall
    held = await firewall.banned()
    records: list[BanRecord] = []
    notes = []
    now = datetime.now(UTC)
    try:
        async with open_ledger(ctx) as ledger:
            records = await ledger.open_records(firewall.name)
            now = await ledger.now()
    except NotConfigured:
        notes.append("the bot's database is not configured (BOT_DATABASE_URL): who asked and why are unknown")
    items = reconcile(records, held, now)
    counts = {state: sum(1 for item in items if item.state == state) for state in STATE_TEXT}
    title = f"{counts[ACTIVE]} active ban{'s' if counts[ACTIVE] != 1 else ''} on {firewall.name}"
    extra = [
        f"{counts[state]} {label}"
        for state, label in (
            (EXPIRED, "expired"),
            (REMOVED_OUTSIDE, "removed outside the bot"),
            (NOT_RECORDED, "not recorded by the bot"),
        )
        if counts[state]
    ]
    if extra:
        title += " (" + ", ".join(extra) + ")"
    status = Status.WARN if counts[REMOVED_OUTSIDE] or counts[NOT_RECORDED] else Status.OK
    details = [ban_line(item, firewall.name, now) for item in items] or ["nothing is banned"]
    return Finding(
        status,
        "Bans",
        title,
        details=details + notes,
        data={"bans": [ban_data(item, firewall.name) for item in items]},
    )


# --- unban <ip|cidr> -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnbanArgs(Args):
    network: str = ""


def parse_unban(words: list[str]) -> UnbanArgs:
    if len(words) != 1:
        raise UsageError("One address or range, e.g. `/erpgo unban 203.0.113.7`")
    if as_network(words[0]) is None:
        raise UsageError(f"{words[0][:60]!r} is not an IP address or CIDR range")
    return UnbanArgs(words[0])


runbook.verb(
    "unban",
    "propose lifting a ban (see `bans`)",
    usage="<ip|cidr>",
    parse=parse_unban,
    ack="Looking the ban up…",
)


@runbook.check("unban", component="Unban", section=BLOCK, timeout=15, proposes=("security.unban_ip",))
async def unban_request(ctx: CheckContext) -> Finding:
    network = as_network(ctx.arg(UnbanArgs).network)
    assert network is not None  # parse_unban saw to it
    firewall = ctx.targets.firewall
    held = await firewall.banned()
    now = datetime.now(UTC)
    try:
        async with open_ledger(ctx) as ledger:
            records = [r for r in await ledger.open_records(firewall.name) if r.network == network]
    except NotConfigured:
        records = []
    entry = next((e for e in held if e.network == network), None)
    if entry is None:
        wider = covering(held, network)
        if wider:
            return Finding.warn(
                "Unban",
                f"{shown(network)} is not banned itself: it is inside {', '.join(shown(w.network) for w in wider)}",
                details=["unban that range to let it through; nothing was proposed"],
            )
        if records:
            return Finding.warn(
                "Unban",
                f"{shown(network)} is not banned on {firewall.name}: the ban the bot recorded "
                + ("expired" if records[-1].until and records[-1].until <= now else "was removed outside the bot"),
                details=["nothing to unban; nothing was proposed"],
            )
        return Finding.ok("Unban", f"{shown(network)} is not banned on {firewall.name}: nothing to unban")
    details = [f"banned {until_text(expiry(now, entry.expires_in), now)}"]
    if records:
        record = records[-1]
        details.append(f"banned because: {record.reason or '—'}")
        details.append(f"requested by {record.requested_by}, approved by {record.approved_by}")
    else:
        details.append("this ban is not recorded by the bot (added by hand or by another tool)")
    return Finding.ok(
        "Unban",
        f"{shown(network)} is banned on {firewall.name}",
        details=details,
        proposals=[
            unban_ip.propose(
                network=str(network),
                summary=f"Unban {shown(network)} on {firewall.name}",
                why="asked for by hand",
                preview=unban_preview(firewall, network),
            )
        ],
    )


@runbook.remediation("security.unban_ip", "Lift a ban on the firewall", timeout=30)
async def unban_ip(ctx: CheckContext, network: str) -> str:
    target = as_network(network)
    if target is None:
        raise Refused(f"{network!r} is not an IP address or CIDR range")
    firewall = ctx.targets.firewall
    approver = ctx.actor.approver or "?"
    approval_id = ctx.actor.approval_id
    async with open_ledger(ctx) as ledger:
        try:
            await firewall.unban(target)
        except NotBanned as exc:
            await ledger.record_removal(
                target, firewall.name, removal="absent", removed_by=approver, approval_id=approval_id
            )
            raise Refused(f"{exc} on {firewall.name} (it expired or was removed outside the bot)") from None
        try:
            await ledger.record_removal(
                target, firewall.name, removal="unbanned", removed_by=approver, approval_id=approval_id
            )
        except Exception as exc:
            return (
                f"Unbanned {shown(target)} on {firewall.name}, but the bot could not record it ({describe_error(exc)})"
            )
    return f"Unbanned {shown(target)} on {firewall.name}"
