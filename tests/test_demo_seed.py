"""The demo database: the guide's own queries each find exactly the fault planted for them."""

import uuid
from pathlib import Path

import asyncpg
import pytest

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
SCHEMA = (DEMO_DIR / "schema.sql").read_text()
SEED = (DEMO_DIR / "seed.sql").read_text()

VALID_STATUSES = ("pending", "confirmed", "processing", "shipped", "delivered", "cancelled", "refunded")


@pytest.fixture(scope="module")
async def db(postgres_server):
    name = f"erpgo_demo_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    conn = await asyncpg.connect(postgres_server.dsn(name))
    try:
        await conn.execute(SCHEMA)
        await conn.execute(SEED)
        yield conn
    finally:
        await conn.close()


async def test_schema_loads_again_without_error(db):
    await db.execute(SCHEMA)


async def test_tables_hold_a_few_dozen_rows(db):
    for table, low, high in [
        ("users", 10, 40),
        ("roles", 4, 20),
        ("customers", 15, 60),
        ("products", 20, 60),
        ("product_inventory", 20, 80),
        ("orders", 20, 60),
        ("order_items", 30, 120),
    ]:
        count = await db.fetchval(f"SELECT count(*) FROM {table}")
        assert low <= count <= high, table


# --- Data Integrity Issues ------------------------------------------------------------------------


async def test_guide_foreign_key_check_finds_the_not_valid_constraint(db):
    rows = await db.fetch("""
        SELECT conname, conrelid::regclass, confrelid::regclass
        FROM pg_constraint
        WHERE contype = 'f' AND convalidated = false;
    """)
    assert [(r["conname"], str(r["conrelid"]), str(r["confrelid"])) for r in rows] == [
        ("order_items_product_id_fkey", "order_items", "products")
    ]


async def test_the_not_valid_constraint_hides_exactly_one_dangling_row(db):
    dangling = await db.fetch("""
        SELECT o.order_number
        FROM order_items oi
        JOIN orders o ON o.id = oi.order_id
        LEFT JOIN products p ON p.id = oi.product_id
        WHERE p.id IS NULL
    """)
    assert [r["order_number"] for r in dangling] == ["SO-1004"]
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # 23503
        await db.execute("ALTER TABLE order_items VALIDATE CONSTRAINT order_items_product_id_fkey")


async def test_guide_order_total_check_finds_so_1003(db):
    row = await db.fetchrow("""
        SELECT 'orders_total_calculation' as check_name, COUNT(*) as violations
        FROM orders
        WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount);
    """)
    assert tuple(row) == ("orders_total_calculation", 1)
    numbers = await db.fetch("""
        SELECT order_number FROM orders
        WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount)
    """)
    assert [r["order_number"] for r in numbers] == ["SO-1003"]


async def test_order_subtotals_match_their_items(db):
    mismatched = await db.fetchval("""
        SELECT count(*) FROM orders o
        WHERE o.subtotal != (SELECT COALESCE(SUM(total_price), 0) FROM order_items i WHERE i.order_id = o.id)
    """)
    assert mismatched == 0


async def test_stock_versus_inventory_check_finds_the_red_widget(db):
    # The guide's "Recalculate inventory quantities" repair, read as a check.
    rows = await db.fetch("""
        SELECT p.sku, p.stock_quantity, COALESCE(SUM(pi.quantity_available), 0) AS in_warehouses
        FROM products p
        LEFT JOIN product_inventory pi ON pi.product_id = p.id
        GROUP BY p.id
        HAVING p.stock_quantity != COALESCE(SUM(pi.quantity_available), 0)
    """)
    assert [tuple(r) for r in rows] == [("SKU-WIDGET-RED", 412, 392)]


async def test_invalid_order_status_is_so_1027(db):
    rows = await db.fetch(
        "SELECT order_number, status FROM orders WHERE status <> ALL($1::text[])", list(VALID_STATUSES)
    )
    assert [tuple(r) for r in rows] == [("SO-1027", "unknown")]


async def test_unused_index_exists_over_an_empty_column(db):
    assert await db.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_products_barcode'") == 1
    assert await db.fetchval("SELECT count(*) FROM products WHERE barcode IS NOT NULL") == 0


# --- Authentication & Authorization ---------------------------------------------------------------


async def test_guide_password_hash_check_finds_the_md5_user(db):
    rows = await db.fetch("""
        SELECT id, email, password_hash LIKE '$2a$%' AS valid_bcrypt
        FROM users;
    """)
    assert [r["email"] for r in rows if not r["valid_bcrypt"]] == ["t.walker@example.com"]
    hashes = await db.fetch("SELECT password_hash FROM users WHERE email <> 't.walker@example.com'")
    assert all(r["password_hash"].startswith("$2a$12$") and len(r["password_hash"]) == 60 for r in hashes)


async def test_demo_admin_hash_really_matches_admin123(db):
    await db.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    matches = await db.fetchval(
        "SELECT password_hash = crypt('admin123', password_hash) FROM users WHERE email = 'admin@example.com'"
    )
    assert matches is True


async def test_guide_user_lookup_shows_the_inactive_user(db):
    row = await db.fetchrow("""
        SELECT id, email, is_active, is_verified
        FROM users
        WHERE email = 'e.dubois@example.com';
    """)
    assert (row["is_active"], row["is_verified"]) == (False, True)
    inactive = await db.fetch("SELECT email FROM users WHERE NOT is_active")
    assert [r["email"] for r in inactive] == ["e.dubois@example.com"]


async def test_users_without_roles_is_exactly_n_patel(db):
    # The guide's "Get user roles" join, turned into a LEFT JOIN over every user.
    rows = await db.fetch("""
        SELECT u.email
        FROM users u
        LEFT JOIN user_roles ur ON u.id = ur.user_id
        LEFT JOIN roles r ON ur.role_id = r.id
        GROUP BY u.email
        HAVING count(r.id) = 0
    """)
    assert [r["email"] for r in rows] == ["n.patel@example.com"]


async def test_guide_admin_role_permissions(db):
    row = await db.fetchrow("SELECT r.name, r.permissions FROM roles r WHERE r.name = 'admin';")
    assert row["name"] == "admin"
    assert row["permissions"] == '["*"]'
