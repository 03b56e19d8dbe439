"""Guide: "Data Integrity Issues" — Stock quantities that disagree with the warehouses, and their repair."""

from __future__ import annotations

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Refused
from bot.core.units import plural
from runbooks.integrity.common import (
    MAX_FIX,
    MAX_LISTED,
    SECTION,
    listed,
    missing_tables,
    not_erpgo,
    runbook,
    schema_differs,
    uuids,
)

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
