"""PostgreSQL's own corruption tools, run by argument list with the password in the environment only:
`pg_amcheck` on chosen indexes and tables, and a schema-only `pg_dump` read back as a table of contents."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from bot.targets.backups import (
    DumpFailed,
    DumpToc,
    ToolNotFound,
    find_tool,
    masked,
    run_tool,
    split_password,
    verify,
)

__all__ = ["AmcheckReport", "ToolNotFound", "pg_amcheck", "schema_toc"]


@dataclass(frozen=True)
class AmcheckReport:
    clean: bool  # pg_amcheck exited 0: nothing found in what it was asked to check
    problems: tuple[str, ...]  # what it printed about corruption (redacted of the password)
    error: str  # why it could not run to the end ("" when it did)


async def pg_amcheck(dsn: str, *, indexes: list[str], tables: list[str], timeout: float) -> AmcheckReport:
    """pg_amcheck with --heapallindexed on the given (quoted, schema-qualified) indexes and tables only."""
    url, password = split_password(dsn)
    argv = [find_tool("pg_amcheck"), "--no-password", "--heapallindexed", "--no-dependent-indexes"]
    argv += [arg for index in indexes for arg in ("--index", index)]
    argv += [arg for table in tables for arg in ("--table", table)]
    env = {"PGPASSWORD": password} if password is not None else {}
    result = await run_tool([*argv, url], timeout=timeout, extra_env=env)
    lines = [masked(line.strip(), password) for line in result.stdout.splitlines() if line.strip()]
    # pg_amcheck: 0 nothing found, 2 corruption found (and reported on stdout), anything else an error
    finished = result.returncode in (0, 2)
    error = "" if finished else (masked(result.stderr.strip(), password)[:300] or f"exit code {result.returncode}")
    return AmcheckReport(result.returncode == 0, tuple(lines), error)


async def schema_toc(dsn: str, *, timeout: float) -> DumpToc:
    """A schema-only pg_dump of the database, read back by pg_restore --list; the file is deleted after."""
    url, password = split_password(dsn)
    env = {"PGPASSWORD": password} if password is not None else {}
    with tempfile.TemporaryDirectory(prefix="erpgo-schema-") as directory:
        target = os.path.join(directory, "schema.dump")
        argv = [find_tool("pg_dump"), "-Fc", "--schema-only", "--no-password", f"--dbname={url}", "-f", target]
        result = await run_tool(argv, timeout=timeout, extra_env=env)
        if result.returncode != 0:
            raise DumpFailed("pg_dump --schema-only failed: " + masked(result.stderr.strip(), password)[:300])
        return await verify(target, timeout=timeout, read_data=False)
