"""Guide: "Authentication & Authorization › Permission Issues" — a user's roles (`user <email>`),
whether they grant a permission (`user <email> <permission>`), a role's permissions and holders
(`role <name>`), and the guide's "Assign Missing Roles" as a remediation (`auth.assign_role`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Args, Refused, UsageError
from bot.core.units import plural
from runbooks.auth.common import (
    MAX_LISTED,
    PERMISSIONS,
    ROLE,
    UserArgs,
    ago,
    listed,
    missing_table,
    not_erpgo,
    runbook,
)

USER_ROLES = """
SELECT u.id AS user_id, r.name, to_jsonb(r.permissions)::text AS permissions, ur.assigned_at, ab.email AS assigned_by
FROM users u
LEFT JOIN user_roles ur ON ur.user_id = u.id
LEFT JOIN roles r ON r.id = ur.role_id
LEFT JOIN users ab ON ab.id = ur.assigned_by
WHERE u.email = $1
ORDER BY r.name
"""


def permissions_text(raw: str | None) -> str:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return (raw or "")[:200]
    return ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)[:200]


def permission_list(raw: str | None) -> list[str]:
    """A role's permissions from to_jsonb(permissions): TEXT[] (the real schema) or JSONB (the guide's)."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []


# What the API answers when a permission is missing (pkg/auth/middleware.go RequirePermission).
FORBIDDEN_BODY = '403 {"error":"Insufficient permissions","code":"INSUFFICIENT_PERMISSIONS"}'


def grants(permissions: list[str], wanted: str) -> bool:
    """ERPGo checks exact membership (`$2 = ANY(r.permissions)` in its user repository): no wildcard grants."""
    return wanted in permissions


def wildcards_for(permissions: list[str], wanted: str) -> list[str]:
    """The guide's wildcards (`*`, `resource.*`, `resource:*`) that look as if they granted `wanted` but do not."""
    resource = re.split(r"[.:]", wanted, maxsplit=1)[0]
    return [p for p in permissions if p == "*" or p in (f"{resource}.*", f"{resource}:*")]


@runbook.check("user", component="Roles", section=PERMISSIONS, proposes=("auth.assign_role",))
async def user_roles(ctx: CheckContext) -> list[Finding]:
    """The guide's "Check User Roles" as a LEFT JOIN (a user without roles is a finding, not an empty
    result); with a role named, "Assign Missing Roles" proposed; with a permission, whether it is granted."""
    asked = ctx.arg(UserArgs)
    email = asked.email
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users", "roles", "user_roles"):
            return [not_erpgo("Roles", missing)]
        rows = await conn.fetch(USER_ROLES, email)
        roles = {
            r["name"]: permission_list(r["permissions"])
            for r in await conn.fetch(
                "SELECT name, to_jsonb(permissions)::text AS permissions FROM roles ORDER BY name"
            )
        }
    if not rows:
        return [Finding.skipped("Roles", f"no user {email}")]
    held = [r for r in rows if r["name"] is not None]
    names = [r["name"] for r in held]
    details = [
        f"{r['name']}: {permissions_text(r['permissions'])} (assigned {ago(r['assigned_at'])}"
        + (f" by {r['assigned_by']})" if r["assigned_by"] else ")")
        for r in held
    ]
    status = Status.OK if held else Status.WARN
    title = ", ".join(names) if held else "no roles: every request needing a permission answers " + FORBIDDEN_BODY
    word = asked.role or asked.permission
    findings = []
    proposals: list[Proposal] = []
    if word is None:
        if not held:
            details.append(
                f"to propose one: `/erpgo user {email} <role>` — roles: {', '.join(roles) or 'none defined'}"
            )
    elif word in roles:
        if asked.permission:
            details.append(f"took {word} as a role: a role has that name")
        if word in names:
            details.append(f"already has role {word}")
        else:
            proposals.append(assign_proposal(email, word))
    elif asked.permission:
        details.append(f"took {word} as a permission: no role has that name, and it reads resource.action")
        findings.append(permission_finding(email, word, names, roles))
    else:
        status = Status.WARN
        title += f" — no role named {word}"
        details.append(f"roles: {', '.join(roles) or 'none defined'}")
        details.append(f"took {word} as a role: a permission has a `.` or `:` (e.g. orders.read)")
    roles_finding = Finding(status, "Roles", title, details=details, proposals=proposals, data={"roles": names})
    return [roles_finding, *findings]


def assign_proposal(email: str, role: str) -> Proposal:
    return assign_role.propose(
        email=email,
        role=role,
        summary=f"Give {email} the role {role}",
        why="the guide's Assign Missing Roles (INSERT INTO user_roles), for this user and role only",
        preview=ASSIGN_ROLE + f"\n-- $1 = '{email}', $2 = '{role}'",
    )


def permission_finding(email: str, wanted: str, held: list[str], roles: dict[str, list[str]]) -> Finding:
    """Whether the user's roles grant `wanted`, through which, and which roles would."""
    granted = [name for name in held if grants(roles[name], wanted)]
    granting = [name for name, permissions in roles.items() if grants(permissions, wanted)]
    data = {"permission": wanted, "granted": bool(granted), "granted_by": sorted(granted), "roles_granting": granting}
    if granted:
        return Finding.ok("Permission", f"{email} has {wanted}, through {', '.join(granted)}", data=data)
    details = []
    if granting:
        details.append(
            f"roles that grant it: {listed(granting, len(granting))} — `/erpgo user {email} <role>` proposes one"
        )
    else:
        resource = re.split(r"[.:]", wanted, maxsplit=1)[0]
        alike = sorted({p for permissions in roles.values() for p in permissions if p.startswith(resource)})
        details.append(
            "no role grants it: check the spelling"
            + (f" — permissions of {resource}: {listed(alike, len(alike))}" if alike else "")
        )
    if not held:
        details.append(f"{email} has no role at all")
    details += [
        f"{name} holds {', '.join(wildcards)}: ERPGo checks the exact permission, a wildcard grants nothing"
        for name in held
        if (wildcards := wildcards_for(roles[name], wanted))
    ]
    return Finding.warn(
        "Permission",
        f"{email} does NOT have {wanted}: the API answers {FORBIDDEN_BODY}",
        details=details,
        data=data,
    )


