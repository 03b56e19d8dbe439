"""Guide: "Data Integrity Issues" — Order totals and subtotals that do not add up, and their repairs."""

from __future__ import annotations

import re

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal
from bot.core.registry import Refused
from bot.core.units import plural
from runbooks.integrity.common import (
    MAX_FIX,
    MAX_LISTED,
    SECTION,
    has_columns,
    listed,
    missing_tables,
    money,
    not_erpgo,
    runbook,
    schema_differs,
    uuids,
)

# --- order totals ---------------------------------------------------------------------------------

PARTS = "subtotal + tax_amount + shipping_amount - discount_amount"
WRONG_TOTALS = f"""
SELECT count(*) OVER () AS total, id::text AS id, order_number, total_amount, {PARTS} AS expected
FROM orders
WHERE total_amount != ({PARTS})
ORDER BY order_number
LIMIT $1
"""
# The guide's repair, restricted to the orders the check found; its WHERE re-checks they are still wrong.
FIX_TOTALS = f"""UPDATE orders
SET total_amount = {PARTS}
WHERE total_amount != ({PARTS})
  AND id = ANY($1::uuid[])
RETURNING order_number, total_amount"""
LOCK_WRONG_TOTALS = f"""SELECT id, order_number, total_amount FROM orders
WHERE total_amount != ({PARTS}) AND id = ANY($1::uuid[])
ORDER BY id FOR UPDATE"""
TOTAL_CONSTRAINTS = """
SELECT conname, convalidated, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE conrelid = 'orders'::regclass AND contype = 'c'
  AND pg_get_constraintdef(oid) ~ 'total_amount' AND pg_get_constraintdef(oid) ~ 'subtotal'
ORDER BY conname
"""
# What an order's subtotal is made of: the real application's item trigger sums unit_price × quantity −
# discount_amount (the items' tax goes to tax_amount); the guide's schema has only total_price.
REAL_ITEM_AMOUNT = "i.unit_price * i.quantity - i.discount_amount"
GUIDE_ITEM_AMOUNT = "i.total_price"


def shape(expression: str) -> str:
    """An expression without parentheses, casts, spaces or CHECK: comparable with what pg_get_constraintdef prints."""
    return re.sub(r"::[a-z ]+|[()\s]|^CHECK", "", expression)


def subtotal_queries(amount: str) -> tuple[str, str, str]:
    """The check, the lock and the repair for subtotals that disagree with the items, with `amount` per item."""
    items = f"(SELECT COALESCE(SUM({amount}), 0) FROM order_items i WHERE i.order_id = o.id)"
    check = f"""SELECT count(*) OVER () AS total, o.id::text AS id, o.order_number, o.subtotal, {items} AS items
FROM orders o
WHERE o.subtotal != {items}
ORDER BY o.order_number
LIMIT $1"""
    lock = f"""SELECT o.id, o.order_number, o.subtotal FROM orders o
WHERE o.subtotal != {items} AND o.id = ANY($1::uuid[])
ORDER BY o.id FOR UPDATE"""
    fix = f"""UPDATE orders o
SET subtotal = {items},
    total_amount = {items} + o.tax_amount + o.shipping_amount - o.discount_amount
WHERE o.subtotal != {items}
  AND o.id = ANY($1::uuid[])
RETURNING o.order_number, o.subtotal, o.total_amount"""
    return check, lock, fix


async def item_amount(conn: asyncpg.Connection) -> str | None:
    """How an item counts towards its order's subtotal on this schema; None without order_items."""
    if await missing_tables(conn, "order_items"):
        return None
    if await has_columns(conn, "order_items", "unit_price", "quantity", "discount_amount"):
        return REAL_ITEM_AMOUNT
    return GUIDE_ITEM_AMOUNT if await has_columns(conn, "order_items", "total_price") else None


