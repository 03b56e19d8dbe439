"""What the integrity checks share: the verb, the limits, reading the schema, and how rows are named."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from bot.core.errors import describe_error
from bot.core.findings import Finding
from bot.core.registry import Refused, Runbook

runbook = Runbook("integrity")

SECTION = "Data Integrity Issues › Inconsistent Data"
REPAIR = "Data Integrity Issues › Inconsistent Data › Repair Data"
MAX_LISTED = 10  # rows named in a finding
MAX_FIX = 50  # rows one approval may repair; a larger backlog is fixed in batches
SAMPLE_DANGLING = 5
# The guide's state machine: the fallback when orders.status carries no CHECK constraint or enum.
VALID_ORDER_STATUSES = ("pending", "confirmed", "processing", "shipped", "delivered", "cancelled", "refunded")
# The real application's transitions (its order entity's OrderStatusTransitions): the database cannot
# tell which status may follow which, so they are written down here.
ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "DRAFT": ("PENDING", "CANCELLED"),
    "PENDING": ("CONFIRMED", "CANCELLED", "ON_HOLD"),
    "CONFIRMED": ("PROCESSING", "CANCELLED", "ON_HOLD"),
    "PROCESSING": ("SHIPPED", "PARTIALLY_SHIPPED", "CANCELLED", "ON_HOLD"),
    "PARTIALLY_SHIPPED": ("SHIPPED", "PROCESSING", "CANCELLED", "ON_HOLD"),
    "SHIPPED": ("DELIVERED", "RETURNED", "ON_HOLD"),
    "DELIVERED": ("RETURNED", "REFUNDED"),
    "ON_HOLD": ("PENDING", "CONFIRMED", "PROCESSING", "CANCELLED"),
    "CANCELLED": ("REFUNDED",),
    "RETURNED": ("REFUNDED",),
    "REFUNDED": (),
}

runbook.verb(
    "integrity",
    "data integrity: NOT VALID foreign keys, order totals and subtotals, stock vs warehouses, "
    "order statuses and transitions",
    ack="Checking data integrity…",
)


# --- helpers ------------------------------------------------------------------------------------


async def missing_tables(conn: asyncpg.Connection, *tables: str) -> list[str]:
    found = await conn.fetch("SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL", list(tables))
    return [row["t"] for row in found]


async def has_columns(conn: asyncpg.Connection, table: str, *columns: str) -> bool:
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = ANY($2::text[])"
        " AND attnum > 0 AND NOT attisdropped",
        table,
        list(columns),
    )
    return found == len(columns)


def not_erpgo(component: str, missing: list[str]) -> Finding:
    return Finding.skipped(
        component, f"table {missing[0]} not found — not an ERPGo database?", data={"missing_tables": missing}
    )


def schema_differs(component: str, exc: Exception) -> Finding:
    return Finding.skipped(component, "the schema differs from the guide's — " + describe_error(exc))


def listed(names: list[str], total: int) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {total - MAX_LISTED} more" if total > MAX_LISTED else "")


def money(value: Decimal | None) -> str:
    return "NULL" if value is None else f"{value:.2f}"


def uuids(values, what: str) -> list[str]:
    """Proposal arguments come back from JSON: accept only a non-empty list of uuids."""
    if not isinstance(values, list) or not values or len(values) > MAX_FIX:
        raise Refused(f"expected 1–{MAX_FIX} {what} ids")
    try:
        return [str(uuid.UUID(str(value))) for value in values]
    except ValueError:
        raise Refused(f"not a {what} id: {str(values)[:60]}") from None