# --- role [name] --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleArgs(Args):
    role: str | None = None


def parse_role(words: list[str]) -> RoleArgs:
    if len(words) > 1:
        raise UsageError("One role name, e.g. `/erpgo role manager` (none lists every role)")
    if words and not ROLE.match(words[0]):
        raise UsageError("A role name is letters, digits, `_`, `-` or `.` (at most 50)")
    return RoleArgs(words[0] if words else None)


runbook.verb(
    "role",
    "a role's permissions and who holds it; without a name, every role (only you see the answer)",
    usage="[name]",
    parse=parse_role,
    ack="Looking the role up…",
    private=True,
)

ROLES = """
SELECT r.id, r.name, r.description, to_jsonb(r.permissions)::text AS permissions,
       count(u.id) AS holders, count(u.id) FILTER (WHERE u.is_active) AS active_holders
FROM roles r
LEFT JOIN user_roles ur ON ur.role_id = r.id
LEFT JOIN users u ON u.id = ur.user_id
GROUP BY r.id
ORDER BY r.name
"""
HOLDERS = """
SELECT u.email, u.is_active FROM user_roles ur JOIN users u ON u.id = ur.user_id
WHERE ur.role_id = $1 ORDER BY u.email LIMIT $2
"""


def held_by(row) -> str:
    inactive = row["holders"] - row["active_holders"]
    return plural(row["holders"], "user") + (f" ({inactive} inactive)" if inactive else "")


@runbook.check("role", component="Role", section=PERMISSIONS)
async def role_permissions(ctx: CheckContext) -> list[Finding]:
    """The guide's "Verify Role Permissions": what a role grants, and how many users it reaches."""
    wanted = ctx.arg(RoleArgs).role
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users", "roles", "user_roles"):
            return [not_erpgo("Role", missing)]
        rows = await conn.fetch(ROLES)
        row = next((r for r in rows if r["name"] == wanted), None)
        holders = await conn.fetch(HOLDERS, row["id"], MAX_LISTED + 1) if row is not None else []
    if wanted is None:
        return [roles_overview(rows)]
    if row is None:
        return [
            Finding.warn(
                "Role",
                f"no role named {wanted}",
                details=[f"roles: {', '.join(r['name'] for r in rows) or 'none defined'}"],
                data={"exists": False},
            )
        ]
    permissions = permission_list(row["permissions"])
    shown = [f"{h['email']}" + ("" if h["is_active"] else " (inactive)") for h in holders[:MAX_LISTED]]
    details = [
        *([f"description: {row['description']}"] if row["description"] else []),
        f"permissions ({len(permissions)}): {', '.join(permissions) or 'none'}",
        f"held by: {', '.join(shown)}"
        + (f" and {row['holders'] - MAX_LISTED} more" if row["holders"] > MAX_LISTED else "")
        if shown
        else "held by nobody",
    ]
    if wildcards := [p for p in permissions if p.endswith("*")]:
        details.append(f"{', '.join(wildcards)}: ERPGo checks exact permissions, a wildcard grants nothing")
    data = {
        "exists": True,
        "permissions": permissions,
        "holders": row["holders"],
        "active_holders": row["active_holders"],
    }
    title = f"{row['name']}: {plural(len(permissions), 'permission')}, held by {held_by(row)}"
    if not permissions:
        return [Finding.warn("Role", title + " — it grants nothing", details=details, data=data)]
    return [Finding.ok("Role", title, details=details, data=data)]


def roles_overview(rows) -> Finding:
    details = [
        f"{r['name']}: {plural(len(permission_list(r['permissions'])), 'permission')}, held by {held_by(r)}"
        for r in rows
    ]
    details.append("`/erpgo role <name>` shows one role's permissions and holders")
    return Finding.ok(
        "Role", f"{plural(len(rows), 'role')}", details=details, data={"roles": [r["name"] for r in rows]}
    )


# --- auth.assign_role ---------------------------------------------------------------------------

# The guide's "Add role to user", re-checking that it is not already assigned.
ASSIGN_ROLE = """INSERT INTO user_roles (user_id, role_id, assigned_by)
SELECT u.id, r.id, u.id
FROM users u, roles r
WHERE u.email = $1 AND r.name = $2
  AND NOT EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = u.id AND ur.role_id = r.id)"""


@runbook.remediation("auth.assign_role", "Give a user a role")
async def assign_role(ctx: CheckContext, email: str, role: str) -> str:
    async with ctx.targets.pg.connect() as conn:
        async with conn.transaction():
            user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1 FOR UPDATE", email)
            if user_id is None:
                raise Refused(f"no user {email}")
            role_id = await conn.fetchval("SELECT id FROM roles WHERE name = $1", role)
            if role_id is None:
                raise Refused(f"no role named {role}")
            if await conn.fetchval("SELECT 1 FROM user_roles WHERE user_id = $1 AND role_id = $2", user_id, role_id):
                raise Refused(f"{email} already has the role {role}")
            status = await conn.execute(ASSIGN_ROLE, email, role)
    if status != "INSERT 0 1":
        raise Refused(f"nothing inserted ({status})")
    return f"Gave {email} the role {role}"
