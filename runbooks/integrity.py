"""Guide: "Data Integrity Issues" — foreign keys nobody validated, totals that do not add up, stock that
disagrees with the warehouses, orders in a status the state machine does not know.

Reading is free; the repairs (order totals, subtotals, stock quantities) are Proposals, restricted to the
rows the check found and re-checked when they run.

The checks read the rules from the database they look at, so they are right on the real ERPGo schema
(upper-case statuses under a CHECK constraint, `check_total_calculation` on the totals,
`product_inventory.warehouse_id`) and on the guide's (free-text lower-case statuses, no constraints):
the valid statuses come from the CHECK constraint or enum on `orders.status`; a validated
`check_total_calculation` means no total can break it, so the subtotal is compared with the order's
items instead — what the real schema still lets go wrong.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Proposal, Status
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


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


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


# --- NOT VALID foreign keys -----------------------------------------------------------------------

NOT_VALID_FKS = """
SELECT c.conname,
       c.conrelid::regclass::text  AS child,
       c.confrelid::regclass::text AS parent,
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS child_cols,
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n) AS parent_cols,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS child_names
FROM pg_constraint c
WHERE c.contype = 'f' AND c.convalidated = false
ORDER BY c.conrelid::regclass::text, c.conname
"""
ALL_FKS = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"

# How to name a dangling row so that a person recognises it (ERPGo tables); else its key columns.
ROW_LABELS = {"order_items": ("(SELECT o.order_number FROM orders o WHERE o.id = c.order_id)", "orders")}


def dangling_sql(fk: asyncpg.Record, label: str | None) -> tuple[str, str]:
    """COUNT and SAMPLE queries for the rows of `child` whose key has no `parent` row (MATCH SIMPLE).

    Identifiers come from the catalog already quoted (regclass::text, quote_ident)."""
    child_cols, parent_cols = fk["child_cols"], fk["parent_cols"]
    not_null = " AND ".join(f"c.{col} IS NOT NULL" for col in child_cols)
    joined = " AND ".join(f"p.{pcol} = c.{ccol}" for pcol, ccol in zip(parent_cols, child_cols, strict=False))
    where = f"FROM {fk['child']} c WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {fk['parent']} p WHERE {joined})"
    keys = ", ".join(f"c.{col}::text" for col in child_cols)
    sample = f"SELECT {label or 'NULL'}::text AS label, ARRAY[{keys}] AS keys {where} LIMIT {SAMPLE_DANGLING}"
    return f"SELECT count(*) {where}", sample


@runbook.check("integrity", component="Foreign keys", section=SECTION)
async def not_valid_foreign_keys(ctx: CheckContext) -> Finding:
    """The guide's `pg_constraint … convalidated = false`, with the rows that stop VALIDATE CONSTRAINT."""
    per_query_ms = int(ctx.settings.erpgo_check_timeout * 1000 / 3)
    async with ctx.targets.pg.connect() as conn:
        fks = await conn.fetch(NOT_VALID_FKS)
        if not fks:
            total = await conn.fetchval(ALL_FKS)
            return Finding.ok("Foreign keys", f"all {plural(total, 'foreign key')} validated", data={"constraints": []})
        constraints = []
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {per_query_ms}")
            for fk in fks:
                entry = {
                    "name": fk["conname"],
                    "table": fk["child"],
                    "references": fk["parent"],
                    "dangling": None,
                    "rows": [],
                    "labels": [],
                }
                constraints.append(entry)
                table_name = fk["child"].rsplit(".", 1)[-1].strip('"')
                label, needs = ROW_LABELS.get(table_name, (None, None))
                if needs and await missing_tables(conn, needs):
                    label = None
                count_sql, sample_sql = dangling_sql(fk, label)
                try:
                    async with conn.transaction():  # a savepoint: one slow or odd table spoils nothing else
                        entry["dangling"] = await conn.fetchval(count_sql)
                except asyncpg.QueryCanceledError:
                    entry["error"] = f"not counted (took longer than {per_query_ms / 1000:g} s)"
                except asyncpg.PostgresError as exc:
                    entry["error"] = "not counted — " + describe_error(exc)
                if entry["dangling"]:
                    try:
                        async with conn.transaction():
                            sample = await conn.fetch(sample_sql)
                    except asyncpg.PostgresError:
                        sample = []  # the count stands; the rows just go unnamed
                    for r in sample:
                        keys = ", ".join(
                            f"{name}={value}" for name, value in zip(fk["child_names"], r["keys"], strict=False)
                        )
                        entry["rows"].append((f"{r['label']}: " if r["label"] else "") + keys)
                    entry["labels"] = [r["label"] for r in sample if r["label"]]
    details, evidence = [], []
    for entry in constraints:
        head = f"{entry['name']} ({entry['table']} → {entry['references']}) NOT VALID: "
        validate = f"ALTER TABLE {entry['table']} VALIDATE CONSTRAINT {entry['name']}"
        if entry["dangling"] is None:
            details.append(head + f"dangling rows {entry['error']}")
        elif entry["dangling"]:
            details.append(
                head
                + plural(entry["dangling"], "dangling row")
                + f" — `{validate}` fails (23503) until the dangling rows are repaired or deleted"
            )
            evidence += [f"{entry['table']} {row}: no {entry['references']} row" for row in entry["rows"]]
        else:
            details.append(head + f"no dangling rows — `{validate}` would succeed now")
    dirty = [e for e in constraints if e["dangling"] != 0]
    dangling = sum(e["dangling"] or 0 for e in constraints)
    names = [e["name"] + (f" ({', '.join(e['labels'])})" if e["labels"] else "") for e in constraints]
    title = f"{plural(len(constraints), 'NOT VALID foreign key')}, {plural(dangling, 'dangling row')}: {listed(names, len(names))}"
    status = Status.WARN if dirty else Status.OK
    return Finding(status, "Foreign keys", title, details=details, evidence=evidence, data={"constraints": constraints})


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


