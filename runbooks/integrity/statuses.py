"""Guide: "Data Integrity Issues" — Order statuses the state machine does not know, and transitions it forbids."""

from __future__ import annotations

import re

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.units import plural
from runbooks.integrity.common import (
    MAX_LISTED,
    ORDER_TRANSITIONS,
    VALID_ORDER_STATUSES,
    has_columns,
    listed,
    missing_tables,
    not_erpgo,
    runbook,
    schema_differs,
)

# --- order statuses (ORDER_002) -------------------------------------------------------------------

INVALID_STATUSES = """
SELECT count(*) OVER () AS total, order_number, status
FROM orders
WHERE status IS NULL OR NOT (status::text = ANY($1::text[]))
ORDER BY order_number
LIMIT $2
"""
FORBIDDEN_TRANSITIONS = """
SELECT count(*) OVER () AS total, order_number, previous_status::text AS previous_status, status::text AS status
FROM orders
WHERE previous_status IS NOT NULL AND status IS NOT NULL AND previous_status::text <> status::text
  AND NOT (previous_status::text || '>' || status::text = ANY($1::text[]))
ORDER BY order_number
LIMIT $2
"""
COLUMN_TYPE = """
SELECT a.atttypid, t.typtype, format_type(a.atttypid, a.atttypmod) AS type_name
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = 'orders'::regclass AND a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped
"""
ENUM_LABELS = "SELECT enumlabel FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder"
# CHECK constraints on that one column (an IN list prints as "= ANY (ARRAY['A'::character varying, …])")
COLUMN_CHECKS = """
SELECT c.conname, c.convalidated, pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.conrelid = 'orders'::regclass AND c.contype = 'c' AND cardinality(c.conkey) = 1 AND a.attname = $1
ORDER BY c.conname
"""
VALUE_LIST = re.compile(r"=\s*ANY\s*\(+\s*ARRAY\[(?P<items>.*?)\]|\bIN\s*\((?P<list>.*?)\)", re.IGNORECASE | re.DOTALL)
LITERAL = re.compile(r"'((?:[^']|'')*)'")


def values_of_check(definition: str) -> list[str] | None:
    """The values an `IN (…)` / `= ANY (ARRAY[…])` CHECK allows; None for any other kind of CHECK."""
    match = VALUE_LIST.search(definition)
    if not match:
        return None
    values = [v.replace("''", "'") for v in LITERAL.findall(match["items"] or match["list"])]
    return values or None


async def allowed_statuses(conn: asyncpg.Connection, column: str = "status") -> tuple[list[str] | None, str]:
    """The values orders.<column> may hold, read from its enum type or its CHECK constraint, and where from."""
    kind = await conn.fetchrow(COLUMN_TYPE, column)
    if kind is None:
        return None, f"no column orders.{column}"
    if kind["typtype"] == b"e" or kind["typtype"] == "e":
        labels = [r["enumlabel"] for r in await conn.fetch(ENUM_LABELS, kind["atttypid"])]
        return labels, f"enum {kind['type_name']}"
    for check in await conn.fetch(COLUMN_CHECKS, column):
        values = values_of_check(check["definition"])
        if values:
            validated = "" if check["convalidated"] else ", NOT VALID"
            return values, f"CHECK {check['conname']}{validated}"
    return None, f"orders.{column} is {kind['type_name']} without an enum or CHECK constraint"


def transition_pairs() -> list[str]:
    return [f"{before}>{after}" for before, afters in ORDER_TRANSITIONS.items() for after in afters]


def statuses_part(rows: list[asyncpg.Record]) -> str:
    total = rows[0]["total"]
    described = [f"{r['order_number']} ({'NULL' if r['status'] is None else repr(r['status'])})" for r in rows]
    return f"{plural(total, 'order')} in an invalid status (ORDER_002): {listed(described, total)}"


def transitions_part(rows: list[asyncpg.Record]) -> str:
    total = rows[0]["total"]
    described = [f"{r['order_number']} ({r['previous_status']} → {r['status']})" for r in rows]
    return (
        f"{plural(total, 'order')} whose last status change the state machine forbids (ORDER_002): "
        f"{listed(described, total)}"
    )


@runbook.check(
    "integrity", component="Order statuses", section="Common Error Codes › Application Error Codes (ORDER_002)"
)
async def order_statuses(ctx: CheckContext) -> Finding:
    """Orders stored in a status the database does not allow (its CHECK or enum; else the guide's state machine),
    and, where orders keep previous_status, orders that reached their status by a transition the application
    forbids: every further status change of them fails."""
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_tables(conn, "orders"):
            return not_erpgo("Order statuses", missing)
        try:
            valid, source = await allowed_statuses(conn)
            if valid is None:
                valid, source = list(VALID_ORDER_STATUSES), f"the guide's state machine ({source})"
            rows = await conn.fetch(INVALID_STATUSES, valid, MAX_LISTED)
            follows_app = set(valid) <= set(ORDER_TRANSITIONS) and await has_columns(conn, "orders", "previous_status")
            moves = await conn.fetch(FORBIDDEN_TRANSITIONS, transition_pairs(), MAX_LISTED) if follows_app else []
        except asyncpg.UndefinedColumnError as exc:
            return schema_differs("Order statuses", exc)
    details = [f"valid statuses ({source}): " + ", ".join(valid)]
    if follows_app:
        details.append("transitions checked against the application's state machine (previous_status → status)")
    data = {
        "count": rows[0]["total"] if rows else 0,
        "valid": valid,
        "source": source,
        "orders": [{"order_number": r["order_number"], "status": r["status"]} for r in rows],
        "transitions": {
            "checked": follows_app,
            "count": moves[0]["total"] if moves else 0,
            "orders": [
                {"order_number": r["order_number"], "previous_status": r["previous_status"], "status": r["status"]}
                for r in moves
            ],
        },
    }
    if not rows and not moves:
        title = "every order is in a valid status" + (" reached by an allowed transition" if follows_app else "")
        return Finding.ok("Order statuses", title, details=details, data=data)
    titles = ([statuses_part(rows)] if rows else []) + ([transitions_part(moves)] if moves else [])
    for r in moves[:MAX_LISTED]:
        allowed = ", ".join(ORDER_TRANSITIONS.get(r["previous_status"], ())) or "nothing (a final status)"
        details.append(f"{r['order_number']}: {r['previous_status']} may only become {allowed}")
    details.append(
        "every status change of these orders fails with ORDER_002 (wrong status flow); which status is "
        "right is a business decision — check the order's history before setting it"
    )
    return Finding.warn("Order statuses", "; ".join(titles), details=details, data=data)
