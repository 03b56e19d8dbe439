"""Guide: "Login Issues" and "Permission Issues" — an account that must stop (compromised) or start again
(deactivated or locked by mistake), through approvals: `auth.deactivate_user` / `auth.activate_user` on
ERPGo's `users.is_active`. `/erpgo user <email>` proposes them (runbooks/auth.py calls
`account_proposals`): reactivation for an inactive account, deactivation when ERPGo's audit log shows a
successful login from an address that was spraying or hammering logins."""

from __future__ import annotations

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Proposal
from bot.core.registry import Refused, Runbook
from bot.core.units import plural
from runbooks.security.attacks import FAILED_LOGINS_TO_BAN, SPRAY_ACCOUNTS

runbook = Runbook("accounts")

LOOKBACK = "24 hours"

# Successful logins of this user from addresses that failed many logins (or for many accounts) in the
# same day: the attacker may have found the password.
COMPROMISE = f"""
WITH good AS (
    SELECT DISTINCT ip_address FROM audit_logs
    WHERE event_type = 'LOGIN' AND success AND user_id::text = $1 AND ip_address IS NOT NULL
      AND timestamp > now() - interval '{LOOKBACK}'
)
SELECT host(f.ip_address) AS ip, count(*) AS failures, count(DISTINCT lower(f.details->>'username')) AS accounts
FROM audit_logs f JOIN good ON good.ip_address = f.ip_address
WHERE f.event_type = 'LOGIN_FAILED' AND f.timestamp > now() - interval '{LOOKBACK}'
GROUP BY f.ip_address
HAVING count(*) >= $2 OR count(DISTINCT lower(f.details->>'username')) >= $3
ORDER BY failures DESC
LIMIT 3
"""

SET_ACTIVE = "UPDATE users SET is_active = $2, updated_at = now() WHERE id::text = $1 AND email = $3 AND is_active = $4"


def preview(user_id: str, email: str, active: bool) -> str:
    return (
        f"UPDATE users SET is_active = {str(active).lower()}, updated_at = now()\n"
        f"WHERE id = '{user_id}' AND email = '{email}' AND is_active = {str(not active).lower()}"
    )


async def compromise_evidence(ctx: CheckContext, user_id: str) -> list[str]:
    async with ctx.targets.pg.connect() as conn:
        if await conn.fetchval("SELECT to_regclass('audit_logs') IS NULL"):
            return []
        rows = await conn.fetch(COMPROMISE, user_id, FAILED_LOGINS_TO_BAN, SPRAY_ACCOUNTS)
    return [
        f"a successful login in the last {LOOKBACK} from {row['ip']}, which failed {plural(row['failures'], 'login')} "
        f"for {plural(row['accounts'], 'account')} in that time"
        for row in rows
    ]


async def account_proposals(ctx: CheckContext, user_id: object, email: str, is_active: bool) -> list[Proposal]:
    """What `/erpgo user <email>` offers for the account: reactivation, or deactivation on signs of compromise."""
    uid = str(user_id)
    if not is_active:
        return [
            activate_user.propose(
                user_id=uid,
                email=email,
                summary=f"Reactivate {email}",
                why="the account is inactive, so every login is refused: reactivate it if it was deactivated "
                "or locked by mistake",
                preview=preview(uid, email, True),
            )
        ]
    try:
        evidence = await compromise_evidence(ctx, uid)
    except asyncpg.PostgresError:
        return []  # the account's report stands without it
    if not evidence:
        return []
    return [
        deactivate_user.propose(
            user_id=uid,
            email=email,
            summary=f"Deactivate {email}",
            why="possible compromise: " + "; ".join(evidence),
            preview=preview(uid, email, False),
        )
    ]


async def set_active(ctx: CheckContext, user_id: str, email: str, active: bool) -> None:
    """Re-check the account is the one proposed (same id, same e-mail) in the state proposed, then flip it."""
    async with ctx.targets.pg.connect() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT email, is_active FROM users WHERE id::text = $1 FOR UPDATE", user_id)
        if row is None:
            raise Refused(f"no user with id {user_id} any more")
        if row["email"] != email:
            raise Refused(f"user {user_id} is now {row['email']}, not {email}")
        if row["is_active"] is active:
            raise Refused(f"{email} is already {'active' if active else 'inactive'}")
        status = await conn.execute(SET_ACTIVE, user_id, active, email, not active)
    if status != "UPDATE 1":
        raise Refused(f"nothing changed ({status})")


@runbook.remediation("auth.deactivate_user", "Deactivate an ERPGo account")
async def deactivate_user(ctx: CheckContext, user_id: str, email: str) -> str:
    await set_active(ctx, user_id, email, False)
    return (
        f"Deactivated {email}: ERPGo refuses its logins from now on "
        "(tokens it already holds may stay valid until they expire, see JWT_EXPIRY)"
    )


@runbook.remediation("auth.activate_user", "Reactivate an ERPGo account")
async def activate_user(ctx: CheckContext, user_id: str, email: str) -> str:
    await set_active(ctx, user_id, email, True)
    return f"Reactivated {email}: it can log in again"