# --- stock vs warehouses --------------------------------------------------------------------------

WRONG_STOCK = """
SELECT count(*) OVER () AS total, p.id::text AS id, p.sku, p.stock_quantity,
       COALESCE(SUM(i.quantity_available), 0) AS warehouses
FROM products p
LEFT JOIN product_inventory i ON i.product_id = p.id
GROUP BY p.id, p.sku, p.stock_quantity
HAVING p.stock_quantity != COALESCE(SUM(i.quantity_available), 0)
ORDER BY p.sku
LIMIT $1
"""
# The guide's "Recalculate inventory quantities", restricted to the products found and re-checked.
RECALC_STOCK = """UPDATE products
SET stock_quantity = (
  SELECT COALESCE(SUM(quantity_available), 0)
  FROM product_inventory
  WHERE product_id = products.id
)
WHERE id = ANY($1::uuid[])
  AND stock_quantity != (SELECT COALESCE(SUM(quantity_available), 0) FROM product_inventory WHERE product_id = products.id)
RETURNING sku, stock_quantity"""
LOCK_WRONG_STOCK = """SELECT id, sku, stock_quantity FROM products
WHERE id = ANY($1::uuid[])
  AND stock_quantity != (SELECT COALESCE(SUM(quantity_available), 0) FROM product_inventory WHERE product_id = products.id)
ORDER BY id FOR UPDATE"""


@runbook.check("integrity", component="Stock levels", section=SECTION, proposes=("data.recalc_stock",))
async def stock_levels(ctx: CheckContext) -> Finding:
    """products.stock_quantity against SUM(product_inventory.quantity_available), the guide's recalculation as a check."""
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_tables(conn, "products", "product_inventory"):
            return not_erpgo("Stock levels", missing)
        try:
            rows = await conn.fetch(WRONG_STOCK, MAX_FIX)
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as exc:
            return schema_differs("Stock levels", exc)
    if not rows:
        return Finding.ok(
            "Stock levels",
            "every product's stock_quantity equals what its warehouses hold",
            data={"count": 0, "products": []},
        )
    total = rows[0]["total"]
    described = [f"{r['sku']} ({r['stock_quantity']} vs {r['warehouses']})" for r in rows]
    changes = [f"{r['sku']} {r['stock_quantity']} → {r['warehouses']}" for r in rows]
    skus = [r["sku"] for r in rows]
    title = f"{plural(total, 'product')} whose stock disagrees with the warehouses: {listed(described, total)}"
    evidence = [
        f"{r['sku']}: stock_quantity {r['stock_quantity']}, warehouses hold {r['warehouses']} "
        f"(off by {r['stock_quantity'] - r['warehouses']:+d})"
        for r in rows[:MAX_LISTED]
    ]
    batch = f"the first {len(rows)} of {total}" if total > len(rows) else plural(len(rows), "product")
    proposal = recalc_stock.propose(
        product_ids=[r["id"] for r in rows],
        summary=f"Set stock_quantity of {batch} to what the warehouses hold: {listed(changes, len(changes))}",
        why="the guide's repair (Recalculate inventory quantities), restricted to the products found",
        preview=RECALC_STOCK + f"\n-- $1: the ids of {listed(skus, len(skus))}",
    )
    return Finding.warn(
        "Stock levels",
        title,
        evidence=evidence,
        proposals=[proposal],
        data={
            "count": total,
            "products": [
                {"sku": r["sku"], "stock_quantity": r["stock_quantity"], "warehouses": r["warehouses"]}
                for r in rows[:MAX_LISTED]
            ],
        },
    )


@runbook.remediation("data.recalc_stock", "Recalculate products' stock_quantity from the warehouses")
async def recalc_stock(ctx: CheckContext, product_ids: list[str]) -> str:
    ids = uuids(product_ids, "product")
    async with ctx.targets.pg.connect() as conn:
        async with conn.transaction():
            before = {r["sku"]: r["stock_quantity"] for r in await conn.fetch(LOCK_WRONG_STOCK, ids)}
            if not before:
                raise Refused(
                    f"nothing to fix: the {plural(len(ids), 'product')} agree with the warehouses now (or no longer exist)"
                )
            changed = await conn.fetch(RECALC_STOCK, ids)
    parts = [
        f"{r['sku']} {before.get(r['sku'])} → {r['stock_quantity']}" for r in sorted(changed, key=lambda r: r["sku"])
    ]
    return f"Recalculated stock_quantity of {plural(len(changed), 'product')}: {listed(parts, len(parts))}"


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
