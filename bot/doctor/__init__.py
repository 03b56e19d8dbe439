"""Readiness, proven before the night it is needed: one line per capability, ready or not, with why
and the fix — Slack's scopes, the bot's database, and for each remediation the policy enables its
approvers and what it needs of its target; with PROMETHEUS_URL, every alerting rule mapped to a triage.

Each probe runs under its own timeout, all at once, and none changes anything. `/erpgo doctor` and
`erpgo-bot doctor` (exit 0 ready, 1 degraded, 2 configuration error) show the same lines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.errors import NotConfigured, describe_error


@dataclass(frozen=True)
class Readiness:
    """One capability: ready (True), not ready (False) or not configured (None: nothing to prove)."""

    capability: str
    ready: bool | None
    detail: str  # what was seen, or why not
    fix: str = ""

    @property
    def mark(self) -> str:
        return {True: "ready", False: "NOT READY", None: "not configured"}[self.ready]


Probe = Callable[[], Awaitable[Readiness]]


async def probed(capability: str, probe: Probe, timeout: float) -> Readiness:
    """The probe's answer under `timeout`; a probe that fails or takes too long is not ready."""
    try:
        return await asyncio.wait_for(probe(), timeout)
    except TimeoutError:
        return Readiness(capability, False, f"no answer within {timeout:g} s", "check that it is up and reachable")
    except NotConfigured as exc:  # a remediation the policy enables, whose target is not configured
        return Readiness(capability, False, f"{exc.setting} is not set", f"set {exc.setting}")
    except Exception as exc:  # a probe never sinks the others
        return Readiness(capability, False, describe_error(exc))


async def run_probes(probes: list[tuple[str, Probe]], timeout: float) -> list[Readiness]:
    return list(await asyncio.gather(*(probed(name, probe, timeout) for name, probe in probes)))


def degraded(lines: list[Readiness]) -> list[Readiness]:
    return [line for line in lines if line.ready is False]


def summary(lines: list[Readiness]) -> str:
    bad = degraded(lines)
    if not bad:
        return f"Doctor: ready — {len(lines)} capabilities checked, nothing missing"
    return f"Doctor: degraded — {len(bad)} of {len(lines)} capabilities not ready"


def as_text(lines: list[Readiness]) -> str:
    """Plain lines for the terminal: the not-ready ones first."""
    ordered = sorted(lines, key=lambda line: (line.ready is not False, line.capability))
    shown = [summary(lines)]
    for line in ordered:
        shown.append(f"[{line.mark}] {line.capability}: {line.detail}" + (f" — fix: {line.fix}" if line.fix else ""))
    return "\n".join(shown)
