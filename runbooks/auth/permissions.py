"""Guide: "Authentication & Authorization › Permission Issues" — a user's roles (`user <email>`),
whether they grant a permission (`user <email> <permission>`), a role's permissions and holders
(`role <name>`), and the guide's "Assign Missing Roles" as a remediation (`auth.assign_role`)."""

from __future__ import annotations

import json

from bot.core.engine import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Refused
from runbooks.auth.common import PERMISSIONS, ago, missing_table, not_erpgo, runbook

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


@runbook.check("user", component="Roles", section=PERMISSIONS)
async def user_roles(ctx: CheckContext) -> Finding:
    """The guide's "Check User Roles" as a LEFT JOIN: a user without roles is a finding, not an empty result."""
    email, wanted = ctx.params["email"], ctx.params.get("role")
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_table(conn, "users", "roles", "user_roles"):
            return not_erpgo("Roles", missing)
        rows = await conn.fetch(USER_ROLES, email)
        all_roles = [r["name"] for r in await conn.fetch("SELECT name FROM roles ORDER BY name")]
    if not rows:
        return Finding.skipped("Roles", f"no user {email}")
    held = [r for r in rows if r["name"] is not None]
    names = [r["name"] for r in held]
    details = [
        f"{r['name']}: {permissions_text(r['permissions'])} (assigned {ago(r['assigned_at'])}"
        + (f" by {r['assigned_by']})" if r["assigned_by"] else ")")
        for r in held
    ]
    proposals = []
    status = Status.OK if held else Status.WARN
    title = ", ".join(names) if held else "no roles: every request needing a permission answers 403 Forbidden"
    if wanted is None:
        if not held:
            details.append(
                f"to propose one: `/erpgo user {email} <role>` — roles: {', '.join(all_roles) or 'none defined'}"
            )
    elif wanted in names:
        details.append(f"already has role {wanted}")
    elif wanted not in all_roles:
        status = Status.WARN
        title += f" — no role named {wanted}"
        details.append(f"roles: {', '.join(all_roles) or 'none defined'}")
    else:
        proposals.append(
            Proposal(
                action="auth.assign_role",
                args={"email": email, "role": wanted},
                summary=f"Give {email} the role {wanted}",
                reason="the guide's Assign Missing Roles (INSERT INTO user_roles), for this user and role only",
                preview=ASSIGN_ROLE + f"\n-- $1 = '{email}', $2 = '{wanted}'",
            )
        )
    return Finding(status, "Roles", title, details=details, proposals=proposals, data={"roles": names})


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
