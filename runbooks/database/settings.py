"""Guide: "Slow Query Performance" — `db settings`: memory and logging settings, with notes where
they look wrong for the machine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Runbook
from bot.core.units import human_bytes
from runbooks.database.common import (
    SLOW,
    SLOWLOG_DEFAULT_MS,
    DsnParts,
    db_check,
    db_connection,
    parse_dsn,
)
from runbooks.database.statements import describe_slowlog, slowlog_proposal

SLOWLOG = "log_min_duration_statement"

runbook = Runbook("database.settings")


runbook.verb(
    "db settings", "memory and logging settings, with notes where they look wrong", ack="Reading PostgreSQL settings…"
)


# --- `db settings` -------------------------------------------------------------------------------

SETTINGS = ("shared_buffers", "work_mem", "effective_cache_size", "max_connections", "log_min_duration_statement")
MEMORY_SETTINGS = ("shared_buffers", "work_mem", "effective_cache_size")

SETTINGS_SQL = """
SELECT name, setting, unit, source, sourcefile, pending_restart, context, boot_val, current_setting(name) AS shown,
       CASE WHEN name = ANY($2::text[]) THEN pg_size_bytes(current_setting(name)) END AS bytes
FROM pg_settings WHERE name = ANY($1::text[])
"""

# What log_min_duration_statement would be without ALTER SYSTEM: the last postgresql.conf line, else the default.
CONFIGURED_SLOWLOG_SQL = """
SELECT setting FROM pg_file_settings
WHERE name = 'log_min_duration_statement' AND sourcefile NOT LIKE '%postgresql.auto.conf' AND error IS NULL
ORDER BY seqno DESC LIMIT 1
"""
DURATION_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int | None:
    """A duration as postgresql.conf writes it ('250', '1s', '2min') in milliseconds; None if unreadable."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", (text or "").lower())
    if not match or match.group(2) not in DURATION_UNITS_MS | {"": 1}:
        return None
    value = float(match.group(1))
    return -1 if value < 0 else int(value * DURATION_UNITS_MS.get(match.group(2), 1))


async def configured_slowlog(conn, boot_val: str) -> int | None:
    """The value a revert of ALTER SYSTEM goes back to; None when the bot's user may not read pg_file_settings."""
    try:
        text = await conn.fetchval(CONFIGURED_SLOWLOG_SQL)
    except asyncpg.InsufficientPrivilegeError:
        return None
    return duration_ms(text if text is not None else boot_val)


