"""/erpgo integrity: the guide's Data Integrity checks find exactly the planted faults, on the real ERPGo schema
and on the guide's; the repairs fix exactly the rows found, once."""

from __future__ import annotations

import json

import asyncpg
import pytest

from bot.app import build_registry
from bot.context import CheckContext
from bot.core.engine import run_checks
from bot.core.findings import Finding, Status
from bot.core.registry import Refused
from bot.settings import load_settings
from bot.targets import Targets
from demo.services import free_port
from tests import harness
from tests.demo_dialects import (  # noqa: F401 (fixtures)
    demo_database,
    demo_database_copy,
    guide_database,
    load_demo,
)
from tests.support import run_bot_async

COMPONENTS = ("Foreign keys", "Order totals", "Stock levels", "Order statuses", "Constraints")
REAL_STATUSES = [
    "DRAFT",
    "PENDING",
    "CONFIRMED",
    "PROCESSING",
    "SHIPPED",
    "DELIVERED",
    "CANCELLED",
    "REFUNDED",
    "RETURNED",
    "ON_HOLD",
    "PARTIALLY_SHIPPED",
]
FOREIGN_KEY = {"real": "fk_order_items_product_id", "guide": "order_items_product_id_fkey"}


def context_for(dsn: str) -> CheckContext:
    settings = load_settings(erpgo_database_url=dsn)
    return harness.context(settings, Targets(settings), actor=harness.APPROVED)


async def integrity(dsn: str) -> dict[str, Finding]:
    registry = build_registry()
    findings = await run_checks(registry.verbs["integrity"].checks, context_for(dsn))
    assert [f.component for f in findings] == list(COMPONENTS)
    return {f.component: f for f in findings}


async def check(dsn: str, name: str) -> Finding:
    registry = build_registry()
    [finding] = await run_checks([registry.checks[name]], context_for(dsn))
    return finding


async def remediate(dsn: str, proposal) -> str:
    registry = build_registry()
    return await registry.remediations[proposal.action].func(context_for(dsn), **json.loads(json.dumps(proposal.args)))


@pytest.fixture
async def demo_copy(fresh_database) -> str:
    """A fresh copy of the (real) demo database, for tests that change data."""
    dsn = fresh_database("integrity")
    await load_demo(dsn, "real")
    return dsn


@pytest.fixture
async def guide_copy(fresh_database) -> str:
    dsn = fresh_database("integrity_guide")
    await load_demo(dsn, "guide")
    return dsn


