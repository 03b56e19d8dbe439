"""Which probes a bot gets: its own services, then for each remediation the policy enables (anyone
may approve it) its approvers and what it needs of its target — each need probed once, however many
remediations share it — then the Prometheus rules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from bot.approvals.catalogue import people
from bot.approvals.policy import Policy
from bot.doctor import Probe, Readiness, run_probes
from bot.doctor.privileges import (
    RoleCheck,
    may_alter_system,
    may_restore,
    may_signal,
    owns_tables,
    role_facts,
    writes,
)
from bot.doctor.reach import alertmanager_ready, backup_ready, docker_allowed, firewall_ready
from bot.doctor.rules import CAPABILITY as RULES
from bot.doctor.rules import rules_mapped
from bot.doctor.services import BOT_DATABASE, SLACK, bot_database, slack_scopes
from bot.runtime import Runtime

ROLE_NEEDS: dict[str, tuple[tuple[str, ...], RoleCheck]] = {
    "signal other sessions (ERPGo database role)": (("db.terminate", "db.cancel"), may_signal),
    "create and own databases (ERPGo database role)": (("db.restore", "db.restore_resume"), may_restore),
    "ALTER SYSTEM (ERPGo database role)": (("db.slowlog",), may_alter_system),
    "own the tables (ERPGo database role)": (("db.analyze", "db.reindex"), owns_tables),
    "repair orders (ERPGo database role)": (
        ("data.fix_order_totals", "data.fix_order_subtotals"),
        writes((("orders", "UPDATE"),)),
    ),
    "repair stock (ERPGo database role)": (("data.recalc_stock",), writes((("products", "UPDATE"),))),
    "change accounts (ERPGo database role)": (
        ("auth.deactivate_user", "auth.activate_user"),
        writes((("users", "UPDATE"),)),
    ),
    "assign roles (ERPGo database role)": (("auth.assign_role",), writes((("user_roles", "INSERT"),))),
}
TARGET_NEEDS = {  # capability: the remediations (patterns) that need it
    "Docker: inspect and restart": ("docker.*",),
    "firewall": ("security.ban_ip", "security.unban_ip"),
    "backup location and pg_dump": ("backup.now",),
    "Alertmanager API": ("alerts.silence",),
}


def approvers_line(policy: Policy, action: str) -> Readiness:
    """Enough distinct people may approve `action` for its `approvals_required`."""
    members, required = policy.approver_members(action), policy.approvals_required(action)
    capability = f"{action}: approvers"
    if members is None:
        return Readiness(capability, True, f"everyone may approve; {required} needed")
    detail = f"{policy.approvers(action)} = {people(members)}; {required} approval{'s' if required > 1 else ''} needed"
    if len(members) >= required:
        return Readiness(capability, True, detail)
    return Readiness(
        capability,
        False,
        f"{detail}, but only {len(members)} {'person' if len(members) == 1 else 'people'} may approve",
        f"add approvers to {policy.approvers(action)} in {policy.origin}, or lower approvals_required",
    )


def enabling(actions: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [action for action in actions if any(fnmatchcase(action, pattern) for pattern in patterns)]


def target_probes(runtime: Runtime, enabled: list[str], timeout: float) -> list[tuple[str, Probe]]:
    """One probe per need of the enabled remediations, named after them."""
    settings, targets = runtime.settings, runtime.targets
    facts: list[asyncio.Future[dict[str, Any]]] = []

    async def shared_facts() -> dict[str, Any]:
        if not facts:
            facts.append(asyncio.ensure_future(role_facts(targets)))
        return await asyncio.shield(facts[0])

    async def role(capability: str, check: RoleCheck) -> Readiness:
        return check(capability, await shared_facts())

    reach: dict[str, Callable[[str], Awaitable[Readiness]]] = {
        "Docker: inspect and restart": partial(docker_allowed, targets=targets),
        "firewall": partial(firewall_ready, settings=settings, targets=targets),
        "backup location and pg_dump": partial(backup_ready, settings=settings, targets=targets, timeout=timeout),
        "Alertmanager API": partial(alertmanager_ready, targets=targets),
    }
    probes: list[tuple[str, Probe]] = []
    for need, (actions, check) in ROLE_NEEDS.items():
        if users := enabling(enabled, actions):
            name = f"{', '.join(users)}: {need}"
            probes.append((name, partial(role, name, check)))
    for need, patterns in TARGET_NEEDS.items():
        if users := enabling(enabled, patterns):
            name = f"{', '.join(users)}: {need}"
            probes.append((name, partial(reach[need], name)))
    return probes


async def diagnose(runtime: Runtime, timeout: float) -> list[Readiness]:
    """Every line of the doctor's answer, each probe under `timeout`."""
    policy = runtime.policy
    with suppress(Exception):
        await asyncio.wait_for(policy.resolve_all(), timeout)
    enabled = [action for action in sorted(runtime.registry.remediations) if policy.approvable(action)]
    probes: list[tuple[str, Probe]] = [
        (SLACK, partial(slack_scopes, runtime.settings, timeout)),
        (BOT_DATABASE, partial(bot_database, runtime.settings, timeout)),
        *target_probes(runtime, enabled, timeout),
        (RULES, partial(rules_mapped, runtime.settings, runtime.registry, timeout)),
    ]
    lines = await run_probes(probes, timeout)
    return [*lines[:2], *(approvers_line(policy, action) for action in enabled), *lines[2:]]
