"""What the ERPGo database role must be allowed for the database remediations: to signal backends
(terminate, cancel), CREATEDB and ownership of the database (restore), ALTER SYSTEM (the slow query
log), ownership of the tables (ANALYZE, REINDEX), writing the tables the data and account repairs
change. Read from the catalogue, never tried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.doctor import Readiness
from bot.targets import Targets

RoleCheck = Callable[[str, dict[str, Any]], Readiness]

ROLE = """
SELECT r.rolname, r.rolsuper, r.rolcreatedb, current_setting('server_version_num')::int AS version,
       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS may_signal,
       d.datdba = r.oid AS owns_database, current_database() AS database
FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()
"""
ALTER_SYSTEM = "SELECT has_parameter_privilege('log_min_duration_statement', 'ALTER SYSTEM')"  # PostgreSQL 15+
NOT_OWNED = """
SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND NOT pg_has_role(current_user, c.relowner, 'USAGE')
ORDER BY 1 LIMIT 6
"""
# the tables the data and account remediations write, and how
WRITES = (("orders", "UPDATE"), ("products", "UPDATE"), ("users", "UPDATE"), ("user_roles", "INSERT"))
MAY_WRITE = """
SELECT t.name, t.privilege,
       CASE WHEN to_regclass(t.name) IS NULL THEN false ELSE has_table_privilege(t.name, t.privilege) END AS allowed
FROM unnest($1::text[], $2::text[]) AS t (name, privilege)
"""


async def role_facts(targets: Targets) -> dict[str, Any]:
    """The role's attributes and memberships that the remediations need, in one connection."""
    async with targets.pg.connect(application_name="erpgo-chatops-doctor") as conn:
        facts = dict(await conn.fetchrow(ROLE))
        facts["alter_system"] = facts["rolsuper"] or (facts["version"] >= 150000 and await conn.fetchval(ALTER_SYSTEM))
        facts["not_owned"] = [row["name"] for row in await conn.fetch(NOT_OWNED)]
        names, privileges = [name for name, _ in WRITES], [privilege for _, privilege in WRITES]
        facts["writes"] = {
            (r["name"], r["privilege"]): r["allowed"] for r in await conn.fetch(MAY_WRITE, names, privileges)
        }
    return facts


def may_signal(capability: str, facts: dict[str, Any]) -> Readiness:
    role = facts["rolname"]
    if facts["rolsuper"] or facts["may_signal"]:
        return Readiness(capability, True, f"role {role} may signal other sessions")
    return Readiness(
        capability,
        False,
        f"role {role} is neither superuser nor a member of pg_signal_backend: it may signal only its own sessions",
        f"GRANT pg_signal_backend TO {role};",
    )


def may_restore(capability: str, facts: dict[str, Any]) -> Readiness:
    role, database = facts["rolname"], facts["database"]
    missing = []
    if not (facts["rolsuper"] or facts["rolcreatedb"]):
        missing.append(("CREATEDB", f"ALTER ROLE {role} CREATEDB;"))
    if not (facts["rolsuper"] or facts["owns_database"]):
        missing.append((f"ownership of {database}", f"ALTER DATABASE {database} OWNER TO {role};"))
    if not missing:
        return Readiness(capability, True, f"role {role} has CREATEDB and owns {database}")
    return Readiness(
        capability,
        False,
        f"role {role} lacks {' and '.join(what for what, _ in missing)}",
        " ".join(fix for _, fix in missing),
    )


def may_alter_system(capability: str, facts: dict[str, Any]) -> Readiness:
    role = facts["rolname"]
    if facts["alter_system"]:
        return Readiness(capability, True, f"role {role} may ALTER SYSTEM SET log_min_duration_statement")
    return Readiness(
        capability,
        False,
        f"role {role} may not ALTER SYSTEM SET log_min_duration_statement",
        f"GRANT ALTER SYSTEM ON PARAMETER log_min_duration_statement TO {role}; (PostgreSQL 15+)",
    )


def owns_tables(capability: str, facts: dict[str, Any]) -> Readiness:
    role, others = facts["rolname"], facts["not_owned"]
    if not others:
        return Readiness(capability, True, f"role {role} owns every table (ANALYZE and REINDEX allowed)")
    return Readiness(
        capability,
        False,
        f"role {role} does not own {', '.join(others[:5])}{' and more' if len(others) > 5 else ''}",
        f"make {role} the owner of the ERPGo tables (ALTER TABLE … OWNER TO {role})",
    )


def writes(tables: tuple[tuple[str, str], ...]) -> RoleCheck:
    """The check that the role may change `tables` ((table, privilege), …) as the repair does."""

    def may_write(capability: str, facts: dict[str, Any]) -> Readiness:
        role = facts["rolname"]
        missing = [(table, privilege) for table, privilege in tables if not facts["writes"].get((table, privilege))]
        if not missing:
            shown = ", ".join(f"{privilege} {table}" for table, privilege in tables)
            return Readiness(capability, True, f"role {role} may {shown}")
        return Readiness(
            capability,
            False,
            f"role {role} may not {', '.join(f'{p} {t}' for t, p in missing)} (or the table is missing)",
            " ".join(f"GRANT {p} ON {t} TO {role};" for t, p in missing),
        )

    return may_write