MEMINFO_PATHS = ("/proc/meminfo", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def parse_meminfo(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text or "", re.M)
    return int(match.group(1)) * 1024 if match else None


def parse_cgroup_limit(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if value < 2**60 else None


async def server_memory(conn, parts: DsnParts | None) -> tuple[int | None, str]:
    """The database server's RAM (its cgroup limit when lower): read by the server itself when the bot's user may
    (superuser or pg_read_server_files), else from this machine when the database is local."""
    texts: dict[str, str | None] = {}
    try:
        for path in MEMINFO_PATHS:
            texts[path] = await conn.fetchval("SELECT pg_read_file($1, 0, 8192, true)", path)
        origin = "read by the server from /proc/meminfo"
    except asyncpg.PostgresError:
        texts = {}
        if parts is None or not parts.is_local:
            return None, (
                "unknown: the bot's database user may not read /proc/meminfo (grant pg_read_server_files) "
                "and the database is not on this machine"
            )
        for path in MEMINFO_PATHS:
            try:
                with open(path) as handle:
                    texts[path] = handle.read(8192)
            except OSError:
                texts[path] = None
        origin = "of this machine (the database is local)"
    total = parse_meminfo(texts.get("/proc/meminfo") or "")
    limits = [parse_cgroup_limit(texts.get(path)) for path in MEMINFO_PATHS[1:]]
    limit = min((value for value in limits if value), default=None)
    if total and limit and limit < total:
        return limit, f"{human_bytes(limit)} (the server's cgroup memory limit; the host has {human_bytes(total)})"
    if total:
        return total, f"{human_bytes(total)} ({origin})"
    return None, "unknown (no /proc/meminfo)"


def setting_note(name: str, row, values: dict[str, Any], ram: int | None) -> tuple[Status, list[str]]:
    notes: list[str] = []
    status = Status.OK
    if name == "shared_buffers" and ram:
        if row["bytes"] < ram / 16:
            status, notes = (
                Status.WARN,
                [
                    f"low for {human_bytes(ram)} of RAM: about 25 % of RAM is the usual start "
                    "(changing it needs a restart)"
                ],
            )
        elif row["bytes"] > ram / 2:
            status, notes = (
                Status.WARN,
                ["more than half of RAM: little is left for the OS cache, work_mem and connections"],
            )
    elif name == "effective_cache_size" and ram:
        if row["bytes"] > ram:
            status, notes = (
                Status.WARN,
                [
                    f"larger than the server's RAM ({human_bytes(ram)}): the planner expects "
                    "more caching than there can be; 50–75 % of RAM is usual"
                ],
            )
        elif row["bytes"] < values.get("shared_buffers", 0):
            status, notes = Status.WARN, ["smaller than shared_buffers: the planner undervalues index scans"]
    elif name == "work_mem" and ram:
        worst_case = row["bytes"] * values.get("max_connections", 0)
        if worst_case > 2 * ram:
            status, notes = (
                Status.WARN,
                [
                    f"× max_connections far above RAM: {human_bytes(worst_case)} against "
                    f"{human_bytes(ram)}; a burst of sorts and hashes can exhaust memory"
                ],
            )
        else:
            notes = [f"work_mem × max_connections = {human_bytes(worst_case)}"]
    elif name == "max_connections" and int(row["setting"]) > 500:
        status, notes = (
            Status.WARN,
            [
                "hundreds of backends cost memory and CPU: a pooler such as PgBouncer serves "
                "many clients with fewer connections"
            ],
        )
    elif name == "log_min_duration_statement":
        value = int(row["setting"])
        if value < 0:
            status, notes = Status.WARN, ["slow query log is off: statements are not logged however slow they are"]
        elif value == 0:
            status, notes = Status.WARN, ["every statement is logged: heavy log volume; 1000 ms is the guide's value"]
    return status, notes


def setting_title(name: str, row, ram: int | None) -> str:
    if name == "log_min_duration_statement":
        value = int(row["setting"])
        return (
            "off (-1)" if value < 0 else "every statement (0)" if value == 0 else f"statements slower than {value} ms"
        )
    if name == "max_connections":
        return f"{row['shown']} connections"
    if row["bytes"] is not None:
        share = f" ({row['bytes'] * 100 / ram:.1f} % of RAM)" if ram and name != "work_mem" else ""
        return f"{row['shown']}{share}"
    return row["shown"]


@db_check(runbook, "db settings", component="PostgreSQL settings", section=SLOW, proposes=("db.slowlog",))
async def server_settings(ctx: CheckContext) -> list[Finding]:
    """Guide: "Optimize Configuration" — the memory and logging settings, judged against the server's RAM."""
    try:
        parts = parse_dsn(ctx.targets.pg.dsn)
    except ValueError:
        parts = None
    async with db_connection(ctx) as conn:
        rows = {row["name"]: row for row in await conn.fetch(SETTINGS_SQL, list(SETTINGS), list(MEMORY_SETTINGS))}
        ram, ram_text = await server_memory(conn, parts)
        connections = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        slowlog_row = rows.get(SLOWLOG)
        configured = await configured_slowlog(conn, slowlog_row["boot_val"]) if slowlog_row else None
    values = {name: (row["bytes"] if row["bytes"] is not None else int(row["setting"])) for name, row in rows.items()}
    facts = ServerFacts(values, ram, ram_text, connections, configured)
    return [setting_finding(name, rows[name], facts) for name in SETTINGS if name in rows]


@dataclass(frozen=True)
class ServerFacts:
    """What every setting is judged against."""

    values: dict[str, int]
    ram: int | None
    ram_text: str
    connections: int
    configured_slowlog: int | None  # log_min_duration_statement without ALTER SYSTEM


def setting_finding(name: str, row: Any, facts: ServerFacts) -> Finding:
    status, notes = setting_note(name, row, facts.values, facts.ram)
    details = list(notes)
    if name in MEMORY_SETTINGS:
        details.append(f"server RAM: {facts.ram_text}")
    if name == "max_connections":
        details.append(f"{facts.connections} connected now")
    source = row["sourcefile"] or row["source"]
    by_alter_system = (row["sourcefile"] or "").endswith("postgresql.auto.conf")
    details.append(f"set by: {source}" + (" (ALTER SYSTEM)" if by_alter_system else ""))
    if row["pending_restart"]:
        details.append("changed in the configuration but waiting for a restart")
    elif row["context"] == "postmaster":
        details.append("changing it needs a restart")
    proposals = slowlog_proposals(row, by_alter_system, facts.configured_slowlog, details) if name == SLOWLOG else []
    title = setting_title(name, row, facts.ram)
    if notes and status is not Status.OK:
        title += " — " + notes[0].split(":")[0]  # the note's lead, before its explanation
    data = {"setting": row["setting"], "unit": row["unit"], "bytes": row["bytes"], "ram": facts.ram, "source": source}
    return Finding(status, name, title, details=details, proposals=proposals, data=data)


def slowlog_proposals(row: Any, by_alter_system: bool, configured: int | None, details: list[str]) -> list[Proposal]:
    """Revert an ALTER SYSTEM of log_min_duration_statement, or start logging slow statements."""
    value = int(row["setting"])
    if by_alter_system and configured is not None and configured != value:
        details.append(f"without ALTER SYSTEM it would be {describe_slowlog(configured)}")
        return [
            slowlog_proposal(configured, value, revert=True, reason="go back to the value of the configuration files")
        ]
    if value < 0:
        reason = "the guide's Slow Query Resolution starts by logging slow statements"
        return [slowlog_proposal(SLOWLOG_DEFAULT_MS, value, reason=reason)]
    return []
