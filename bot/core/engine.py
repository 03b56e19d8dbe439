"""Runs checks concurrently, each under its own timeout. A check never sinks the report:
whatever it raises becomes a Finding. What several checks of one report say alike is said once: a
finding marked `once` (the database is unreachable) and a proposal of the same action on the same
target (restart this container)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from bot.core.errors import NotConfigured, describe_error, is_unreachable
from bot.core.findings import Finding, Status
from bot.core.metrics import CHECK_SECONDS
from bot.core.registry import Check
from bot.core.scope import scope_of


class Context(Protocol):
    """What the engine needs of a check's context (the frame's CheckContext has it)."""

    @property
    def check_timeout(self) -> float: ...


async def run_check(check: Check, ctx: Context) -> list[Finding]:
    timeout = check.timeout or ctx.check_timeout
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check.func(ctx), timeout)
        findings = result if isinstance(result, list) else [result]
        findings = [checked_proposals(check, finding) for finding in findings]
        stamp_scope(check, ctx, findings)
    except NotConfigured as exc:
        findings = [Finding.skipped(check.component, str(exc))]
    except TimeoutError:
        findings = [Finding.error(check.component, f"no answer within {timeout:g} s (timed out)")]
    except Exception as exc:  # a check never raises: the failure is the finding
        if is_unreachable(exc):
            findings = [Finding.crit(check.component, "unreachable — " + describe_error(exc))]
        else:
            findings = [Finding.error(check.component, describe_error(exc))]
    for finding in findings:
        finding.section = finding.section or check.section
    worst_status = max((f.status for f in findings), key=lambda s: s.rank, default=Status.OK)
    CHECK_SECONDS.labels(check.name, worst_status.value).observe(time.perf_counter() - started)
    return findings


def checked_proposals(check: Check, finding: Finding) -> Finding:
    """The finding as returned, unless it proposes something its check did not declare: then an error
    finding that says so (a bug, not a crash). The arguments were checked when it was proposed."""
    for proposal in finding.proposals:
        if proposal.action not in check.proposes:
            return Finding.error(
                check.component, f"check {check.name} proposed {proposal.action}, which it does not declare"
            )
    return finding


def stamp_scope(check: Check, ctx: Context, findings: list[Finding]) -> None:
    """Each proposal remembers the check that made it and with what, to be run again after the action."""
    for finding in findings:
        for proposal in finding.proposals:
            proposal.scope = proposal.scope or scope_of(check.name, ctx)


async def run_checks(checks: list[Check], ctx: Context) -> list[Finding]:
    """All checks at once; findings in the order the checks were registered, each said once."""
    results = await asyncio.gather(*(run_check(check, ctx) for check in checks))
    return said_once([finding for findings in results for finding in findings])


def said_once(findings: list[Finding]) -> list[Finding]:
    """Drop a finding whose `once` key an earlier one had, and a proposal whose (action, target) an
    earlier finding already proposed."""
    seen_findings: set[str] = set()
    seen_proposals: set[tuple[str, Any]] = set()
    kept = []
    for finding in findings:
        if finding.once:
            if finding.once in seen_findings:
                continue
            seen_findings.add(finding.once)
        proposals = [p for p in finding.proposals if (p.action, p.target_key) not in seen_proposals]
        seen_proposals.update((p.action, p.target_key) for p in proposals)
        finding.proposals = proposals
        kept.append(finding)
    return kept
