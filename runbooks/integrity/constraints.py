"""Guide: "Data Integrity Issues › Prevent Future Issues" — the guide's `check_total_calculation` and the
foreign keys that are missing or NOT VALID, added through `data.add_constraint` in the two steps that
keep the table writable (`ADD CONSTRAINT … NOT VALID`, a short lock; then `VALIDATE CONSTRAINT`, which
reads the rows under a lock that lets writes go on), each step re-checked; and whether the guide's
stock trigger exists and what it does.

Only the constraints this module knows can be added: their SQL is built here from catalog names
checked against the database, never from text a person typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Refused
from bot.core.units import plural
from runbooks.integrity.common import missing_tables, runbook

PREVENT = "Data Integrity Issues › Prevent Future Issues"
TOTALS = "check_total_calculation"
TOTALS_EXPRESSION = "total_amount = subtotal + tax_amount + shipping_amount - discount_amount"
LOCK_TIMEOUT = "5s"  # ADD and VALIDATE wait for no longer than this behind the application's transactions
VALIDATE_TIMEOUT = "60s"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    column: str
    references: str
    ref_column: str = "id"


# The real ERPGo's foreign keys on the tables the guide's integrity steps read (its migrations 003-013).
EXPECTED_FOREIGN_KEYS = (
    ForeignKey("fk_order_items_order_id", "order_items", "order_id", "orders"),
    ForeignKey("fk_order_items_product_id", "order_items", "product_id", "products"),
    ForeignKey("fk_orders_customer_id", "orders", "customer_id", "customers"),
    ForeignKey("fk_product_inventory_product_id", "product_inventory", "product_id", "products"),
    ForeignKey("fk_product_inventory_warehouse_id", "product_inventory", "warehouse_id", "warehouses"),
    ForeignKey("fk_user_roles_user_id", "user_roles", "user_id", "users"),
    ForeignKey("fk_user_roles_role_id", "user_roles", "role_id", "roles"),
)

FOREIGN_KEYS_ON = """
SELECT c.conname, c.convalidated, c.confrelid::regclass::text AS parent
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'f' AND c.conrelid = to_regclass($1) AND a.attname = $2 AND cardinality(c.conkey) = 1
ORDER BY c.convalidated, c.conname
"""
CONSTRAINT_STATE = "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2"
TOTALS_STATE = """
SELECT conname, convalidated FROM pg_constraint
WHERE conrelid = 'orders'::regclass AND contype = 'c'
  AND (conname = $1 OR regexp_replace(pg_get_constraintdef(oid), '^CHECK|[()\\s]|::numeric', '', 'g') = $2)
ORDER BY convalidated DESC LIMIT 1
"""
COLUMN_EXISTS = """
SELECT count(*) = 2 FROM pg_attribute
WHERE NOT attisdropped AND ((attrelid = to_regclass($1) AND attname = $2) OR (attrelid = to_regclass($3) AND attname = $4))
"""
STOCK_TRIGGERS = """
SELECT t.tgname, p.proname, pg_get_triggerdef(t.oid) AS definition, p.prosrc
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = 'product_inventory'::regclass AND NOT t.tgisinternal
ORDER BY t.tgname
"""


def quoted(name: str) -> str:
    """A catalog name the bot checked, as an SQL identifier (lower case, no quotes needed, refused otherwise)."""
    if not _NAME.match(name):
        raise Refused(f"not a plain identifier: {name[:40]!r}")
    return name


def constraint_sql(kind: str, table: str, name: str, column: str, references: str) -> tuple[str, str, str]:
    """(ADD … NOT VALID, the violation count, VALIDATE) for one known constraint."""
    t, n = quoted(table), quoted(name)
    if kind == "check":
        add = f"ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({TOTALS_EXPRESSION}) NOT VALID"
        violations = f"SELECT count(*) FROM {t} WHERE NOT ({TOTALS_EXPRESSION})"
    else:
        c, r = quoted(column), quoted(references)
        add = f"ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY ({c}) REFERENCES {r}(id) NOT VALID"
        violations = f"SELECT count(*) FROM {t} c WHERE c.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {r} p WHERE p.id = c.{c})"
    return add, violations, f"ALTER TABLE {t} VALIDATE CONSTRAINT {n}"


def add_constraint_proposal(kind: str, table: str, name: str, column: str, references: str, exists: bool) -> Proposal:
    add, _, validate = constraint_sql(kind, table, name, column, references)
    steps = [f"SET lock_timeout = '{LOCK_TIMEOUT}'"] + ([] if exists else [add + ";"]) + [validate + ";"]
    what = "Validate" if exists else "Add and validate"
    return add_constraint.propose(
        kind=kind,
        table=table,
        name=name,
        column=column,
        references=references,
        target=f"{table}.{name}",
        summary=f"{what} {name} on {table}",
        why="the guide's Prevent Future Issues: the database itself refuses the rows this check looks for",
        preview="\n".join(steps) + "\nre-checked before each step: the constraint's state, then that no row "
        "violates it (VALIDATE is not run while one does)",
    )


async def totals_part(conn: asyncpg.Connection) -> tuple[Status, str, list[Proposal]]:
    if await missing_tables(conn, "orders"):
        return Status.OK, "", []
    found = await conn.fetchrow(TOTALS_STATE, TOTALS, re.sub(r"[()\s]", "", TOTALS_EXPRESSION))
    if found and found["convalidated"]:
        return Status.OK, f"{found['conname']}: validated", []
    exists = found is not None
    name = found["conname"] if found else TOTALS
    said = f"{name}: NOT VALID" if exists else f"{TOTALS}: missing"
    return Status.WARN, said, [add_constraint_proposal("check", "orders", name, "", "", exists)]


async def foreign_key_part(conn: asyncpg.Connection, fk: ForeignKey) -> tuple[Status, str, list[Proposal]]:
    if await missing_tables(conn, fk.table, fk.references):
        return Status.OK, "", []
    if not await conn.fetchval(COLUMN_EXISTS, fk.table, fk.column, fk.references, fk.ref_column):
        return Status.OK, "", []
    found = await conn.fetch(FOREIGN_KEYS_ON, fk.table, fk.column)
    if any(row["convalidated"] for row in found):
        return Status.OK, "", []
    exists = bool(found)
    name = found[0]["conname"] if found else fk.name
    said = f"{fk.table}.{fk.column} → {fk.references}: " + (f"{name} NOT VALID" if exists else "no foreign key")
    return Status.WARN, said, [add_constraint_proposal("foreign_key", fk.table, name, fk.column, fk.references, exists)]


def stock_trigger_lines(triggers: list[asyncpg.Record]) -> list[str]:
    """The guide's `update_product_stock` trigger: whether it exists and what it does."""
    if not triggers:
        return [
            "no trigger on product_inventory: products.stock_quantity is kept by the application itself (the real "
            "ERPGo has no such trigger); stock that drifts is repaired by `data.recalc_stock` from `integrity`"
        ]
    lines = []
    for t in triggers:
        keeps = "stock_quantity" in (t["prosrc"] or "")
        lines.append(
            f"trigger {t['tgname']} → {t['proname']}(): {t['definition']}"
            + (" — it rewrites products.stock_quantity from the warehouses" if keeps else " — it does not touch stock")
        )
    return lines


