"""Runs checks concurrently, each under its own timeout. A check never sinks the report:
whatever it raises becomes a Finding."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bot.findings import Finding, Status
from bot.metrics import CHECK_SECONDS
from bot.redact import redact
from bot.registry import Check
from bot.settings import Settings
from bot.targets import NotConfigured, Targets


@dataclass
class CheckContext:
    targets: Targets
    settings: Settings
    params: dict[str, Any] = field(default_factory=dict)


def describe_error(exc: BaseException) -> str:
    """A one-line, redacted description of why something failed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)[:300]


def is_unreachable(exc: BaseException) -> bool:
    """Refused, reset, unresolvable, socket missing: the component is down, not the check broken."""
    return isinstance(exc, (OSError, ConnectionError)) or type(exc).__name__ in ("ConnectionError", "ClientConnectorError")


async def run_check(check: Check, ctx: CheckContext) -> list[Finding]:
    timeout = check.timeout or ctx.settings.erpgo_check_timeout
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check.func(ctx), timeout)
        findings = result if isinstance(result, list) else [result]
    except NotConfigured as exc:
        findings = [Finding.skipped(check.component, str(exc))]
    except (asyncio.TimeoutError, TimeoutError):
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
