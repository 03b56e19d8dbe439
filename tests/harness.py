"""Run a verb's checks, or a remediation, against real targets without Slack: what `/erpgo <words>`
would find, with its arguments parsed by the verb's own parser, and what an approved action does."""

from __future__ import annotations

import shlex
from typing import Any

from bot.app import build_registry
from bot.context import Actor, AlertScope, CheckContext
from bot.core.engine import run_checks
from bot.core.findings import Finding
from bot.core.registry import NO_ARGS, Args
from bot.settings import Settings, load_settings
from bot.targets import Targets

registry = build_registry()
REQUESTER = Actor(requester="U0TEST")
APPROVED = Actor(requester="U0ALICE", approver="U0BOB", approval_id=1, approvers=("U0BOB",))


def parsed(words: str) -> tuple[str, Args]:
    """(the verb's name, its arguments) for `words` as typed after /erpgo; a UsageError as the router's."""
    verb, rest = registry.find_verb(shlex.split(words))
    assert verb is not None, f"no verb in {words!r}"
    return verb.name, verb.parse_args(rest)


def context(
    settings: Settings,
    targets: Targets,
    args: Args = NO_ARGS,
    actor: Actor = REQUESTER,
    alert: AlertScope | None = None,
) -> CheckContext:
    return CheckContext(targets, settings, args, actor, alert)


async def run_words(
    words: str,
    settings: Settings | None = None,
    *,
    only: tuple[str, ...] = (),
    actor: Actor = REQUESTER,
    alert: AlertScope | None = None,
    targets: Targets | None = None,
) -> list[Finding]:
    """The findings `/erpgo <words>` would post (only the checks named in `only`, when given)."""
    name, args = parsed(words)
    return await run_args(name, args, settings, only=only, actor=actor, alert=alert, targets=targets)


async def run_args(
    verb: str,
    args: Args,
    settings: Settings | None = None,
    *,
    only: tuple[str, ...] = (),
    actor: Actor = REQUESTER,
    alert: AlertScope | None = None,
    targets: Targets | None = None,
) -> list[Finding]:
    """The findings of `verb`'s checks given its parsed arguments."""
    settings = settings or load_settings()
    checks = [c for c in registry.verbs[verb].checks if not only or c.name in only]
    own = targets is None
    targets = targets or Targets(settings)
    try:
        return await run_checks(checks, context(settings, targets, args, actor, alert))
    finally:
        if own:
            await targets.close()


async def remediate(action: str, settings: Settings, *, actor: Actor = APPROVED, **args: Any) -> str:
    """Run a remediation as the approval engine does once someone approved it."""
    targets = Targets(settings)
    try:
        return await registry.remediations[action].func(context(settings, targets, actor=actor), **args)
    finally:
        await targets.close()
