"""The demo database, in the real ERPGo's schema (the default) and the guide's: the guide's own queries and the
real schema's rules each find exactly the fault planted for them."""

import uuid

import asyncpg
import pytest

from runbooks.integrity import ORDER_TRANSITIONS
from tests.demo_dialects import DEMO_DIR, DIALECTS

GUIDE_STATUSES = ("pending", "confirmed", "processing", "shipped", "delivered", "cancelled", "refunded")
REAL_STATUSES = (
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
)
PAYMENT_STATUSES = ("PENDING", "PAID", "PARTIALLY_PAID", "OVERDUE", "REFUNDED", "FAILED")
FOREIGN_KEY = {"real": "fk_order_items_product_id", "guide": "order_items_product_id_fkey"}
ITEM_AMOUNT = {"real": "unit_price * quantity - discount_amount", "guide": "total_price"}


async def connect_loaded(postgres_server, dialect: str) -> asyncpg.Connection:
    name = f"erpgo_demo_{dialect}_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    conn = await asyncpg.connect(postgres_server.dsn(name))
    for file in DIALECTS[dialect]:
        await conn.execute((DEMO_DIR / file).read_text())
    return conn


@pytest.fixture(scope="module", params=list(DIALECTS))
async def demo(request, postgres_server):
    """(dialect, connection) to a freshly loaded demo database; nothing may change its data."""
    conn = await connect_loaded(postgres_server, request.param)
    try:
        yield request.param, conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def real(postgres_server):
    conn = await connect_loaded(postgres_server, "real")
    try:
        yield conn
    finally:
        await conn.close()


async def test_schema_loads_again_without_error(demo):
    dialect, db = demo
    await db.execute((DEMO_DIR / DIALECTS[dialect][0]).read_text())


async def test_tables_hold_a_few_dozen_rows(demo):
    dialect, db = demo
    tables = [
        ("users", 10, 40),
        ("roles", 4, 20),
        ("customers", 15, 60),
        ("products", 20, 60),
        ("product_inventory", 20, 80),
        ("orders", 20, 60),
        ("order_items", 30, 120),
    ]
    if dialect == "real":
        tables += [("warehouses", 2, 5), ("audit_logs", 20, 80)]
    for table, low, high in tables:
        count = await db.fetchval(f"SELECT count(*) FROM {table}")
        assert low <= count <= high, table


# --- Data Integrity Issues ------------------------------------------------------------------------


async def test_guide_foreign_key_check_finds_the_not_valid_constraint(demo):
    dialect, db = demo
    rows = await db.fetch("""
        SELECT conname, conrelid::regclass, confrelid::regclass
        FROM pg_constraint
        WHERE contype = 'f' AND convalidated = false;
    """)
    assert [(r["conname"], str(r["conrelid"]), str(r["confrelid"])) for r in rows] == [
        (FOREIGN_KEY[dialect], "order_items", "products")
    ]


async def test_the_not_valid_constraint_hides_exactly_one_dangling_row(demo):
    dialect, db = demo
    dangling = await db.fetch("""
        SELECT o.order_number
        FROM order_items oi
        JOIN orders o ON o.id = oi.order_id
        LEFT JOIN products p ON p.id = oi.product_id
        WHERE p.id IS NULL
    """)
    assert [r["order_number"] for r in dangling] == ["SO-1004"]
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # 23503
        async with db.transaction():
            await db.execute(f"ALTER TABLE order_items VALIDATE CONSTRAINT {FOREIGN_KEY[dialect]}")


async def test_guide_order_total_check_finds_so_1003_or_nothing_under_check_total_calculation(demo):
    dialect, db = demo
    row = await db.fetchrow("""
        SELECT 'orders_total_calculation' as check_name, COUNT(*) as violations
        FROM orders
        WHERE total_amount != (subtotal + tax_amount + shipping_amount - discount_amount);
    """)
    assert tuple(row) == ("orders_total_calculation", 1 if dialect == "guide" else 0)


