"""Runs checks concurrently, each under its own timeout. A check never sinks the report:
whatever it raises becomes a Finding."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, Status
from bot.core.metrics import CHECK_SECONDS
from bot.core.registry import Check
from bot.settings import Settings
from bot.targets import NotConfigured, Targets


@dataclass
class CheckContext:
    targets: Targets
    settings: Settings
    params: dict[str, Any] = field(default_factory=dict)


async def run_check(check: Check, ctx: CheckContext) -> list[Finding]:
    timeout = check.timeout or ctx.settings.erpgo_check_timeout
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check.func(ctx), timeout)
        findings = result if isinstance(result, list) else [result]
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


async def run_checks(checks: list[Check], ctx: CheckContext) -> list[Finding]:
    """All checks at once; findings in the order the checks were registered."""
    results = await asyncio.gather(*(run_check(check, ctx) for check in checks))
    return [finding for findings in results for finding in findings]