async def sql(dsn: str, statement: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


# --- the checks on the demo database, in both dialects ----------------------------------------


async def test_each_check_names_exactly_its_planted_fault(demo_dsn):
    dialect, dsn = demo_dsn
    found = await integrity(dsn)
    assert all(f.status is Status.WARN for f in found.values()), {c: f.title for c, f in found.items()}

    [fk] = found["Foreign keys"].data["constraints"]
    assert (fk["name"], fk["table"], fk["references"], fk["dangling"]) == (
        FOREIGN_KEY[dialect],
        "order_items",
        "products",
        1,
    )
    assert fk["labels"] == ["SO-1004"]
    assert f"{FOREIGN_KEY[dialect]} (SO-1004)" in found["Foreign keys"].title
    assert f"VALIDATE CONSTRAINT {FOREIGN_KEY[dialect]}" in found["Foreign keys"].details[0]

    stock = found["Stock levels"]
    assert stock.data["products"] == [{"sku": "SKU-WIDGET-RED", "stock_quantity": 412, "warehouses": 392}]
    assert "SKU-WIDGET-RED (412 vs 392)" in stock.title

    totals, statuses = found["Order totals"], found["Order statuses"]
    assert statuses.proposals == []  # which status is right is a business decision
    if dialect == "guide":
        assert totals.data["orders"] == ["SO-1003"] and totals.data["subtotals"]["orders"] == []
        assert totals.data["rows"] == [{"order_number": "SO-1003", "total_amount": "73.81", "expected": "71.08"}]
        assert "SO-1003 (stored 73.81, should be 71.08)" in totals.title
        assert statuses.data["orders"] == [{"order_number": "SO-1027", "status": "unknown"}]
        assert statuses.data["source"].startswith("the guide's state machine")
        assert "ORDER_002" in statuses.title and "SO-1027 ('unknown')" in statuses.title
    else:
        # check_total_calculation makes a wrong total impossible: what goes wrong is a subtotal left behind
        assert totals.data["enforced_by_constraint"] is True and totals.data["orders"] == []
        assert totals.data["subtotals"]["rows"] == [{"order_number": "SO-1003", "subtotal": "65.70", "items": "54.50"}]
        assert totals.title == "1 order whose subtotal disagrees with its items: SO-1003 (subtotal 65.70, items 54.50)"
        assert any("check_total_calculation (validated)" in line for line in totals.details)
        # the statuses come from the CHECK constraint: the real upper-case orders are all valid ...
        assert statuses.data["valid"] == REAL_STATUSES and statuses.data["source"] == "CHECK orders_status_check"
        assert statuses.data["orders"] == []
        # ... and the fault is a transition the application's state machine forbids
        assert statuses.data["transitions"]["orders"] == [
            {"order_number": "SO-1027", "previous_status": "DELIVERED", "status": "PENDING"}
        ]
        assert "SO-1027 (DELIVERED → PENDING)" in statuses.title and "ORDER_002" in statuses.title
        assert "SO-1027: DELIVERED may only become RETURNED, REFUNDED" in statuses.details


async def test_repairs_are_proposed_with_the_exact_sql_and_the_rows(demo_dsn):
    dialect, dsn = demo_dsn
    found = await integrity(dsn)
    [totals] = found["Order totals"].proposals
    assert len(totals.args["order_ids"]) == 1 and "1 order" in totals.summary and "SO-1003" in totals.summary
    assert "id = ANY($1::uuid[])" in totals.preview and "SO-1003" in totals.preview
    if dialect == "guide":
        assert totals.action == "data.fix_order_totals"
        assert totals.preview.startswith(
            "UPDATE orders\nSET total_amount = subtotal + tax_amount + shipping_amount - discount_amount"
        )
    else:
        assert totals.action == "data.fix_order_subtotals"
        assert (
            totals.summary == "Recalculate subtotal and total_amount of 1 order from their items: SO-1003 65.70 → 54.50"
        )
        assert totals.preview.startswith(
            "UPDATE orders o\nSET subtotal = (SELECT COALESCE(SUM(i.unit_price * i.quantity - i.discount_amount), 0)"
        )
    [stock] = found["Stock levels"].proposals
    assert stock.action == "data.recalc_stock" and len(stock.args["product_ids"]) == 1
    assert "1 product" in stock.summary and "SKU-WIDGET-RED" in stock.summary
    assert stock.preview.startswith("UPDATE products\nSET stock_quantity = (")
    assert json.loads(json.dumps(totals.args)) == totals.args  # survives the approval store as JSON


async def test_a_database_without_erpgo_tables_is_skipped_not_failed(fresh_database):
    found = await integrity(fresh_database("empty"))
    for name in ("Order totals", "Stock levels", "Order statuses"):
        assert found[name].status is Status.SKIPPED
    assert found["Order totals"].title == "table orders not found — not an ERPGo database?"
    assert found["Stock levels"].title == "table products not found — not an ERPGo database?"
    assert found["Foreign keys"].status is Status.OK and found["Foreign keys"].title == "all 0 foreign keys validated"


async def test_database_not_configured_or_down():
    registry = build_registry()
    findings = await run_checks(
        registry.verbs["integrity"].checks, harness.context(load_settings(), Targets(load_settings()))
    )
    assert {f.status for f in findings} == {Status.SKIPPED}
    assert all("ERPGO_DATABASE_URL" in f.title for f in findings)
    down = await integrity(f"postgresql://erpgo@127.0.0.1:{free_port()}/erp")
    assert all(f.status is Status.CRIT and f.title.startswith("unreachable") for f in down.values())


# --- the rules come from the database ---------------------------------------------------------


async def test_valid_statuses_are_read_from_a_not_valid_check_constraint(fresh_database):
    dsn = fresh_database("statuses")
    await sql(dsn, "CREATE TABLE orders (order_number text, status text)")
    await sql(
        dsn, "INSERT INTO orders VALUES ('A-1', 'NEW'), ('A-2', 'shipped'), ('A-3', 'LOST'), ('A-4', 'it''s odd')"
    )
    await sql(
        dsn,
        "ALTER TABLE orders ADD CONSTRAINT orders_status_check"
        " CHECK (status IN ('NEW', 'SHIPPED', 'it''s fine')) NOT VALID",
    )
    found = await check(dsn, "order_statuses")
    assert found.status is Status.WARN
    assert found.data["valid"] == ["NEW", "SHIPPED", "it's fine"]
    assert found.data["source"] == "CHECK orders_status_check, NOT VALID"
    assert [o["order_number"] for o in found.data["orders"]] == ["A-2", "A-3", "A-4"]
    assert found.data["transitions"]["checked"] is False  # no previous_status, not the application's statuses


async def test_valid_statuses_are_read_from_an_enum(fresh_database):
    dsn = fresh_database("enum")
    await sql(dsn, "CREATE TYPE order_status AS ENUM ('open', 'closed')")
    await sql(dsn, "CREATE TABLE orders (order_number text, status order_status)")
    await sql(dsn, "INSERT INTO orders VALUES ('E-1', 'open'), ('E-2', 'closed')")
    found = await check(dsn, "order_statuses")
    assert found.status is Status.OK and found.title == "every order is in a valid status"
    assert found.data["valid"] == ["open", "closed"] and found.data["source"] == "enum order_status"


async def test_a_not_valid_total_constraint_is_checked_row_by_row(fresh_database):
    dsn = fresh_database("totals")
    await sql(
        dsn,
        "CREATE TABLE orders (id uuid DEFAULT gen_random_uuid(), order_number text, subtotal numeric,"
        " tax_amount numeric, shipping_amount numeric, discount_amount numeric, total_amount numeric)",
    )
    await sql(
        dsn,
        "INSERT INTO orders (order_number, subtotal, tax_amount, shipping_amount, discount_amount, total_amount)"
        " VALUES ('T-1', 10, 1, 2, 0, 13), ('T-2', 10, 1, 2, 0, 99)",
    )
    await sql(
        dsn,
        "ALTER TABLE orders ADD CONSTRAINT check_total_calculation"
        " CHECK (total_amount = subtotal + tax_amount + shipping_amount - discount_amount) NOT VALID",
    )
    found = await check(dsn, "order_totals")
    assert found.status is Status.WARN and found.data["orders"] == ["T-2"]
    assert found.data["enforced_by_constraint"] is False
    assert any(line.startswith("check_total_calculation (NOT VALID") for line in found.details)
    assert "order_items not found: subtotals not compared with items" in found.details


async def test_the_real_schema_refuses_a_wrong_total_outright(demo_copy):
    with pytest.raises(asyncpg.CheckViolationError, match="check_total_calculation"):
        await sql(demo_copy, "UPDATE orders SET total_amount = total_amount + 1 WHERE order_number = 'SO-1010'")
    with pytest.raises(asyncpg.CheckViolationError, match="orders_status_check"):
        await sql(demo_copy, "UPDATE orders SET status = 'unknown' WHERE order_number = 'SO-1010'")


# --- repairs on a copy ------------------------------------------------------------------------


async def test_fix_order_totals_fixes_only_what_was_found_then_refuses(guide_copy):
    found = await check(guide_copy, "order_totals")
    [proposal] = found.proposals
    # after the check, another order goes wrong: the approved repair must not touch it
    await sql(guide_copy, "UPDATE orders SET total_amount = total_amount + 1 WHERE order_number = 'SO-1010'")

    result = await remediate(guide_copy, proposal)
    assert result == "Recalculated total_amount of 1 order: SO-1003 73.81 → 71.08"

    after = await check(guide_copy, "order_totals")
    assert after.data["orders"] == ["SO-1010"], "only the order that went wrong later is left"
    await sql(guide_copy, "UPDATE orders SET total_amount = total_amount - 1 WHERE order_number = 'SO-1010'")
    assert (await check(guide_copy, "order_totals")).status is Status.OK

    with pytest.raises(Refused, match="nothing to fix"):
        await remediate(guide_copy, proposal)


async def test_fix_order_subtotals_fixes_only_what_was_found_then_refuses(demo_copy):
    found = await check(demo_copy, "order_totals")
    [proposal] = found.proposals
    # after the check, an item of an unpaid order disappears: the approved repair must not touch it
    await sql(
        demo_copy,
        "DELETE FROM order_items WHERE product_sku = 'SKU-PSU-12V'"
        " AND order_id = (SELECT id FROM orders WHERE order_number = 'SO-1030')",
    )

    result = await remediate(demo_copy, proposal)
    assert result == "Recalculated subtotal and total_amount of 1 order: SO-1003 subtotal 65.70 → 54.50, total 71.42"
    [row] = await sql(demo_copy, "SELECT subtotal, total_amount FROM orders WHERE order_number = 'SO-1003'")
    assert (str(row["subtotal"]), str(row["total_amount"])) == ("54.50", "71.42")

    after = await check(demo_copy, "order_totals")
    assert after.data["subtotals"]["orders"] == ["SO-1030"], "only the order that went wrong later is left"
    with pytest.raises(Refused, match="nothing to fix"):
        await remediate(demo_copy, proposal)


async def test_fix_order_subtotals_refuses_to_lower_a_paid_total(demo_copy):
    # SO-1010 is paid: dropping an item would take its total below paid_amount (check_paid_vs_total)
    await sql(
        demo_copy,
        "DELETE FROM order_items WHERE product_sku = 'SKU-TOOL-CRIMP'"
        " AND order_id = (SELECT id FROM orders WHERE order_number = 'SO-1010')",
    )
    found = await check(demo_copy, "order_totals")
    [proposal] = found.proposals
    assert found.data["subtotals"]["orders"] == ["SO-1003", "SO-1010"]
    with pytest.raises(Refused, match=r"check_paid_vs_total.*refund first"):
        await remediate(demo_copy, proposal)
    [row] = await sql(demo_copy, "SELECT subtotal FROM orders WHERE order_number = 'SO-1003'")
    assert str(row["subtotal"]) == "65.70", "all or nothing: one refused order leaves the others as they were"


async def test_recalc_stock_fixes_the_product_then_refuses(demo_copy_of):
    _, dsn = demo_copy_of
    found = await check(dsn, "stock_levels")
    [proposal] = found.proposals
    result = await remediate(dsn, proposal)
    assert result == "Recalculated stock_quantity of 1 product: SKU-WIDGET-RED 412 → 392"
    assert (await check(dsn, "stock_levels")).status is Status.OK
    [row] = await sql(dsn, "SELECT stock_quantity FROM products WHERE sku = 'SKU-WIDGET-RED'")
    assert row["stock_quantity"] == 392
    with pytest.raises(Refused, match="nothing to fix"):
        await remediate(dsn, proposal)


async def test_repairs_refuse_arguments_that_are_not_row_ids(demo_copy):
    registry = build_registry()
    for action, key in (
        ("data.fix_order_totals", "order_ids"),
        ("data.fix_order_subtotals", "order_ids"),
        ("data.recalc_stock", "product_ids"),
    ):
        for bad in ([], ["1; DROP TABLE orders"], "not-a-list"):
            with pytest.raises(Refused):
                await registry.remediations[action].func(context_for(demo_copy), **{key: bad})


async def test_a_not_valid_foreign_key_without_dangling_rows_is_ok_and_says_it_can_be_validated(demo_copy_of):
    _, dsn = demo_copy_of
    await sql(dsn, "DELETE FROM order_items WHERE product_id = '7d3f5c1e-2b4a-4e8f-9a61-0c5b8e2d4f70'")
    found = await check(dsn, "not_valid_foreign_keys")
    assert found.status is Status.OK
    assert found.data["constraints"][0]["dangling"] == 0
    assert "would succeed now" in found.details[0]


async def test_dangling_rows_are_counted_for_composite_keys_and_odd_names(fresh_database):
    dsn = fresh_database("fk")
    await sql(dsn, 'CREATE TABLE "Parent Table" (a int, "B col" text, PRIMARY KEY (a, "B col"))')
    await sql(dsn, 'CREATE TABLE child (id int, a int, "B col" text)')
    await sql(dsn, """INSERT INTO "Parent Table" VALUES (1, 'x')""")
    await sql(dsn, """INSERT INTO child VALUES (1, 1, 'x'), (2, 1, 'y'), (3, NULL, 'z'), (4, 2, 'x')""")
    await sql(
        dsn, 'ALTER TABLE child ADD CONSTRAINT "child fk" FOREIGN KEY (a, "B col") REFERENCES "Parent Table" NOT VALID'
    )
    found = await check(dsn, "not_valid_foreign_keys")
    [fk] = found.data["constraints"]
    assert found.status is Status.WARN
    assert (fk["table"], fk["references"], fk["dangling"]) == (
        "child",
        '"Parent Table"',
        2,
    )  # NULL keys are not checked
    assert sorted(fk["rows"]) == ["a=1, B col=y", "a=2, B col=x"]


# --- through Slack and the CLI --------------------------------------------------------------------


async def test_integrity_through_slack_posts_one_report_naming_the_faults(start_bot, erp_dsn):
    bot = await start_bot(erpgo_database_url=erp_dsn)
    result = await bot.command("integrity")
    assert "Checking data integrity" in result.json["text"]
    [head] = bot.slack.channel_messages("C0OPS")
    text = str(head["blocks"])
    assert "ERPGo integrity: WARNING" in text
    for name in ("SO-1003", "SKU-WIDGET-RED", "SO-1027", "DELIVERED → PENDING", "fk_order_items_product_id"):
        assert name in text
    thread = str(bot.slack.thread("C0OPS", head["ts"]))
    assert "Recalculate subtotal and total_amount of 1 order" in thread


async def test_check_cli_prints_the_report_and_exits_1(erp_dsn):
    result = await run_bot_async("check", "integrity", "--json", env={"ERPGO_DATABASE_URL": erp_dsn})
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "warn"
    by_component = {f["component"]: f for f in doc["findings"]}
    assert by_component["Order totals"]["data"]["subtotals"]["orders"] == ["SO-1003"]


async def test_order_subtotal_repaired_after_a_colleague_approves_in_slack(
    start_bot, demo_copy, fresh_database, tmp_path
):
    policy = tmp_path / "policy.yml"
    policy.write_text('groups: {oncall: [U0ALICE, U0BOB]}\nactions: {"data.*": {approvers: [oncall]}}\n')
    bot = await start_bot(
        erpgo_database_url=demo_copy, bot_database_url=fresh_database("bot"), chatops_policy_file=str(policy)
    )
    await bot.command("integrity", user_id="U0ALICE")
    [head] = bot.slack.channel_messages("C0OPS")
    approvals = [m for m in bot.slack.thread("C0OPS", head["ts"]) if bot.slack.buttons(m)]
    [totals] = [m for m in approvals if "Recalculate subtotal and total_amount" in str(m["blocks"])]
    assert len(approvals) == 3  # order subtotals, stock levels, validating the NOT VALID foreign key
    assert "UPDATE orders o" in str(totals["blocks"])  # the preview: the exact statement

    result = await bot.slack.click(totals, "approval.approve", user_id="U0BOB")
    assert result.status == 200
    await bot.settle()
    updated = str(bot.slack.messages["C0OPS", totals["ts"]]["blocks"])
    assert "Recalculated subtotal and total_amount of 1 order: SO-1003 subtotal 65.70 → 54.50, total 71.42" in updated
    assert (await check(demo_copy, "order_totals")).status is Status.OK
    assert (await check(demo_copy, "stock_levels")).status is Status.WARN, "the other proposal is still only proposed"
