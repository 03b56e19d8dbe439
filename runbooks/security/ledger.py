"""What the bot banned, in its own database (table `bans`, migration 0003): who asked, who approved,
why, until when, on which backend. The firewall says what is banned now; this says what the bot did,
and `reconcile` sets the two side by side."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.context import CheckContext
from bot.store.pool import Store
from bot.targets import NotConfigured
from bot.targets.firewall import BanEntry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A ban the bot recorded stays in `bans` this long after its end, shown as expired or removed.
RECENT = timedelta(hours=24)

ACTIVE = "active"
EXPIRED = "expired"
REMOVED_OUTSIDE = "removed outside the bot"
NOT_RECORDED = "not recorded by the bot"


@dataclass(frozen=True)
class BanRecord:
    id: int
    network: Network
    backend: str
    until: datetime | None
    reason: str
    requested_by: str
    approved_by: str
    approval_id: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> BanRecord:
        return cls(
            id=row["id"],
            network=ipaddress.ip_network(row["address"]),
            backend=row["backend"],
            until=row["until"],
            reason=row["reason"],
            requested_by=row["requested_by"],
            approved_by=row["approved_by"],
            approval_id=row["approval_id"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class Reconciled:
    """One ban as the bot recorded it and as the firewall holds it; `state` says how they compare."""

    network: Network
    state: str  # ACTIVE, EXPIRED, REMOVED_OUTSIDE, NOT_RECORDED
    record: BanRecord | None
    held: BanEntry | None


class BanLedger:
    def __init__(self, store: Store):
        self.store = store

    async def now(self) -> datetime:
        async with self._conn() as conn:
            moment: datetime = await conn.fetchval("SELECT now()")
            return moment

    async def record_ban(
        self,
        network: Network,
        backend: str,
        expires_in: float | None,
        *,
        reason: str,
        requested_by: str,
        approved_by: str,
        approval_id: int | None,
    ) -> BanRecord:
        """A new open row; an open row of exactly this network on this backend is closed as replaced."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE bans SET removed_at = now(), removed_by = $3, removal_approval_id = $4, removal = 'replaced'"
                " WHERE backend = $1 AND address = $2::cidr AND removed_at IS NULL",
                backend,
                str(network),
                approved_by,
                approval_id,
            )
            row = await conn.fetchrow(
                "INSERT INTO bans (address, backend, until, reason, requested_by, approved_by, approval_id)"
                " VALUES ($1::cidr, $2, CASE WHEN $3::float8 IS NULL THEN NULL"
                " ELSE now() + make_interval(secs => $3::float8) END, $4, $5, $6, $7) RETURNING *",
                str(network),
                backend,
                expires_in,
                reason,
                requested_by,
                approved_by,
                approval_id,
            )
        return BanRecord.from_row(row)

    async def record_removal(
        self, network: Network, backend: str, *, removal: str, removed_by: str, approval_id: int | None
    ) -> list[BanRecord]:
        """Close the open rows of exactly this network on this backend ('unbanned' or 'absent')."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE bans SET removed_at = now(), removed_by = $3, removal_approval_id = $4, removal = $5"
                " WHERE backend = $1 AND address = $2::cidr AND removed_at IS NULL RETURNING *",
                backend,
                str(network),
                removed_by,
                approval_id,
                removal,
            )
        return [BanRecord.from_row(row) for row in rows]

    async def open_records(self, backend: str | None = None) -> list[BanRecord]:
        """Rows never ended through the bot whose ban has not been over for long (RECENT), oldest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM bans WHERE removed_at IS NULL AND ($1::text IS NULL OR backend = $1)"
                " AND (until IS NULL OR until > now() - make_interval(secs => $2)) ORDER BY created_at, id",
                backend,
                RECENT.total_seconds(),
            )
        return [BanRecord.from_row(row) for row in rows]

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A connection of the bot's database, its migrations applied first (once per process)."""
        await self.store.ready()
        async with self.store.acquire() as conn:
            yield conn


@asynccontextmanager
async def open_ledger(ctx: CheckContext) -> AsyncIterator[BanLedger]:
    """The ledger on the bot's database (BOT_DATABASE_URL), for one remediation or check."""
    dsn = ctx.settings.secret("bot_database_url")
    if not dsn:
        raise NotConfigured("BOT_DATABASE_URL")
    store = Store(dsn, ctx.settings.erpgo_check_timeout)
    try:
        yield BanLedger(store)
    finally:
        await store.close()


def reconcile(records: list[BanRecord], held: list[BanEntry], now: datetime) -> list[Reconciled]:
    """The recorded bans next to what the firewall holds: active, expired, removed outside the bot, or held
    without a record (banned by hand, or by fail2ban's own filters). Recorded ones first, in their order."""
    by_network = {entry.network: entry for entry in held}
    recorded = set()
    result = []
    for record in records:
        recorded.add(record.network)
        entry = by_network.get(record.network)
        if entry is not None:
            state = ACTIVE
        elif record.until is not None and record.until <= now:
            state = EXPIRED
        else:
            state = REMOVED_OUTSIDE
        result.append(Reconciled(record.network, state, record, entry))
    for entry in held:
        if entry.network not in recorded:
            result.append(Reconciled(entry.network, NOT_RECORDED, None, entry))
    return result