async def test_order_subtotals_match_their_items_except_so_1003_in_the_real_data(demo):
    dialect, db = demo
    mismatched = await db.fetch(f"""
        SELECT o.order_number FROM orders o
        WHERE o.subtotal != (SELECT COALESCE(SUM({ITEM_AMOUNT[dialect]}), 0) FROM order_items i WHERE i.order_id = o.id)
    """)
    assert [r["order_number"] for r in mismatched] == ([] if dialect == "guide" else ["SO-1003"])


async def test_stock_versus_inventory_check_finds_the_red_widget(demo):
    _, db = demo
    # The guide's "Recalculate inventory quantities" repair, read as a check.
    rows = await db.fetch("""
        SELECT p.sku, p.stock_quantity, COALESCE(SUM(pi.quantity_available), 0) AS in_warehouses
        FROM products p
        LEFT JOIN product_inventory pi ON pi.product_id = p.id
        GROUP BY p.id
        HAVING p.stock_quantity != COALESCE(SUM(pi.quantity_available), 0)
    """)
    assert [tuple(r) for r in rows] == [("SKU-WIDGET-RED", 412, 392)]


async def test_invalid_order_status_is_so_1027_in_the_guides_data(demo):
    dialect, db = demo
    valid = GUIDE_STATUSES if dialect == "guide" else REAL_STATUSES
    rows = await db.fetch("SELECT order_number, status FROM orders WHERE status <> ALL($1::text[])", list(valid))
    assert [tuple(r) for r in rows] == ([("SO-1027", "unknown")] if dialect == "guide" else [])


async def test_unused_index_exists_over_an_empty_column(demo):
    _, db = demo
    assert await db.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_products_barcode'") == 1
    assert await db.fetchval("SELECT count(*) FROM products WHERE barcode IS NOT NULL") == 0


# --- the real schema's rules ----------------------------------------------------------------------


async def check_values(db: asyncpg.Connection, constraint: str) -> list[str]:
    definition = await db.fetchval("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", constraint)
    return [part.split("'")[1] for part in definition.split("ARRAY[")[1].split(",")]


async def test_real_schema_has_the_migrations_status_checks(real):
    assert await check_values(real, "orders_status_check") == list(REAL_STATUSES)
    assert await check_values(real, "orders_previous_status_check") == list(REAL_STATUSES)
    assert await check_values(real, "orders_payment_status_check") == list(PAYMENT_STATUSES)
    definition = await real.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'check_total_calculation' AND convalidated"
    )
    assert definition == "CHECK ((total_amount = (((subtotal + tax_amount) + shipping_amount) - discount_amount)))"


async def test_real_schema_columns_the_bot_reads(real):
    columns = {
        (r["table_name"], r["column_name"]): r["data_type"]
        for r in await real.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
        )
    }
    assert columns["roles", "permissions"] == "ARRAY"
    assert columns["audit_logs", "ip_address"] == "inet" and columns["audit_logs", "details"] == "jsonb"
    for name in ("product_id", "warehouse_id", "quantity_available", "quantity_reserved"):
        assert ("product_inventory", name) in columns
    for name in ("timestamp", "event_type", "action", "user_id", "resource_id", "user_agent", "success", "created_at"):
        assert ("audit_logs", name) in columns


async def test_every_status_change_is_allowed_except_so_1027(real):
    allowed = [f"{a}>{b}" for a, targets in ORDER_TRANSITIONS.items() for b in targets]
    rows = await real.fetch(
        "SELECT order_number, previous_status, status FROM orders"
        " WHERE previous_status IS NOT NULL AND NOT (previous_status || '>' || status = ANY($1))",
        allowed,
    )
    assert [tuple(r) for r in rows] == [("SO-1027", "DELIVERED", "PENDING")]


async def test_payments_agree_with_the_payment_status(real):
    wrong = await real.fetch("""
        SELECT order_number FROM orders
        WHERE (payment_status IN ('PAID', 'REFUNDED') AND paid_amount <> total_amount)
           OR (payment_status = 'PENDING' AND paid_amount <> 0)
           OR (payment_status = 'REFUNDED') <> (refunded_amount > 0)
    """)
    assert wrong == []


