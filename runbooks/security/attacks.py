"""Guide: "Security Issues › Unauthorized Access Attempts" — identify the threat, review the settings.

The guide greps the API's log for "failed login" and ranks the first column: on the real ERPGo that
ranks nothing (its `Failed to login user` line has no client IP). ERPGo records every failed login
in its own database instead (`audit_logs`), with the address and user agent, so `/erpgo security
[minutes]` ranks the sources there: by IP (a spray is one IP trying many accounts) and by account (a
distributed attack is many IPs trying one account), against the window before (a spike?), with the
accounts locked out. It adds what the API's log lines do carry (rate-limited attempts have an IP),
and a reverse proxy's access log when ERPGO_ACCESS_LOG_CONTAINER names one: requests and 401/403/429
per IP and injection, XSS and traversal patterns. Each address over a threshold gets a ban proposal
with its evidence. `security_settings` reads the API container's rate limiting, lock-out and JWT
settings (the secret's length only, never its value).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.context import CheckContext
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, Status
from bot.core.parse import ascii_int
from bot.core.registry import Args, Runbook, UsageError
from bot.core.units import plural, short_duration
from bot.targets import NotConfigured, RoleNotFound
from runbooks.security import auditlog, logscan
from runbooks.security.bans import ban_proposal, covering
from runbooks.security.common import BLOCK, IDENTIFY, ban_guard_for, clock, read_container_lines, span
from runbooks.security.settings import security_findings

runbook = Runbook("security")

DEFAULT_MINUTES = 60
MAX_MINUTES = 24 * 60
MAX_LOG_LINES = 20000
SHOWN = 5  # addresses or accounts listed per finding

# What makes an address worth a ban proposal, per window.
FAILED_LOGINS_TO_BAN = 10
SPRAY_ACCOUNTS = 5  # one address, this many accounts: a password spray
DISTRIBUTED_IPS = 3  # one account, this many addresses: a distributed attack
RATE_LIMITED_TO_BAN = 10
ATTACK_PATTERNS_TO_BAN = 3
AUTH_FAILURES_TO_BAN = 20  # requests answered 401, 403 or 429
SPIKE_FACTOR = 3
SPIKE_MINIMUM = 10

Candidates = dict[str, list[str]]  # address -> why it should be banned


@dataclass(frozen=True)
class SecurityArgs(Args):
    minutes: int = DEFAULT_MINUTES


def parse_security(words: list[str]) -> SecurityArgs:
    if not words:
        return SecurityArgs()
    try:
        if len(words) > 1:
            raise UsageError("one number of minutes")
        return SecurityArgs(ascii_int(words[0], min=1, max=MAX_MINUTES, what="minutes"))
    except UsageError:  # "²" and "٩" pass isdigit(); int() takes only the second
        raise UsageError(f"minutes must be between 1 and {MAX_MINUTES}, e.g. `/erpgo security 30`") from None


runbook.verb(
    "security",
    "who is attacking and from where (audit_logs, logs, access log), security settings; ban proposals",
    usage="[minutes]",
    parse=parse_security,
    ack="Looking for attackers…",
)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @property
    def label(self) -> str:
        return f"the last {short_duration(max(60, round((self.until - self.since).total_seconds() / 60) * 60))}"


def window_of(ctx: CheckContext) -> Window:
    """`minutes` back from now; for alert triage at least an hour, or since the alert's start if longer."""
    now = datetime.now(UTC)
    if ctx.alert is not None and ctx.alert.since is not None:
        return Window(min(ctx.alert.since, now - timedelta(minutes=DEFAULT_MINUTES)), now)
    return Window(now - timedelta(minutes=ctx.arg(SecurityArgs).minutes), now)


async def from_source(component: str, work: Awaitable[list[Finding]]) -> list[Finding]:
    """One source's findings; its failure is a finding of its own and never hides the other sources."""
    try:
        return await work
    except NotConfigured as exc:
        return [Finding.skipped(component, str(exc))]
    except Exception as exc:
        if is_unreachable(exc):
            return [Finding.crit(component, "unreachable — " + describe_error(exc))]
        return [Finding.error(component, describe_error(exc))]