@runbook.check("integrity", component="Constraints", section=PREVENT, proposes=("data.add_constraint",))
async def constraints(ctx: CheckContext) -> Finding:
    """The guide's step 3: check_total_calculation, the foreign keys, the stock trigger."""
    async with ctx.targets.pg.connect() as conn:
        parts = [await totals_part(conn)] + [await foreign_key_part(conn, fk) for fk in EXPECTED_FOREIGN_KEYS]
        triggers = [] if await missing_tables(conn, "product_inventory") else await conn.fetch(STOCK_TRIGGERS)
    problems = [said for status, said, _ in parts if status is not Status.OK]
    proposals = [p for _, _, ps in parts for p in ps]
    details = [said for _, said, _ in parts if said] + stock_trigger_lines(triggers)
    if not problems:
        return Finding.ok("Constraints", "check_total_calculation and the foreign keys are in place", details=details)
    title = f"{plural(len(problems), 'constraint')} missing or NOT VALID: {'; '.join(problems)}"
    return Finding(Status.WARN, "Constraints", title, details=details, proposals=proposals)


# --- the remediation ---------------------------------------------------------------------------


async def violations(conn: asyncpg.Connection, count_sql: str) -> int:
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = '{VALIDATE_TIMEOUT}'")
        return int(await conn.fetchval(count_sql))


async def add_not_valid(conn: asyncpg.Connection, add_sql: str) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute(add_sql)


async def validate(conn: asyncpg.Connection, validate_sql: str) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute(f"SET LOCAL statement_timeout = '{VALIDATE_TIMEOUT}'")
        await conn.execute(validate_sql)


@runbook.remediation("data.add_constraint", "Add a constraint NOT VALID, then VALIDATE it", timeout=150)
async def add_constraint(
    ctx: CheckContext, kind: str, table: str, name: str, column: str = "", references: str = ""
) -> str:
    if kind not in ("check", "foreign_key") or (kind == "check" and table != "orders"):
        raise Refused(f"unknown constraint kind {kind!r} on {table!r}")
    add_sql, count_sql, validate_sql = constraint_sql(kind, table, name, column, references)
    done = []
    async with ctx.targets.pg.connect() as conn:
        state = await conn.fetchval(CONSTRAINT_STATE, table, name)
        if state is True:
            raise Refused(f"{name} on {table} is validated already: nothing to do")
        if state is None:
            await add_not_valid(conn, add_sql)
            done.append(f"added {name} on {table} NOT VALID: new and updated rows are checked from now on")
        bad = await violations(conn, count_sql)
        if bad:
            return "; ".join(
                done + [f"not validated: {plural(bad, 'row')} of {table} violate it — repair them (`/erpgo integrity`)"]
            )
        await validate(conn, validate_sql)
        validated = await conn.fetchval(CONSTRAINT_STATE, table, name)
    done.append(f"{name} validated: every row of {table} satisfies it" if validated else f"{name} still NOT VALID")
    return "; ".join(done)