async def test_audit_logs_are_append_only(real):
    before = await real.fetchval("SELECT count(*) FROM audit_logs")
    assert await real.execute("UPDATE audit_logs SET success = true") == "UPDATE 0"
    assert await real.execute("DELETE FROM audit_logs") == "DELETE 0"
    assert await real.fetchval("SELECT count(*) FROM audit_logs") == before


async def test_audit_logs_show_a_password_spray_and_a_brute_force(real):
    failed = await real.fetch("""
        SELECT host(ip_address) AS ip, count(*) AS attempts, count(DISTINCT details->>'username') AS accounts
        FROM audit_logs WHERE event_type = 'LOGIN_FAILED' AND timestamp > now() - interval '1 day'
        GROUP BY ip_address ORDER BY accounts DESC, attempts DESC
    """)
    by_ip = {r["ip"]: (r["attempts"], r["accounts"]) for r in failed}
    assert len(by_ip) >= 4, "failed logins come from several addresses"
    assert by_ip["203.0.113.66"][1] >= 10 and failed[0]["ip"] == "203.0.113.66", "one address sprays many accounts"
    assert by_ip["198.51.100.23"] == (5, 1), "another tries one account over and over"
    [lockout] = await real.fetch(
        "SELECT u.email, host(a.ip_address) AS ip, a.action, a.success FROM audit_logs a"
        " JOIN users u ON u.id = a.user_id WHERE a.event_type = 'ACCOUNT_LOCKOUT'"
    )
    assert tuple(lockout) == ("admin@example.com", "198.51.100.23", "account_locked", True)
    row = await real.fetchrow(
        "SELECT action, success, user_id, details FROM audit_logs"
        " WHERE event_type = 'LOGIN_FAILED' ORDER BY timestamp DESC LIMIT 1"
    )
    assert (row["action"], row["success"], row["user_id"]) == ("user_login_failed", False, None)
    assert row["details"] == '{"reason": "UNAUTHORIZED: invalid credentials", "username": "n.patel@example.com"}'
    assert await real.fetchval("SELECT count(*) FROM audit_logs WHERE timestamp > now()") == 0


# --- Authentication & Authorization ---------------------------------------------------------------


async def test_guide_password_hash_check_finds_the_md5_user(demo):
    _, db = demo
    rows = await db.fetch("""
        SELECT id, email, password_hash LIKE '$2a$%' AS valid_bcrypt
        FROM users;
    """)
    assert [r["email"] for r in rows if not r["valid_bcrypt"]] == ["t.walker@example.com"]
    hashes = await db.fetch("SELECT password_hash FROM users WHERE email <> 't.walker@example.com'")
    assert all(r["password_hash"].startswith("$2a$12$") and len(r["password_hash"]) == 60 for r in hashes)


async def test_demo_admin_hash_really_matches_admin123(demo):
    _, db = demo
    await db.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    matches = await db.fetchval(
        "SELECT password_hash = crypt('admin123', password_hash) FROM users WHERE email = 'admin@example.com'"
    )
    assert matches is True


async def test_guide_user_lookup_shows_the_inactive_user(demo):
    _, db = demo
    row = await db.fetchrow("""
        SELECT id, email, is_active, is_verified
        FROM users
        WHERE email = 'e.dubois@example.com';
    """)
    assert (row["is_active"], row["is_verified"]) == (False, True)
    inactive = await db.fetch("SELECT email FROM users WHERE NOT is_active")
    assert [r["email"] for r in inactive] == ["e.dubois@example.com"]


async def test_users_without_roles_is_exactly_n_patel(demo):
    _, db = demo
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


async def test_admin_role_permissions(demo):
    dialect, db = demo
    row = await db.fetchrow("SELECT r.name, r.permissions FROM roles r WHERE r.name = 'admin';")
    assert row["name"] == "admin"
    if dialect == "guide":
        assert row["permissions"] == '["*"]'
    else:  # TEXT[] of the application's "<resource>.<action>" permissions: no wildcard in the real ERPGo
        assert (
            "system.admin" in row["permissions"]
            and "users.read" in row["permissions"]
            and "*" not in row["permissions"]
        )
