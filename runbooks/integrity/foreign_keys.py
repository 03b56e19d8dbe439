"""Guide: "Data Integrity Issues" — NOT VALID foreign keys and the rows they let dangle."""

from __future__ import annotations

from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.units import plural
from runbooks.integrity.common import SAMPLE_DANGLING, SECTION, listed, missing_tables, runbook

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
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {per_query_ms}")
            constraints = [await dangling_rows(conn, fk, per_query_ms) for fk in fks]
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


async def dangling_rows(conn: asyncpg.Connection, fk: asyncpg.Record, per_query_ms: int) -> dict[str, Any]:
    """How many rows of the constraint's table point at nothing, and a few of them named."""
    entry: dict[str, Any] = {
        "name": fk["conname"],
        "table": fk["child"],
        "references": fk["parent"],
        "dangling": None,
        "rows": [],
        "labels": [],
    }
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
            keys = ", ".join(f"{name}={value}" for name, value in zip(fk["child_names"], r["keys"], strict=False))
            entry["rows"].append((f"{r['label']}: " if r["label"] else "") + keys)
        entry["labels"] = [r["label"] for r in sample if r["label"]]
    return entry