@runbook.check("security", component="Attack evidence", section=IDENTIFY, timeout=25, proposes=("security.ban_ip",))
async def attack_evidence(ctx: CheckContext) -> list[Finding]:
    window = window_of(ctx)
    candidates: Candidates = defaultdict(list)
    sources = await asyncio.gather(
        from_source("Failed logins", audit_findings(ctx, window, candidates)),
        from_source("API log", api_log_findings(ctx, window, candidates)),
        from_source("Access log", access_log_findings(ctx, window, candidates)),
    )
    findings = [finding for found in sources for finding in found]
    findings += await from_source("Ban proposals", ban_proposals(ctx, window, candidates))
    return findings


@runbook.check("security", component="Security settings", section="Security Issues › Review Security Settings")
async def security_settings(ctx: CheckContext) -> list[Finding]:
    return await security_findings(ctx, await ctx.targets.container_of("api"))


# --- audit_logs -------------------------------------------------------------------------------------


def _agents(agents: list[str]) -> str:
    return ", ".join(agent[:60] for agent in agents) or "no user agent"


def ip_line(row: auditlog.IpFailures) -> str:
    where = row.ip or "no address recorded"
    line = (
        f"{where}: {row.failures} failed logins, {row.accounts} account{'s' if row.accounts != 1 else ''}"
        + (" (a spray)" if row.accounts >= SPRAY_ACCOUNTS else "")
        + f" — {span(row.first_seen, row.last_seen)} — {_agents(row.agents)}"
        + (f" — e.g. {', '.join(row.sample[:3])}" if row.sample else "")
    )
    if row.logins:
        line += f" — and {row.logins} successful login{'s' if row.logins != 1 else ''} from it: possible compromise"
    return line


def account_line(row: auditlog.AccountFailures) -> str:
    return (
        f"{row.account or '?'}: {row.failures} failed logins from {row.ips} address{'es' if row.ips != 1 else ''}"
        + (" (a distributed attack)" if row.ips >= DISTRIBUTED_IPS else "")
        + f" — last {clock(row.last_seen)}"
        + (f" — e.g. {', '.join(row.sample[:3])}" if row.sample else "")
    )


def rate_text(current: int, previous: int) -> tuple[str, bool]:
    spike = current >= SPIKE_MINIMUM and current >= SPIKE_FACTOR * max(previous, 1)
    text = f"{previous} in the window before" + (f" (×{current / previous:.1f})" if previous else "")
    return text + (": a spike" if spike else ""), spike


async def audit_findings(ctx: CheckContext, window: Window, candidates: Candidates) -> list[Finding]:
    async with ctx.targets.pg.connect() as conn:
        if not await auditlog.has_table(conn, "audit_logs"):
            return [Finding.skipped("Failed logins", "no audit_logs table — not an ERPGo database, or too old a one")]
        summary = await auditlog.read_summary(conn, window.since, window.until)
    for row in summary.by_ip:
        if row.ip and (row.failures >= FAILED_LOGINS_TO_BAN or row.accounts >= SPRAY_ACCOUNTS):
            candidates[row.ip].append(
                f"{row.failures} failed logins for {plural(row.accounts, 'account')} in {window.label} (audit_logs)"
            )
    rate, spike = rate_text(summary.current, summary.previous)
    over = [row for row in summary.by_ip if row.ip in candidates]
    status = Status.CRIT if over else Status.WARN if spike or summary.current >= FAILED_LOGINS_TO_BAN else Status.OK
    title = (
        f"{plural(summary.current, 'failed login')} in {window.label} "
        f"from {plural(len(summary.by_ip), 'address', 'addresses')} — {rate}"
    )
    if not summary.current:
        title = f"no failed logins in {window.label}" + (
            f" ({summary.previous} in the window before)" if summary.previous else ""
        )
    by_ip = Finding(
        status,
        "Failed logins",
        title,
        details=[ip_line(row) for row in summary.by_ip[:SHOWN]] + _more(summary.by_ip, "addresses"),
        data={
            "current": summary.current,
            "previous": summary.previous,
            "spike": spike,
            "by_ip": [
                {"ip": r.ip, "failures": r.failures, "accounts": r.accounts, "logins": r.logins} for r in summary.by_ip
            ],
        },
    )
    findings = [by_ip]
    if summary.by_account:
        findings.append(targeted_accounts(summary))
    findings.append(lockout_finding(summary, window))
    return findings


