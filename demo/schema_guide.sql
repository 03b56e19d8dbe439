-- ERPGo demo schema (PostgreSQL 15), the guide's variant.
--
-- The tables and columns the troubleshooting guide's SQL relies on, as the guide imagined them
-- (lower-case free-text statuses, JSONB permissions, no constraints on the totals); the real
-- ERPGo's schema is schema.sql. Load it once into a fresh
-- database (psql -f, or asyncpg's Connection.execute); every statement is IF NOT EXISTS, so a
-- second load is a no-op. No psql meta-commands on purpose.
--
-- gen_random_uuid() is built into PostgreSQL 13+, no extension needed.

CREATE TABLE IF NOT EXISTS users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          varchar(255) NOT NULL UNIQUE,
    username       varchar(100) NOT NULL UNIQUE,
    first_name     varchar(100) NOT NULL DEFAULT '',
    last_name      varchar(100) NOT NULL DEFAULT '',
    password_hash  varchar(255) NOT NULL,
    is_active      boolean      NOT NULL DEFAULT true,
    is_verified    boolean      NOT NULL DEFAULT false,
    last_login_at  timestamptz,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    updated_at     timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         varchar(50) NOT NULL UNIQUE,
    description  text        NOT NULL DEFAULT '',
    permissions  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id      uuid        NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    assigned_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE IF NOT EXISTS customers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(200) NOT NULL,
    email       varchar(255) NOT NULL UNIQUE,
    phone       varchar(50),
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku             varchar(64)   NOT NULL UNIQUE,
    name            varchar(200)  NOT NULL,
    description     text          NOT NULL DEFAULT '',
    category        varchar(100)  NOT NULL DEFAULT 'general',
    price           numeric(12,2) NOT NULL CHECK (price >= 0),
    cost            numeric(12,2) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    stock_quantity  integer       NOT NULL DEFAULT 0,
    reorder_level   integer       NOT NULL DEFAULT 10,
    barcode         varchar(32),
    is_active       boolean       NOT NULL DEFAULT true,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS product_inventory (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id          uuid        NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    warehouse           varchar(50) NOT NULL,
    quantity_available  integer     NOT NULL DEFAULT 0 CHECK (quantity_available >= 0),
    quantity_reserved   integer     NOT NULL DEFAULT 0 CHECK (quantity_reserved >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_id, warehouse)
);

-- status is free text on purpose: the application owns the state machine
-- (pending → confirmed → processing → shipped → delivered, or cancelled / refunded),
-- which is how an invalid status can end up stored (ORDER_002).
CREATE TABLE IF NOT EXISTS orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_number     varchar(32)   NOT NULL UNIQUE,
    customer_id      uuid          NOT NULL REFERENCES customers (id),
    status           varchar(20)   NOT NULL DEFAULT 'pending',
    currency         char(3)       NOT NULL DEFAULT 'USD',
    subtotal         numeric(12,2) NOT NULL DEFAULT 0,
    tax_amount       numeric(12,2) NOT NULL DEFAULT 0,
    shipping_amount  numeric(12,2) NOT NULL DEFAULT 0,
    discount_amount  numeric(12,2) NOT NULL DEFAULT 0,
    total_amount     numeric(12,2) NOT NULL DEFAULT 0,
    notes            text,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now()
);

-- The foreign key order_items.product_id → products.id is missing here on purpose: the seed
-- adds it afterwards as NOT VALID, over legacy data (see seed.sql).
CREATE TABLE IF NOT EXISTS order_items (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id     uuid          NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id   uuid          NOT NULL,
    quantity     integer       NOT NULL CHECK (quantity > 0),
    unit_price   numeric(12,2) NOT NULL,
    total_price  numeric(12,2) NOT NULL,
    created_at   timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_users_last_login_at      ON users (last_login_at);
CREATE INDEX IF NOT EXISTS idx_user_roles_role_id       ON user_roles (role_id);
CREATE INDEX IF NOT EXISTS idx_products_category        ON products (category) WHERE is_active;
CREATE INDEX IF NOT EXISTS idx_orders_customer_id       ON orders (customer_id);
CREATE INDEX IF NOT EXISTS idx_orders_status_created_at ON orders (status, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_order_items_order_id     ON order_items (order_id);
CREATE INDEX IF NOT EXISTS idx_order_items_product_id   ON order_items (product_id);

-- FAULT: unused index. Nothing in ERPGo looks products up by barcode and the seed leaves every
-- barcode NULL, so its idx_scan stays 0 in pg_stat_user_indexes while the others get used.
CREATE INDEX IF NOT EXISTS idx_products_barcode ON products (barcode);
