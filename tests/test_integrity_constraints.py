"""`data.add_constraint` on the real ERPGo schema (the demo database): the guide's check_total_calculation and
the foreign keys the check finds missing or NOT VALID, added NOT VALID then validated, each step re-checked —
and what the database refuses once they are in place."""

from __future__ import annotations

import json

import asyncpg
import pytest

from bot.core.findings import Status
from bot.core.registry import Refused
from tests import harness
from tests.db_support import one, run_verb, settings_for, text_of
from tests.demo_dialects import load_demo

STATE = "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2"


@pytest.fixture
async def erp(fresh_database) -> str:
    dsn = fresh_database("constraints")
    await load_demo(dsn, "real")
    return dsn


async def sql(dsn: str, statement: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


async def constraints(dsn: str):
    return one(await run_verb("integrity", dsn), "Constraints")


async def approve(dsn: str, proposal) -> str:
    args = json.loads(json.dumps(proposal.args))
    return await harness.remediate(proposal.action, settings_for(dsn), **args)


async def test_a_not_valid_foreign_key_is_validated_once_its_dangling_rows_are_gone(erp):
    finding = await constraints(erp)
    assert finding.status is Status.WARN and "fk_order_items_product_id NOT VALID" in finding.title
    [proposal] = finding.proposals
    assert proposal.action == "data.add_constraint"
    assert "ALTER TABLE order_items VALIDATE CONSTRAINT fk_order_items_product_id;" in proposal.preview
    assert "ADD CONSTRAINT" not in proposal.preview, "it exists already: only VALIDATE runs"

    refused = await approve(erp, proposal)
    assert "not validated: 1 row of order_items violate it" in refused
    assert await sql(erp, STATE, "order_items", "fk_order_items_product_id") is False

    await sql(erp, "DELETE FROM order_items i WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = i.product_id)")
    outcome = await approve(erp, proposal)
    assert "fk_order_items_product_id validated" in outcome
    assert await sql(erp, STATE, "order_items", "fk_order_items_product_id") is True
    with pytest.raises(Refused, match="validated already"):
        await approve(erp, proposal)


async def test_check_total_calculation_is_added_not_valid_then_validated_after_the_repair(erp):
    await sql(erp, "ALTER TABLE orders DROP CONSTRAINT check_total_calculation")
    await sql(erp, "UPDATE orders SET total_amount = total_amount + 5 WHERE order_number = 'SO-1001'")
    finding = await constraints(erp)
    assert "check_total_calculation: missing" in finding.title
    [proposal] = [p for p in finding.proposals if p.args["name"] == "check_total_calculation"]
    assert (
        "ALTER TABLE orders ADD CONSTRAINT check_total_calculation CHECK "
        "(total_amount = subtotal + tax_amount + shipping_amount - discount_amount) NOT VALID;" in proposal.preview
    )

    first = await approve(erp, proposal)
    assert "added check_total_calculation on orders NOT VALID" in first and "1 row of orders violate it" in first
    with pytest.raises(asyncpg.CheckViolationError):  # new writes are checked from now on
        await sql(erp, "UPDATE orders SET total_amount = total_amount + 1 WHERE order_number = 'SO-1002'")

    await sql(erp, "UPDATE orders SET total_amount = total_amount - 5 WHERE order_number = 'SO-1001'")
    second = await approve(erp, proposal)
    assert "check_total_calculation validated" in second and "added" not in second
    assert await sql(erp, STATE, "orders", "check_total_calculation") is True


async def test_a_missing_foreign_key_is_added_and_the_stock_trigger_is_explained(erp):
    await sql(erp, "ALTER TABLE product_inventory DROP CONSTRAINT fk_product_inventory_warehouse_id")
    finding = await constraints(erp)
    assert "product_inventory.warehouse_id → warehouses: no foreign key" in finding.title
    assert "no trigger on product_inventory" in text_of(finding)
    [proposal] = [p for p in finding.proposals if p.args["table"] == "product_inventory"]

    outcome = await approve(erp, proposal)

    assert "added fk_product_inventory_warehouse_id" in outcome and "validated" in outcome
    assert await sql(erp, STATE, "product_inventory", "fk_product_inventory_warehouse_id") is True
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await sql(erp, "UPDATE product_inventory SET warehouse_id = gen_random_uuid()")


async def test_the_guides_stock_trigger_is_recognised(erp):
    await sql(
        erp,
        """CREATE FUNCTION update_product_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE products SET stock_quantity = (SELECT COALESCE(SUM(quantity_available), 0) FROM product_inventory
                                        WHERE product_id = NEW.product_id) WHERE id = NEW.product_id;
  RETURN NEW;
END $$""",
    )
    await sql(
        erp,
        "CREATE TRIGGER update_product_stock AFTER UPDATE ON product_inventory "
        "FOR EACH ROW EXECUTE FUNCTION update_product_stock()",
    )
    finding = await constraints(erp)
    assert "trigger update_product_stock → update_product_stock()" in text_of(finding)
    assert "it rewrites products.stock_quantity from the warehouses" in text_of(finding)


async def test_an_unknown_kind_or_a_name_that_is_not_an_identifier_is_refused(erp):
    settings = settings_for(erp)
    with pytest.raises(Refused, match="unknown constraint kind"):
        await harness.remediate("data.add_constraint", settings, kind="check", table="users", name="x")
    with pytest.raises(Refused, match="not a plain identifier"):
        await harness.remediate(
            "data.add_constraint", settings, kind="foreign_key", table="orders; drop", name="x", column="a"
        )