def targeted_accounts(summary: auditlog.AuditSummary) -> Finding:
    """Accounts that failed to log in; many of them, or one from many addresses, is an attack, never green."""
    distributed = [row for row in summary.by_account if row.ips >= DISTRIBUTED_IPS]
    sprayers = [row.ip for row in summary.by_ip if row.ip and row.accounts >= SPRAY_ACCOUNTS]
    title = f"{plural(len(summary.by_account), 'account')} failed to log in"
    if distributed:
        title += f", {len(distributed)} from {DISTRIBUTED_IPS} or more addresses (distributed)"
    if sprayers:
        title += f" — a password spray from {', '.join(sprayers[:3])}"
    attacked = distributed or sprayers or len(summary.by_account) >= SPRAY_ACCOUNTS
    return Finding(
        Status.WARN if attacked else Status.OK,
        "Targeted accounts",
        title,
        details=[account_line(row) for row in summary.by_account[:SHOWN]] + _more(summary.by_account, "accounts"),
        data={"by_account": [{"account": r.account, "failures": r.failures, "ips": r.ips} for r in summary.by_account]},
    )


def lockout_finding(summary: auditlog.AuditSummary, window: Window) -> Finding:
    details = [
        f"{account}: {count} lock-out{'s' if count != 1 else ''}, last {clock(last)}"
        for account, count, last in summary.lockouts
    ]
    if summary.locked_now:
        details.append("locked now (users table): " + ", ".join(summary.locked_now[:10]))
    locked = len(summary.lockouts) + len(summary.locked_now)
    if not locked:
        return Finding.ok("Locked accounts", f"no account locked out in {window.label} (ACCOUNT_LOCKOUT events)")
    return Finding.warn(
        "Locked accounts",
        f"{plural(len(summary.lockouts), 'account')} locked out in {window.label}",
        details=details + ["`/erpgo user <email>` shows one and proposes reactivating it"],
        data={"lockouts": [account for account, _, _ in summary.lockouts], "locked_now": summary.locked_now},
    )


def _more(rows: list, what: str) -> list[str]:
    return [f"… and {len(rows) - SHOWN} more {what}"] if len(rows) > SHOWN else []


# --- the API's own log lines ------------------------------------------------------------------------


async def api_log_findings(ctx: CheckContext, window: Window, candidates: Candidates) -> list[Finding]:
    try:
        name = await ctx.targets.container_of("api")
    except RoleNotFound as exc:  # the audit_logs findings still stand
        return [Finding.skipped("API log", str(exc))]
    lines = await read_container_lines(ctx, name, window.since, MAX_LOG_LINES)
    component = f"API log {name}"
    if lines is None:
        return [Finding.warn(component, "container not found", data={"container": name})]
    summary = logscan.scan_api_log(lines)
    failed, limited, locked = (
        sum(summary.failed_by_email.values()),
        sum(summary.rate_limited_by_ip.values()),
        sum(summary.locked_by_email.values()),
    )
    inputs = sum(summary.input_events(ip) for ip in summary.input_by_ip)
    for ip, count in summary.rate_limited_by_ip.items():
        if ip != "?" and count >= RATE_LIMITED_TO_BAN:
            candidates[ip].append(f"{count} rate-limited login attempts in the API's log")
    for ip in summary.input_by_ip:
        if ip != "?" and summary.input_events(ip) >= ATTACK_PATTERNS_TO_BAN:
            kinds = ", ".join(summary.input_by_ip[ip])
            candidates[ip].append(f"{summary.input_events(ip)} input validation events in the API's log ({kinds})")
    status = Status.WARN if limited or locked or inputs or failed >= FAILED_LOGINS_TO_BAN else Status.OK
    return [
        Finding(
            status,
            component,
            f"{plural(failed, 'failed-login line')}, {plural(limited, 'rate-limited attempt')}, "
            f"{plural(locked, 'attempt')} on locked accounts, {plural(inputs, 'input validation event')}",
            details=api_log_details(summary, name, window),
            data={
                "failed": failed,
                "rate_limited": dict(summary.rate_limited_by_ip),
                "locked": locked,
                "input_events": {ip: dict(kinds) for ip, kinds in summary.input_by_ip.items()},
            },
        )
    ]


