"""Backups of the ERPGo database: find, verify, take and restore pg_dump custom-format dumps.

The PostgreSQL client tools run as argument lists. A DSN's password never goes into an argument:
it is taken out of the URL and handed to the child process as PGPASSWORD, and it is masked in
every error message built from a tool's output.

`pg_restore --list` only reads a dump's table of contents, which sits at the start of the file:
a dump cut short in its data section still lists fine. `verify` therefore also reads the whole
archive (`pg_restore --file=/dev/null`), which fails on a truncated file.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode

import asyncpg

DEFAULT_PATTERN = "*.dump"
STAMP_FORMAT = "%Y%m%d%H%M%S"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SESSION_EXIT_WAIT_MS = 5000  # how long pg_terminate_backend waits for each session to go
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAX_IDENTIFIER_BYTES = 63
_MASK = "***"


class BackupError(Exception):
    """A backup or restore operation did not do what it was asked; the message says why."""


class BackupDirectoryError(OSError):
    """The backup directory is missing or cannot be read."""


class ToolNotFound(BackupError):
    def __init__(self, tool: str):
        super().__init__(f"{tool} not found on PATH or in {PG_BIN_GLOB}: install the Debian package postgresql-client")
        self.tool = tool


class DumpUnreadable(BackupError):
    """pg_restore cannot read the file: not a dump, or a truncated one. `reason` is pg_restore's first error."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{Path(path).name} is not a readable dump: {reason}")
        self.path = path
        self.reason = reason


class DumpFailed(BackupError):
    """pg_dump did not produce a verified dump; nothing was left in the backup directory."""


class RestoreFailed(BackupError):
    """pg_restore stopped at an error; the target database holds whatever it restored until then."""


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    path: str
    name: str
    size: int
    mtime: datetime  # aware, UTC

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.mtime).total_seconds()


def backup_file(path: str | Path) -> BackupFile:
    stat = os.stat(path)
    return BackupFile(str(path), Path(path).name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def list_backups(directory: str, pattern: str = DEFAULT_PATTERN) -> list[BackupFile]:
    """The regular files in `directory` whose name matches `pattern`, newest first."""
    try:
        with os.scandir(directory) as entries:
            found = [
                backup_file(entry.path)
                for entry in entries
                if fnmatch.fnmatchcase(entry.name, pattern) and entry.is_file()
            ]
    except FileNotFoundError:
        raise BackupDirectoryError(f"backup directory {directory} does not exist") from None
    except NotADirectoryError:
        raise BackupDirectoryError(f"backup directory {directory} is not a directory") from None
    except PermissionError:
        raise BackupDirectoryError(f"backup directory {directory} cannot be read (permission denied)") from None
    return sorted(found, key=lambda backup: (backup.mtime, backup.name), reverse=True)


def utc_stamp(now: datetime | None = None) -> str:
    """YYYYmmddHHMMSS in UTC, as used in backup and database names."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)


# --- tools ------------------------------------------------------------------------------------


def _major_version(bindir: str) -> int:
    name = Path(bindir).parent.name
    return int(name) if name.isdigit() else 0


def find_tool(name: str) -> str:
    """`name` from the highest /usr/lib/postgresql/N/bin, else from PATH (a newer pg_dump reads older servers)."""
    for bindir in sorted(glob.glob(PG_BIN_GLOB), key=_major_version, reverse=True):
        candidate = os.path.join(bindir, name)
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise ToolNotFound(name)
    return found


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str


async def run_tool(argv: list[str], *, timeout: float, extra_env: Mapping[str, str] | None = None) -> ToolResult:
    env = {**os.environ, **(extra_env or {})}
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException as exc:  # a timeout or a cancellation must not leave pg_dump running
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            raise TimeoutError(f"{Path(argv[0]).name} did not finish within {timeout:g} s") from None
        raise
    assert proc.returncode is not None
    return ToolResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error:" in line), lines[0] if lines else "no error message")
    return re.sub(r"^(pg_restore|pg_dump): (error: )?", "", chosen)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("ran out of time")
    return left


# --- DSNs -------------------------------------------------------------------------------------


def split_password(dsn: str) -> tuple[str, str | None]:
    """A postgresql:// URL without its password (user:password@ or ?password=), and the password."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("not a postgresql:// URL")
    netloc, slash, tail = rest.partition("/")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
        path = ""
    else:
        path, _, query = tail.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    password: str | None = None
    if at:
        user, colon, raw = userinfo.partition(":")
        if colon:
            password = unquote(raw)
        netloc = f"{user}@{hosts}"
    params = parse_qsl(query, keep_blank_values=True)
    kept = [(key, value) for key, value in params if key != "password"]
    password = next((value for key, value in params if key == "password"), password)
    url = f"{scheme}://{netloc}/{path}" if (slash or path) else f"{scheme}://{netloc}"
    return url + (f"?{urlencode(kept)}" if kept else ""), password


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    scheme, _, rest = dsn.partition("://")
    netloc, _, tail = rest.partition("/")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    else:
        query = tail.partition("?")[2]
    kept = [(key, value) for key, value in parse_qsl(query, keep_blank_values=True) if key != "dbname"]
    return f"{scheme}://{netloc}/{quote(database, safe='')}" + (f"?{urlencode(kept)}" if kept else "")


def _password_env(password: str | None) -> dict[str, str]:
    return {"PGPASSWORD": password} if password is not None else {}


def masked(text: str, password: str | None) -> str:
    if password:
        for form in sorted({password, quote(password, safe=""), quote(password)}, key=len, reverse=True):
            text = text.replace(form, _MASK)
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s/]+@", rf"\1{_MASK}@", text)


