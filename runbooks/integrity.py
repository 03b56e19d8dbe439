"""Guide: "Data Integrity Issues" — foreign keys nobody validated, totals that do not add up, stock that
disagrees with the warehouses, orders in a status the state machine does not know.

Reading is free; the guide's two repairs (order totals, stock quantities) are Proposals, restricted
to the rows the check found and re-checked when they run.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from bot.core.engine import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Refused, Runbook

runbook = Runbook("integrity")

SECTION = "Data Integrity Issues › Inconsistent Data"
REPAIR = "Data Integrity Issues › Inconsistent Data › Repair Data"
MAX_LISTED = 10  # rows named in a finding
MAX_FIX = 50  # rows one approval may repair; a larger backlog is fixed in batches
SAMPLE_DANGLING = 5
VALID_ORDER_STATUSES = ("pending", "confirmed", "processing", "shipped", "delivered", "cancelled", "refunded")

runbook.verb(
    "integrity",
    "data integrity: NOT VALID foreign keys, order totals, stock vs warehouses, order statuses",
    ack="Checking data integrity…",
)


# --- helpers ------------------------------------------------------------------------------------


async def missing_tables(conn: asyncpg.Connection, *tables: str) -> list[str]:
    found = await conn.fetch("SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL", list(tables))
    return [row["t"] for row in found]


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

WRONG_TOTALS = """
SELECT count(*) OVER () AS total, id::text AS id, order_number, total_amount,
       subtotal + tax_amount + shipping_amount - discount_amount AS expected
FROM orders
WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount)
ORDER BY order_number
LIMIT $1
"""
# The guide's repair, restricted to the orders the check found; its WHERE re-checks they are still wrong.
FIX_TOTALS = """UPDATE orders
SET total_amount = subtotal + tax_amount + shipping_amount - discount_amount
WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount)
  AND id = ANY($1::uuid[])
RETURNING order_number, total_amount"""
LOCK_WRONG_TOTALS = """SELECT id, order_number, total_amount FROM orders
WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount) AND id = ANY($1::uuid[])
ORDER BY id FOR UPDATE"""


@runbook.check("integrity", component="Order totals", section=SECTION)
async def order_totals(ctx: CheckContext) -> Finding:
    """The guide's `orders_total_calculation`: total_amount = subtotal + tax + shipping − discount."""
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_tables(conn, "orders"):
            return not_erpgo("Order totals", missing)
        try:
            rows = await conn.fetch(WRONG_TOTALS, MAX_FIX)
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as exc:
            return schema_differs("Order totals", exc)
    if not rows:
        return Finding.ok(
            "Order totals",
            "every order's total adds up (subtotal + tax + shipping − discount)",
            data={"count": 0, "orders": []},
        )
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
    proposal = Proposal(
        action="data.fix_order_totals",
        args={"order_ids": [r["id"] for r in rows]},
        summary=f"Recalculate total_amount of {batch} ({listed(numbers, len(numbers))}) as subtotal + tax + shipping − discount",
        reason="the guide's repair (Fix order totals), restricted to the orders found; orders fixed meanwhile are left alone",
        preview=FIX_TOTALS + f"\n-- $1: the ids of {listed(numbers, len(numbers))}",
    )
    return Finding.warn(
        "Order totals",
        title,
        evidence=evidence,
        proposals=[proposal],
        data={
            "count": total,
            "orders": numbers,
            "rows": [
                {
                    "order_number": r["order_number"],
                    "total_amount": str(r["total_amount"]),
                    "expected": str(r["expected"]),
                }
                for r in rows[:MAX_LISTED]
            ],
        },
    )


@runbook.remediation("data.fix_order_totals", "Recalculate orders' total_amount from their parts")
async def fix_order_totals(ctx: CheckContext, order_ids: list[str]) -> str:
    ids = uuids(order_ids, "order")
    async with ctx.targets.pg.connect() as conn, conn.transaction():
        before = {r["order_number"]: r["total_amount"] for r in await conn.fetch(LOCK_WRONG_TOTALS, ids)}
        if not before:
            raise Refused(f"nothing to fix: the {plural(len(ids), 'order')} add up now (or no longer exist)")
        changed = await conn.fetch(FIX_TOTALS, ids)
    parts = [
        f"{r['order_number']} {money(before.get(r['order_number']))} → {money(r['total_amount'])}"
        for r in sorted(changed, key=lambda r: r["order_number"])
    ]
    return f"Recalculated total_amount of {plural(len(changed), 'order')}: {listed(parts, len(parts))}"


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


@runbook.check("integrity", component="Stock levels", section=SECTION)
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
    proposal = Proposal(
        action="data.recalc_stock",
        args={"product_ids": [r["id"] for r in rows]},
        summary=f"Set stock_quantity of {batch} to what the warehouses hold: {listed(changes, len(changes))}",
        reason="the guide's repair (Recalculate inventory quantities), restricted to the products found",
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
WHERE status IS NULL OR NOT (status = ANY($1::text[]))
ORDER BY order_number
LIMIT $2
"""


@runbook.check(
    "integrity", component="Order statuses", section="Common Error Codes › Application Error Codes (ORDER_002)"
)
async def order_statuses(ctx: CheckContext) -> Finding:
    """Orders stored in a status the order state machine does not have: every transition fails with ORDER_002."""
    async with ctx.targets.pg.connect() as conn:
        if missing := await missing_tables(conn, "orders"):
            return not_erpgo("Order statuses", missing)
        try:
            rows = await conn.fetch(INVALID_STATUSES, list(VALID_ORDER_STATUSES), MAX_LISTED)
        except asyncpg.UndefinedColumnError as exc:
            return schema_differs("Order statuses", exc)
    if not rows:
        return Finding.ok("Order statuses", "every order is in a valid status", data={"count": 0, "orders": []})
    total = rows[0]["total"]
    described = [f"{r['order_number']} ({'NULL' if r['status'] is None else repr(r['status'])})" for r in rows]
    title = f"{plural(total, 'order')} in an invalid status (ORDER_002): {listed(described, total)}"
    details = [
        "valid statuses: " + " → ".join(VALID_ORDER_STATUSES[:5]) + ", or cancelled / refunded",
        "every status change of these orders fails with ORDER_002 (wrong status flow); which status is right "
        "is a business decision — check the order's history before setting it",
    ]
    return Finding.warn(
        "Order statuses",
        title,
        details=details,
        data={"count": total, "orders": [{"order_number": r["order_number"], "status": r["status"]} for r in rows]},
    )