def totals_rule(constraints: list[asyncpg.Record]) -> tuple[bool, list[str]]:
    """Whether a validated CHECK enforces the guide's total, and what to say about the constraints."""
    enforced, said = False, []
    for c in constraints:
        same = shape(c["definition"]) == shape(f"total_amount = {PARTS}")
        if c["convalidated"] and same:
            enforced = True
            said.append(
                f"{c['conname']} (validated) enforces total_amount = subtotal + tax + shipping − discount: "
                "no stored total can break it"
            )
        else:
            state = "validated" if c["convalidated"] else "NOT VALID: older rows may break it"
            said.append(f"{c['conname']} ({state}): {c['definition']}")
    return enforced, said


def totals_part(rows: list[asyncpg.Record]) -> tuple[str, list[str], Proposal]:
    total = rows[0]["total"]
    numbers = [r["order_number"] for r in rows]
    first = rows[0]
    example = f" (stored {money(first['total_amount'])}, should be {money(first['expected'])})" if total == 1 else ""
    title = f"{plural(total, 'order')} whose total does not add up: {listed(numbers, total)}{example}"
    evidence = [
        f"{r['order_number']}: total_amount {money(r['total_amount'])}, subtotal + tax + shipping − discount = "
        f"{money(r['expected'])} (off by {r['total_amount'] - r['expected']:+.2f})"
        for r in rows[:MAX_LISTED]
    ]
    batch = f"the first {len(rows)} of {total}" if total > len(rows) else plural(len(rows), "order")
    proposal = fix_order_totals.propose(
        order_ids=[r["id"] for r in rows],
        summary=f"Recalculate total_amount of {batch} ({listed(numbers, len(numbers))}) as subtotal + tax + shipping − discount",
        why="the guide's repair (Fix order totals), restricted to the orders found; orders fixed meanwhile are left alone",
        preview=FIX_TOTALS + f"\n-- $1: the ids of {listed(numbers, len(numbers))}",
    )
    return title, evidence, proposal


def subtotals_part(rows: list[asyncpg.Record], fix_sql: str) -> tuple[str, list[str], Proposal]:
    total = rows[0]["total"]
    numbers = [r["order_number"] for r in rows]
    described = [f"{r['order_number']} (subtotal {money(r['subtotal'])}, items {money(r['items'])})" for r in rows]
    title = f"{plural(total, 'order')} whose subtotal disagrees with its items: {listed(described, total)}"
    evidence = [
        f"{r['order_number']}: subtotal {money(r['subtotal'])}, its items add up to {money(r['items'])} "
        f"(off by {r['subtotal'] - r['items']:+.2f})"
        for r in rows[:MAX_LISTED]
    ]
    batch = f"the first {len(rows)} of {total}" if total > len(rows) else plural(len(rows), "order")
    changes = [f"{r['order_number']} {money(r['subtotal'])} → {money(r['items'])}" for r in rows]
    proposal = fix_order_subtotals.propose(
        order_ids=[r["id"] for r in rows],
        summary=f"Recalculate subtotal and total_amount of {batch} from their items: {listed(changes, len(changes))}",
        why="the items are the order's detail; tax, shipping and discount stay as stored. If the customer already "
        "paid the old total, refund the difference (or restore the missing item) instead — the database "
        "refuses a total below paid_amount",
        preview=fix_sql + f"\n-- $1: the ids of {listed(numbers, len(numbers))}",
    )
    return title, evidence, proposal


def row_data(rows: list[asyncpg.Record], *names: str) -> list[dict]:
    return [{"order_number": r["order_number"], **{n: str(r[n]) for n in names}} for r in rows[:MAX_LISTED]]