def dump_command(dsn: str, target: str) -> tuple[list[str], dict[str, str]]:
    """pg_dump's argument list and the environment it needs on top of ours (the password)."""
    url, password = split_password(dsn)
    return [find_tool("pg_dump"), "-Fc", "--no-password", f"--dbname={url}", "-f", target], _password_env(password)


def restore_command(dsn: str, dump_path: str, role: str | None = None) -> tuple[list[str], dict[str, str]]:
    """pg_restore into the database of `dsn`; objects end up owned by `role` (or the connecting user)."""
    url, password = split_password(dsn)
    argv = [find_tool("pg_restore"), "--no-owner", "--exit-on-error", "--no-password", f"--dbname={url}"]
    if role:
        argv.append(f"--role={role}")
    return [*argv, dump_path], _password_env(password)


# --- table of contents ------------------------------------------------------------------------


@dataclass(frozen=True)
class DumpToc:
    path: str
    dbname: str | None
    format: str | None  # CUSTOM, DIRECTORY, TAR
    dump_version: str | None  # the archive format version, e.g. 1.14-0
    server_version: str | None  # "Dumped from database version"
    created: str | None  # "Archive created at"
    entries: int  # TOC entries listed
    tables: tuple[str, ...]  # schema.name of every TABLE
    tables_with_data: tuple[str, ...]  # schema.name of every TABLE DATA


_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (.*)$")
_HEADER = {
    "dbname": "dbname",
    "Format": "format",
    "Dump Version": "dump_version",
    "Dumped from database version": "server_version",
}


def _qualified(tail: str) -> str:
    """'public orders postgres' -> 'public.orders' (names may hold spaces; the owner is the last word)."""
    words = tail.split(" ")
    return f"{words[0]}." + " ".join(words[1:-1] if len(words) > 2 else words[1:2])


def parse_toc(listing: str, path: str = "") -> DumpToc:
    header: dict[str, str] = {}
    tables: list[str] = []
    data: list[str] = []
    entries = 0
    for line in listing.splitlines():
        if line.startswith(";"):
            text = line.lstrip("; ").rstrip()
            if text.startswith("Archive created at "):
                header["created"] = text.removeprefix("Archive created at ")
            key, sep, value = text.partition(": ")
            if sep and key in _HEADER:
                header[_HEADER[key]] = value
            continue
        match = _TOC_ENTRY.match(line)
        if not match:
            continue
        entries += 1
        description = match.group(1)
        if description.startswith("TABLE DATA "):
            data.append(_qualified(description.removeprefix("TABLE DATA ")))
        elif description.startswith("TABLE "):
            tables.append(_qualified(description.removeprefix("TABLE ")))
    return DumpToc(
        path,
        header.get("dbname"),
        header.get("format"),
        header.get("dump_version"),
        header.get("server_version"),
        header.get("created"),
        entries,
        tuple(tables),
        tuple(data),
    )


async def verify(path: str, *, timeout: float, read_data: bool = True) -> DumpToc:
    """The dump's table of contents; DumpUnreadable unless pg_restore can read it (all of it, with read_data)."""
    deadline = time.monotonic() + timeout
    pg_restore = find_tool("pg_restore")
    listing = await run_tool([pg_restore, "--list", path], timeout=timeout)
    if listing.returncode != 0:
        raise DumpUnreadable(path, _first_error(listing.stderr))
    toc = parse_toc(listing.stdout, path)
    if read_data:
        full = await run_tool([pg_restore, f"--file={os.devnull}", path], timeout=_remaining(deadline))
        if full.returncode != 0:
            raise DumpUnreadable(path, _first_error(full.stderr))
    return toc


# --- taking a dump ----------------------------------------------------------------------------