def api_log_details(summary: logscan.ApiLogSummary, name: str, window: Window) -> list[str]:
    details = [
        f"read {summary.lines} lines of {name} ({window.label})",
        "its “Failed to login user” lines carry no client IP, only the e-mail: the addresses are in audit_logs",
    ]
    if summary.failed_by_email:
        details.append(
            "failed logins by account: " + ", ".join(f"{e} ×{n}" for e, n in summary.failed_by_email.most_common(SHOWN))
        )
    for ip, count in summary.rate_limited_by_ip.most_common(SHOWN):
        accounts = sorted(summary.rate_limited_emails[ip])
        details.append(f"{ip}: {plural(count, 'rate-limited login attempt')} (accounts: {', '.join(accounts[:3])})")
    for ip in sorted(summary.input_by_ip, key=lambda ip: -summary.input_events(ip))[:SHOWN]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in summary.input_by_ip[ip].most_common())
        details.append(
            f"{ip}: {plural(summary.input_events(ip), 'input validation event')} refused by the API — {kinds}"
        )
    if summary.locked_by_email:
        details.append(
            "attempts on locked accounts: "
            + ", ".join(f"{e} ×{n}" for e, n in summary.locked_by_email.most_common(SHOWN))
        )
    if summary.failed_by_email and not summary.rate_limited_by_ip:
        details.append("no “Rate limit exceeded” lines: the API never starts its rate limiter (see Security settings)")
    return details


# --- the reverse proxy's access log -----------------------------------------------------------------


def access_line(summary: logscan.AccessLogSummary, ip: str) -> str:
    kinds = summary.suspicious_by_ip.get(ip)
    statuses = summary.auth_by_ip.get(ip)
    line = f"{ip}: {plural(summary.requests_by_ip[ip], 'request')}"
    if statuses:
        line += " (" + ", ".join(f"{status} ×{n}" for status, n in sorted(statuses.items())) + ")"
    if kinds:
        line += " — " + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        line += " — e.g. " + " ".join(summary.examples.get(ip, []))
    return line


