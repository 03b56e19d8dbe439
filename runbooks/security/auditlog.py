"""Failed logins as ERPGo records them in its own database: table `audit_logs`, one row per event
(`LOGIN_FAILED` with `ip_address`, `user_agent` and `details = {"username", "reason"}`, `LOGIN`,
`ACCOUNT_LOCKOUT`…). That is where the attackers' addresses are: the API's log lines have none."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

TOP = 20

BY_IP = """
SELECT host(ip_address) AS ip,
       count(*) FILTER (WHERE event_type = 'LOGIN_FAILED') AS failures,
       count(DISTINCT lower(details->>'username')) FILTER (WHERE event_type = 'LOGIN_FAILED') AS accounts,
       count(*) FILTER (WHERE event_type = 'LOGIN' AND success) AS logins,
       min(timestamp) FILTER (WHERE event_type = 'LOGIN_FAILED') AS first_seen,
       max(timestamp) FILTER (WHERE event_type = 'LOGIN_FAILED') AS last_seen,
       (array_agg(DISTINCT left(user_agent, 100))
            FILTER (WHERE event_type = 'LOGIN_FAILED' AND coalesce(user_agent, '') <> ''))[1:3] AS agents,
       (array_agg(DISTINCT lower(details->>'username'))
            FILTER (WHERE event_type = 'LOGIN_FAILED' AND details->>'username' IS NOT NULL))[1:5] AS sample
FROM audit_logs
WHERE event_type IN ('LOGIN_FAILED', 'LOGIN') AND timestamp >= $1 AND timestamp < $2
GROUP BY ip_address
HAVING count(*) FILTER (WHERE event_type = 'LOGIN_FAILED') > 0
ORDER BY failures DESC, last_seen DESC
LIMIT $3
"""

BY_ACCOUNT = """
SELECT lower(details->>'username') AS account,
       count(*) AS failures,
       count(DISTINCT ip_address) AS ips,
       min(timestamp) AS first_seen,
       max(timestamp) AS last_seen,
       (array_agg(DISTINCT host(ip_address)) FILTER (WHERE ip_address IS NOT NULL))[1:5] AS sample
FROM audit_logs
WHERE event_type = 'LOGIN_FAILED' AND timestamp >= $1 AND timestamp < $2
GROUP BY 1
ORDER BY failures DESC, last_seen DESC
LIMIT $3
"""

TOTALS = """
SELECT count(*) FILTER (WHERE timestamp >= $2) AS current,
       count(*) FILTER (WHERE timestamp < $2) AS previous
FROM audit_logs
WHERE event_type = 'LOGIN_FAILED' AND timestamp >= $1 AND timestamp < $3
"""

LOCKOUTS = """
SELECT coalesce(u.email, a.details->>'username', a.user_id::text, '?') AS account,
       count(*) AS lockouts, max(a.timestamp) AS last_seen
FROM audit_logs a LEFT JOIN users u ON u.id = a.user_id
WHERE a.event_type = 'ACCOUNT_LOCKOUT' AND a.timestamp >= $1 AND a.timestamp < $2
GROUP BY 1 ORDER BY lockouts DESC LIMIT $3
"""

LOCKOUTS_WITHOUT_USERS = """
SELECT coalesce(details->>'username', user_id::text, '?') AS account, count(*) AS lockouts, max(timestamp) AS last_seen
FROM audit_logs WHERE event_type = 'ACCOUNT_LOCKOUT' AND timestamp >= $1 AND timestamp < $2
GROUP BY 1 ORDER BY lockouts DESC LIMIT $3
"""

# Lock-out columns some schemas keep on the account itself (the real ERPGo keeps lock-outs in its
# rate limiter instead, and records ACCOUNT_LOCKOUT events).
LOCK_COLUMNS = ("locked_until", "lockout_until", "account_locked_until")


@dataclass
class IpFailures:
    ip: str | None  # None: rows without an address
    failures: int
    accounts: int
    logins: int  # successful logins from the same address in the window
    first_seen: datetime
    last_seen: datetime
    agents: list[str]
    sample: list[str]


@dataclass
class AccountFailures:
    account: str | None
    failures: int
    ips: int
    first_seen: datetime
    last_seen: datetime
    sample: list[str]


@dataclass
class AuditSummary:
    current: int
    previous: int
    by_ip: list[IpFailures] = field(default_factory=list)
    by_account: list[AccountFailures] = field(default_factory=list)
    lockouts: list[tuple[str, int, datetime]] = field(default_factory=list)
    locked_now: list[str] = field(default_factory=list)


async def has_table(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def read_summary(conn: asyncpg.Connection, since: datetime, until: datetime) -> AuditSummary:
    """Failed logins in [since, until), the same span before it for the rate, and lock-outs."""
    previous_start = since - (until - since)
    totals = await conn.fetchrow(TOTALS, previous_start, since, until)
    summary = AuditSummary(current=totals["current"], previous=totals["previous"])
    summary.by_ip = [IpFailures(**_listed(row)) for row in await conn.fetch(BY_IP, since, until, TOP)]
    summary.by_account = [AccountFailures(**_listed(row)) for row in await conn.fetch(BY_ACCOUNT, since, until, TOP)]
    users = await has_table(conn, "users")
    rows = await conn.fetch(LOCKOUTS if users else LOCKOUTS_WITHOUT_USERS, since, until, TOP)
    summary.lockouts = [(row["account"], row["lockouts"], row["last_seen"]) for row in rows]
    if users:
        summary.locked_now = await _locked_by_column(conn)
    return summary


def _listed(row: Any) -> dict[str, Any]:
    values = dict(row)
    for key in ("agents", "sample"):
        if key in values:
            values[key] = [value for value in values[key] or [] if value is not None]
    return values


async def _locked_by_column(conn: asyncpg.Connection) -> list[str]:
    column = await conn.fetchval(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'users' AND column_name = ANY($1::text[]) ORDER BY column_name LIMIT 1",
        list(LOCK_COLUMNS),
    )
    if column is None or column not in LOCK_COLUMNS:
        return []
    rows = await conn.fetch(f'SELECT email FROM users WHERE "{column}" > now() ORDER BY email LIMIT $1', TOP)
    return [row["email"] for row in rows]


async def failures_from(conn: asyncpg.Connection, network: str, since: datetime) -> tuple[int, int]:
    """(failed logins, distinct accounts) recorded from inside `network` since `since`."""
    row = await conn.fetchrow(
        "SELECT count(*) AS failures, count(DISTINCT lower(details->>'username')) AS accounts FROM audit_logs"
        " WHERE event_type = 'LOGIN_FAILED' AND timestamp >= $2 AND ip_address <<= $1::cidr",
        network,
        since,
    )
    return row["failures"], row["accounts"]