async def dump(
    dsn: str, directory: str, *, prefix: str = "erp", timeout: float, now: datetime | None = None
) -> tuple[BackupFile, float]:
    """pg_dump -Fc into <directory>/<prefix>_<UTC stamp>.dump, verified; (the file, seconds it took).

    The dump is written under a hidden temporary name and appears under its final name only once
    verify() has read it, so the directory never holds a partial or unreadable dump."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"backup prefix {prefix!r} must be letters, digits, '_', '.' or '-'")
    if not os.path.isdir(directory):
        raise BackupDirectoryError(f"backup directory {directory} does not exist")
    started = time.monotonic()
    deadline = started + timeout
    final = Path(directory) / f"{prefix}_{utc_stamp(now)}.dump"
    if final.exists():
        raise DumpFailed(f"{final.name} already exists; not overwriting it")
    partial = final.with_name(f".{final.name}.partial")
    argv, extra_env = dump_command(dsn, str(partial))
    password = extra_env.get("PGPASSWORD")
    try:
        result = await run_tool(argv, timeout=timeout, extra_env=extra_env)
        if result.returncode != 0:
            raise DumpFailed(f"pg_dump failed: {masked(_first_error(result.stderr), password)}")
        try:
            await verify(str(partial), timeout=_remaining(deadline))
        except DumpUnreadable as exc:
            raise DumpFailed(f"pg_dump wrote a dump pg_restore cannot read: {exc.reason}") from None
        os.link(partial, final)  # unlike rename, never replaces a file that appeared meanwhile
    except FileExistsError:
        raise DumpFailed(f"{final.name} already exists; not overwriting it") from None
    finally:
        partial.unlink(missing_ok=True)
    return backup_file(final), time.monotonic() - started


# --- restoring --------------------------------------------------------------------------------


def database_identifier(name: str) -> str:
    """`name` validated as a database name and quoted for SQL."""
    if not _DATABASE_NAME.fullmatch(name) or len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"{name[:80]!r} is not a database name this bot handles "
            f"(letters, digits, '_' and '-', at most {_MAX_IDENTIFIER_BYTES} bytes)"
        )
    return quote_identifier(name)


def quote_identifier(name: str) -> str:
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


async def database_exists(admin_conn: asyncpg.Connection, name: str) -> bool:
    return bool(await admin_conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name))


async def database_owner(admin_conn: asyncpg.Connection, name: str) -> str | None:
    owner: str | None = await admin_conn.fetchval(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name
    )
    return owner


async def create_database(admin_conn: asyncpg.Connection, name: str, *, owner: str | None = None) -> None:
    """An empty database from template0, the clean base pg_restore expects."""
    sql = f"CREATE DATABASE {database_identifier(name)} TEMPLATE template0"
    if owner:
        sql += f" OWNER {quote_identifier(owner)}"
    await admin_conn.execute(sql)


async def restore_into(dsn: str, dump_path: str, timeout: float, *, role: str | None = None) -> None:
    """pg_restore the dump into the (existing, empty) database of `dsn`; RestoreFailed at the first error."""
    argv, extra_env = restore_command(dsn, dump_path, role)
    result = await run_tool(argv, timeout=timeout, extra_env=extra_env)
    if result.returncode != 0:
        raise RestoreFailed(f"pg_restore failed: {masked(_first_error(result.stderr), extra_env.get('PGPASSWORD'))}")


def _table_reference(table: str) -> str:
    schema, dot, name = table.partition(".")
    return f"{quote_identifier(schema)}.{quote_identifier(name)}" if dot else quote_identifier(table)


async def row_counts(conn: asyncpg.Connection, tables: Iterable[str]) -> dict[str, int | None]:
    """Exact row counts of `tables` ('name' or 'schema.name'); None for a table that does not exist."""
    counts: dict[str, int | None] = {}
    for table in tables:
        reference = _table_reference(table)
        if await conn.fetchval("SELECT to_regclass($1)", reference) is None:
            counts[table] = None
        else:
            counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {reference}"))
    return counts


async def user_tables(conn: asyncpg.Connection) -> set[str]:
    """schema.name of every table outside the system schemas."""
    rows = await conn.fetch(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    )
    return {f"{row['schemaname']}.{row['tablename']}" for row in rows}


async def end_sessions(admin_conn: asyncpg.Connection, dbname: str) -> int:
    """Terminate every other session on `dbname`, waiting for each to exit; how many were ended.

    The sessions are chosen in a materialized CTE and signalled in the select list: as a WHERE
    condition, pg_terminate_backend would be pushed below the view's join and run before the
    datname and own-pid filters, i.e. on every session of the cluster."""
    ended = await admin_conn.fetch(
        "WITH chosen AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) "
        "SELECT pg_terminate_backend(pid, $2) AS ended FROM chosen",
        dbname,
        SESSION_EXIT_WAIT_MS,
    )
    return sum(1 for row in ended if row["ended"])


async def rename_database(admin_conn: asyncpg.Connection, old: str, new: str) -> None:
    await admin_conn.execute(f"ALTER DATABASE {database_identifier(old)} RENAME TO {database_identifier(new)}")