async def access_log_findings(ctx: CheckContext, window: Window, candidates: Candidates) -> list[Finding]:
    name = ctx.settings.erpgo_access_log_container
    if not name:
        raise NotConfigured("ERPGO_ACCESS_LOG_CONTAINER")
    component = f"Access log {name}"
    lines = await read_container_lines(ctx, name, window.since, MAX_LOG_LINES)
    if lines is None:
        return [Finding.warn(component, "container not found", data={"container": name})]
    summary = logscan.scan_access_log(lines)
    if summary.lines and not summary.parsed:
        return [Finding.warn(component, f"none of its {summary.lines} lines is in nginx's combined format")]
    for ip in summary.requests_by_ip:
        why = []
        if summary.suspicious(ip) >= ATTACK_PATTERNS_TO_BAN:
            kinds = ", ".join(summary.suspicious_by_ip[ip])
            why.append(f"{summary.suspicious(ip)} attack patterns in the access log ({kinds})")
        if summary.auth_failures(ip) >= AUTH_FAILURES_TO_BAN:
            why.append(f"{summary.auth_failures(ip)} requests answered 401/403/429")
        candidates[ip] += why
    suspicious = sorted(summary.suspicious_by_ip, key=lambda ip: (-summary.suspicious(ip), ip))
    busiest = [ip for ip, _ in summary.requests_by_ip.most_common(SHOWN) if ip not in suspicious]
    total_suspicious = sum(summary.suspicious(ip) for ip in suspicious)
    auth = sum(summary.auth_failures(ip) for ip in summary.auth_by_ip)
    status = (
        Status.CRIT
        if any(summary.suspicious(ip) >= ATTACK_PATTERNS_TO_BAN for ip in suspicious)
        else Status.WARN
        if suspicious
        else Status.OK
    )
    return [
        Finding(
            status,
            component,
            f"{summary.parsed} requests from {len(summary.requests_by_ip)} addresses in {window.label}: "
            f"{total_suspicious} with attack patterns from {len(suspicious)} addresses, {auth} answered 401/403/429",
            details=[access_line(summary, ip) for ip in suspicious[:SHOWN] + busiest][: 2 * SHOWN],
            data={
                "requests": dict(summary.requests_by_ip),
                "suspicious": {ip: dict(summary.suspicious_by_ip[ip]) for ip in suspicious},
                "auth_failures": {ip: summary.auth_failures(ip) for ip in summary.auth_by_ip},
            },
        )
    ]


# --- ban proposals ------------------------------------------------------------------------------------


def thresholds() -> str:
    return (
        f"{FAILED_LOGINS_TO_BAN} failed logins or {SPRAY_ACCOUNTS} accounts, {RATE_LIMITED_TO_BAN} rate-limited attempts, "
        f"{ATTACK_PATTERNS_TO_BAN} attack patterns or {AUTH_FAILURES_TO_BAN} × 401/403/429 per address"
    )


async def ban_proposals(ctx: CheckContext, window: Window, candidates: Candidates) -> list[Finding]:
    ranked = sorted((ip for ip in candidates if candidates[ip]), key=lambda ip: (-len(candidates[ip]), ip))
    if not ranked:
        return [Finding.ok("Ban proposals", f"no address over the thresholds ({thresholds()})")]
    evidence = [f"{ip}: " + "; ".join(candidates[ip]) for ip in ranked]
    try:
        firewall = ctx.targets.firewall
    except NotConfigured:
        return [
            Finding.warn(
                "Ban proposals",
                f"{len(ranked)} addresses over the thresholds, but no firewall to ban them on (set ERPGO_FIREWALL)",
                details=evidence,
            )
        ]
    held = await firewall.banned()
    guard = await ban_guard_for(ctx)
    seconds = ctx.settings.erpgo_ban_default_duration
    findings, left_alone = [], []
    for ip, line in zip(ranked, evidence, strict=True):
        network, why = guard(ip)
        if network is None:
            left_alone.append(f"{line} — not proposed: {why}")
        elif any(entry.network == network for entry in held) or covering(held, network):
            left_alone.append(f"{line} — already banned on {firewall.name}")
        else:
            # one finding per address, so that its approval shows the evidence against it alone
            findings.append(
                Finding.crit(
                    "Ban proposal",
                    line,
                    section=BLOCK,
                    proposals=[ban_proposal(firewall, network, seconds, "; ".join(candidates[ip]))],
                    data={"network": str(network), "evidence": candidates[ip]},
                )
            )
    if left_alone:
        findings.append(
            Finding.warn(
                "Ban proposals",
                f"{plural(len(left_alone), 'address', 'addresses')} over the thresholds not proposed",
                details=left_alone,
                section=BLOCK,
            )
        )
    return findings


ALERTS = (
    "HighFailedLoginRate",
    "HighAuthFailureRate",
    "CriticalAuthFailureRate",
    "UnauthorizedAccessAttempts",
    "SuspiciousAPIUsage",
    "DataExfiltrationDetection",
)
runbook.triage_for(*ALERTS, checks=("attack_evidence", "security_settings"))
