"""Guide: "Network & Connectivity › SSL/TLS Issues" — `tls [host:port]`.

Step 1 (Check Certificate Validity: `openssl s_client -showcerts`, `openssl x509 -dates`, `openssl
verify`) and step 2 (Test HTTPS Connection, against the system store or a CA file) for each endpoint:
the chain the server sends, subject, names, issuer, validity and days left (warning under 30, critical
under 7, expired), whether the name matches, self-signed, verification against the system store or
ERPGO_TLS_CA_FILE, protocol and cipher. The handshakes and the judgement are bot/targets/tls.py's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.registry import Args, Runbook, UsageError
from bot.targets import NotConfigured, tls

runbook = Runbook("tls")

SECTION = "Network & Connectivity › SSL/TLS Issues"
HANDSHAKE_SHARE = 0.8  # of the check's time, for each endpoint: one slow endpoint is reported, not the check
LEVELS = {"ok": Status.OK, "warn": Status.WARN, "crit": Status.CRIT}


ANY_ENDPOINT = "tls.any_endpoint"  # the policy's name for probing an endpoint not in ERPGO_TLS_ENDPOINTS


@dataclass(frozen=True)
class TlsArgs(Args):
    endpoint: tuple[str, int] | None = None

    def needs_permission(self, settings: Any) -> str | None:
        """An endpoint outside ERPGO_TLS_ENDPOINTS would let anyone probe internal ports: the policy decides."""
        if self.endpoint is None or self.endpoint in configured_endpoints(settings):
            return None
        return ANY_ENDPOINT


def configured_endpoints(settings: Any) -> set[tuple[str, int]]:
    return {tls.parse_endpoint(entry) for entry in settings.erpgo_tls_endpoints}  # checked when settings load


def parse_tls(words: list[str]) -> TlsArgs:
    if len(words) > 1:
        raise UsageError("give one endpoint, host:port")
    if not words:
        return TlsArgs()
    try:
        host, port = tls.parse_endpoint(words[0])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return TlsArgs((host, port))


runbook.verb(
    "tls",
    "TLS certificates: chain, names, issuer, days left, hostname match, self-signed, verification (system store "
    "or ERPGO_TLS_CA_FILE), protocol and cipher (default: ERPGO_TLS_ENDPOINTS)",
    usage="[host:port]",
    parse=parse_tls,
    ack="Shaking hands…",
)


def endpoints(ctx: CheckContext) -> tuple[list[tuple[str, int]], list[Finding]]:
    """The endpoint asked for, else the configured ones; a malformed configured entry is a finding."""
    asked = ctx.arg(TlsArgs).endpoint
    if asked:
        return [asked], []
    configured = ctx.settings.erpgo_tls_endpoints
    if not configured:
        raise NotConfigured("ERPGO_TLS_ENDPOINTS, or give host:port")
    found, problems = [], []
    for entry in configured:
        try:
            found.append(tls.parse_endpoint(entry))
        except ValueError as exc:
            problems.append(Finding.error("TLS", f"ERPGO_TLS_ENDPOINTS: {exc}"))
    return list(dict.fromkeys(found)), problems


def report_finding(report: tls.TlsReport, now: datetime) -> Finding:
    verdicts = tls.judge(report, now)  # worst first

    def said(verdict: tls.TlsVerdict) -> str:  # the component already names the endpoint
        return verdict.title.removeprefix(f"{report.label} — ")

    status = LEVELS[verdicts[0].level]
    details = [*verdicts[0].details]
    for verdict in verdicts[1:]:
        details.append(f"{LEVELS[verdict.level].emoji} {said(verdict)}")
        details += [f"    {line}" for line in verdict.details]
    leaf = report.leaf
    data = {
        "endpoint": tls.format_endpoint(report.host, report.port),
        "verdicts": [{"level": v.level, "title": v.title} for v in verdicts],
        "verified": report.verified,
        "verify_error": report.verify_error,
        "hostname_matches": report.hostname_matches,
        "self_signed": bool(leaf and leaf.self_signed),
        "days_left": (leaf.not_after - now).days if leaf else None,
        "protocol": report.protocol,
        "cipher": report.cipher,
        "chain": [cert.subject for cert in report.chain],
    }
    return Finding(status, f"TLS {report.label}", said(verdicts[0]), details=details, data=data)


def failure_finding(host: str, port: int, exc: BaseException) -> Finding:
    component = f"TLS {tls.format_endpoint(host, port)}"
    if isinstance(exc, TimeoutError):
        return Finding.crit(
            component,
            f"handshake timeout — {exc}",
            details=["it accepts TCP but the TLS handshake does not finish: a proxy or a plain service on that port?"],
        )
    if isinstance(exc, OSError):
        return Finding.crit(component, "unreachable — " + describe_error(exc))
    if isinstance(exc, ValueError):  # the CA file: a configuration fault
        return Finding.error(component, f"ERPGO_TLS_CA_FILE: {exc}")
    return Finding.error(component, describe_error(exc))


async def report_of(ctx: CheckContext, host: str, port: int) -> tls.TlsReport:
    """The endpoint's handshakes, once for all the checks of one report."""
    timeout = ctx.settings.erpgo_check_timeout * HANDSHAKE_SHARE
    return await ctx.shared(
        f"_tls_report {host}:{port}",
        lambda: tls.inspect(host, port, ca_file=ctx.settings.erpgo_tls_ca_file, timeout=timeout),
    )


async def inspect_one(ctx: CheckContext, host: str, port: int) -> Finding:
    try:
        report = await report_of(ctx, host, port)
    except Exception as exc:  # each endpoint is its own finding: one failing never hides the others
        return failure_finding(host, port, exc)
    return report_finding(report, datetime.now(UTC))


@runbook.check("tls", component="TLS", section=SECTION)
async def tls_certificates(ctx: CheckContext) -> list[Finding]:
    wanted, problems = endpoints(ctx)
    findings = await asyncio.gather(*(inspect_one(ctx, host, port) for host, port in wanted))
    return [*problems, *findings]