@runbook.check(
    "integrity",
    component="Order totals",
    section=SECTION,
    proposes=("data.fix_order_subtotals", "data.fix_order_totals"),
)
async def order_totals(ctx: CheckContext) -> Finding:
    """The guide's `orders_total_calculation` (total = subtotal + tax + shipping − discount), unless a validated
    CHECK already enforces it, and the order's subtotal against its items."""
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_tables(conn, "orders"):
            return not_erpgo("Order totals", missing)
        try:
            enforced, said = totals_rule(await conn.fetch(TOTAL_CONSTRAINTS))
            wrong_totals = [] if enforced else await conn.fetch(WRONG_TOTALS, MAX_FIX)
            amount = await item_amount(conn)
            check_sql, _, fix_sql = subtotal_queries(amount) if amount else ("", "", "")
            wrong_subtotals = await conn.fetch(check_sql, MAX_FIX) if amount else []
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as exc:
            return schema_differs("Order totals", exc)
    data = {
        "count": wrong_totals[0]["total"] if wrong_totals else 0,
        "orders": [r["order_number"] for r in wrong_totals],
        "rows": row_data(wrong_totals, "total_amount", "expected"),
        "enforced_by_constraint": enforced,
        "subtotals": {
            "count": wrong_subtotals[0]["total"] if wrong_subtotals else 0,
            "orders": [r["order_number"] for r in wrong_subtotals],
            "rows": row_data(wrong_subtotals, "subtotal", "items"),
        },
    }
    details = said + ([] if amount else ["order_items not found: subtotals not compared with items"])
    if not wrong_totals and not wrong_subtotals:
        title = (
            "every order's total is enforced by check_total_calculation"
            if enforced
            else "every order's total adds up (subtotal + tax + shipping − discount)"
        )
        title += " and every subtotal matches its items" if amount else ""
        return Finding.ok("Order totals", title, details=details, data=data)
    titles, evidence, proposals = [], [], []
    for rows, part in ((wrong_totals, totals_part), (wrong_subtotals, lambda r: subtotals_part(r, fix_sql))):
        if rows:
            title, lines, proposal = part(rows)
            titles.append(title)
            evidence += lines
            proposals.append(proposal)
    return Finding.warn(
        "Order totals", "; ".join(titles), details=details, evidence=evidence, proposals=proposals, data=data
    )


@runbook.remediation("data.fix_order_totals", "Recalculate orders' total_amount from their parts")
async def fix_order_totals(ctx: CheckContext, order_ids: list[str]) -> str:
    ids = uuids(order_ids, "order")
    async with ctx.targets.pg.connect() as conn:
        async with conn.transaction():
            before = {r["order_number"]: r["total_amount"] for r in await conn.fetch(LOCK_WRONG_TOTALS, ids)}
            if not before:
                raise Refused(f"nothing to fix: the {plural(len(ids), 'order')} add up now (or no longer exist)")
            changed = await conn.fetch(FIX_TOTALS, ids)
    parts = [
        f"{r['order_number']} {money(before.get(r['order_number']))} → {money(r['total_amount'])}"
        for r in sorted(changed, key=lambda r: r["order_number"])
    ]
    return f"Recalculated total_amount of {plural(len(changed), 'order')}: {listed(parts, len(parts))}"


@runbook.remediation("data.fix_order_subtotals", "Recalculate orders' subtotal and total_amount from their items")
async def fix_order_subtotals(ctx: CheckContext, order_ids: list[str]) -> str:
    ids = uuids(order_ids, "order")
    async with ctx.targets.pg.connect() as conn:
        amount = await item_amount(conn)
        if amount is None:
            raise Refused("order_items not found: nothing to recalculate from")
        _, lock_sql, fix_sql = subtotal_queries(amount)
        try:
            async with conn.transaction():
                before = {r["order_number"]: r["subtotal"] for r in await conn.fetch(lock_sql, ids)}
                if not before:
                    raise Refused(
                        f"nothing to fix: the {plural(len(ids), 'order')} match their items now (or no longer exist)"
                    )
                changed = await conn.fetch(fix_sql, ids)
        except asyncpg.CheckViolationError as exc:
            raise Refused(
                f"the database refused the new totals ({exc.constraint_name or 'a CHECK constraint'}): "
                "an order already paid more than its recalculated total needs a refund first"
            ) from None
    parts = [
        f"{r['order_number']} subtotal {money(before.get(r['order_number']))} → {money(r['subtotal'])}, "
        f"total {money(r['total_amount'])}"
        for r in sorted(changed, key=lambda r: r["order_number"])
    ]
    return f"Recalculated subtotal and total_amount of {plural(len(changed), 'order')}: {listed(parts, len(parts))}"
