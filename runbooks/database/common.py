"""What the database runbooks share: the guide's thresholds, connecting to the ERPGo database (and
saying once per report why it cannot be reached), and small formatting helpers."""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.redact import redact, shorten
from bot.core.registry import CheckFunc, Refused, Runbook
from bot.core.units import human_duration
from bot.targets import NotConfigured

CONNECTION = "Database Issues › Database Connection Issues"
SLOW = "Database Issues › Slow Query Performance"
LOCKS = "Database Issues › Database Locks and Deadlocks"
PERFORMANCE = "Performance Issues › High Response Times › Database Performance"

# Thresholds, in the guide's terms where it gives them ("Critical Metrics to Monitor").
CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT = 80, 90  # "Connection pool usage > 90%"
SLOW_MEAN_WARN_MS, SLOW_MEAN_CRIT_MS = 1000.0, 5000.0  # "Slow queries > 1 second", "API responses > 5 seconds"
LOCK_WAIT_CRIT_S = 10.0  # "Lock wait time > 10 seconds"
LONG_TRANSACTION_WARN_S, LONG_TRANSACTION_CRIT_S = 60.0, 600.0
IDLE_IN_TRANSACTION_WARN_S, IDLE_IN_TRANSACTION_CRIT_S = 60.0, 600.0
REPLICATION_LAG_WARN_S, REPLICATION_LAG_CRIT_S = 30.0, 300.0
CACHE_HIT_WARN_PCT, CACHE_MIN_BLOCKS = 90.0, 10_000
ROLLBACK_WARN_PCT, ROLLBACK_MIN_XACTS = 10.0, 100
SEQ_SCAN_MIN_ROWS, SEQ_SCAN_MIN_SCANS = 10_000, 2
STALE_STATS_MIN_CHANGES, STALE_STATS_FRACTION = 1_000, 0.2
TOP = 10  # rows shown in a top list
STATEMENTS_SCANNED = 200  # pg_stat_statements rows read to find the TOP application statements
SLOWLOG_DEFAULT_MS = 1000  # the guide's "ALTER SYSTEM SET log_min_duration_statement = 1000"
LONG_STATEMENT_S = 900.0  # ANALYZE / REINDEX: minutes, not the checks' seconds
APP_NAME = "erpgo-chatops"


# --- connecting -------------------------------------------------------------------------------


@dataclass
class DsnParts:
    """ERPGO_DATABASE_URL taken apart, password kept out of anything shown."""

    scheme: str
    user: str
    has_password: bool
    hosts: list[tuple[str, int]]
    database: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.hosts[0][0]

    @property
    def port(self) -> int:
        return self.hosts[0][1]

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def is_local(self) -> bool:
        return self.is_socket or self.host in ("localhost", "127.0.0.1", "::1")

    def shown(self) -> str:
        auth = quote(self.user, safe="") + (":***" if self.has_password else "") + "@" if self.user else ""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{quote(h, safe='/')}:{p}" for h, p in self.hosts)
        query = "&".join(f"{k}={'***' if 'pass' in k.lower() else v}" for k, v in self.params.items())
        return redact(f"{self.scheme}://{auth}{hosts}/{quote(self.database, safe='')}" + (f"?{query}" if query else ""))


def parse_dsn(dsn: str) -> DsnParts:
    """postgres[ql]://user:password@host[:port][,host2[:port]]/db?params — ValueError says what is wrong."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("not a postgresql:// URL")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:  # postgresql://host?sslmode=… without a path
        netloc, _, query = netloc.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    user, colon, password = userinfo.partition(":")
    params = dict(parse_qsl(query, keep_blank_values=True))
    user = params.pop("user", "") or unquote(user)
    has_password = bool(colon and password) or bool(params.pop("password", ""))
    default_port = params.pop("port", "5432")
    hosts: list[tuple[str, int]] = []
    query_hosts = params.pop("host", "")
    entries = query_hosts.split(",") if query_hosts else hostlist.split(",")
    for entry in entries:
        entry = unquote(entry.strip())
        if entry.startswith("["):
            host, _, port_text = entry[1:].partition("]")
            port_text = port_text.lstrip(":")
        elif entry.startswith("/"):
            host, port_text = entry, ""
        else:
            host, _, port_text = entry.partition(":")
        try:
            port = int(port_text or default_port)
        except ValueError:
            raise ValueError(f"port {port_text or default_port!r} is not a number") from None
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        hosts.append((host or "localhost", port))
    database = params.pop("dbname", None) or unquote(path) or user or "postgres"
    return DsnParts(scheme, user or os.environ.get("USER", ""), has_password, hosts, database, params)


SERVER_LOG = "See the server log: `docker-compose logs postgres | tail -20`."
# What a failure to connect means and the guide's way out, first match wins: (exception, title, hint),
# formatted with where, host, port, user, database, first (the error's first line), error, timeout.
CONNECT_FAILURES: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str, str]] = [
    (
        socket.gaierror,
        "cannot resolve host {host}: {strerror}",
        "Check the host name in ERPGO_DATABASE_URL and that the postgres service is up and on the same "
        "network (`docker-compose ps postgres`; in Compose the host is the service name).",
    ),
    (
        ConnectionRefusedError,
        "connection refused at {where}: nothing listens there",
        "Is PostgreSQL running? `docker-compose ps postgres`, `docker-compose logs postgres | tail -20`; "
        "check the port in ERPGO_DATABASE_URL and listen_addresses; restart with "
        "`docker-compose restart postgres` (guide step 4).",
    ),
    (
        asyncpg.TooManyConnectionsError,
        "too many connections (53300): {first}",
        "Every connection slot is taken. Find who holds them (`db connections` from a superuser, or "
        "`SELECT usename, application_name, state, count(*) FROM pg_stat_activity GROUP BY 1, 2, 3`), end "
        "sessions idle in transaction, lower the ERPGo pool size, or raise max_connections (needs a restart).",
    ),
    (
        asyncpg.InvalidPasswordError,
        "authentication failed for user {user} (28P01): wrong password",
        "The password in ERPGO_DATABASE_URL does not match the role's: compare "
        "`docker-compose exec erpgo-api env | grep DATABASE_URL` with the role "
        "(`ALTER ROLE {user} PASSWORD '…'` to reset it).",
    ),
    (
        asyncpg.InvalidAuthorizationSpecificationError,
        "login rejected for user {user} (28000): {first}",
        "The role does not exist or pg_hba.conf has no entry for this host, user and database: "
        "check the user in ERPGO_DATABASE_URL and pg_hba.conf, then `SELECT pg_reload_conf()`.",
    ),
    (
        asyncpg.InvalidCatalogNameError,
        "database {database} does not exist (3D000)",
        "Fix the database name in ERPGO_DATABASE_URL, or create it (`CREATE DATABASE …`) / restore it "
        "from backup (guide: Emergency Procedures › Data Recovery).",
    ),
    (
        asyncpg.CannotConnectNowError,
        "server not accepting connections yet (57P03): {first}",
        "PostgreSQL is starting up, shutting down or in recovery: wait and retry; "
        "`docker-compose logs postgres | tail -20` shows why and how far it is.",
    ),
    (asyncpg.PostgresError, "login failed ({sqlstate}): {first}", SERVER_LOG),
    (
        ssl.SSLError,
        "TLS handshake with {where} failed: {first}",
        "Check sslmode in ERPGO_DATABASE_URL against the server's ssl setting and certificates.",
    ),
    (
        TimeoutError,
        "no answer from {where} within {timeout:.1f} s (timed out)",
        "A firewall, a network partition or an overloaded server: test with "
        "`pg_isready -h {host} -p {port}` from the application container, and check the server's load.",
    ),
    (
        (ConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError),
        "{where} closed the connection during login: {error}",
        "Something other than PostgreSQL may listen on that port, or the server crashed: "
        "`docker-compose logs postgres | tail -20`.",
    ),
    (
        OSError,
        "cannot reach {where}: {error}",
        "Check the network between the bot and the database host (routes, firewall, Docker network).",
    ),
]


def connect_failure(exc: BaseException, parts: DsnParts | None, timeout: float) -> tuple[str, str]:
    """(title, the guide's resolution hint) for anything asyncpg.connect or a socket can raise."""
    facts = {
        "where": f"{parts.host}:{parts.port}" if parts else "the database",
        "host": parts.host if parts else "HOST",
        "port": parts.port if parts else 5432,
        "user": parts.user if parts else "the user",
        "database": parts.database if parts else "the database",
        "first": first_line(exc),
        "error": describe_error(exc),
        "strerror": getattr(exc, "strerror", None) or exc,
        "sqlstate": getattr(exc, "sqlstate", "?"),
        "timeout": timeout,
    }
    for kind, title, hint in CONNECT_FAILURES:
        if isinstance(exc, kind):
            return title.format(**facts), hint.format(**facts)
    return f"cannot connect: {facts['error']}", SERVER_LOG


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    detail = getattr(exc, "detail", None)
    line = text.splitlines()[0] if text else type(exc).__name__
    return redact(line + (f" — {detail}" if detail else ""))[:300]


class CannotConnect(Exception):
    def __init__(self, finding: Finding):
        super().__init__(finding.title)
        self.finding = finding


@asynccontextmanager
async def db_connection(ctx: CheckContext) -> AsyncIterator[asyncpg.Connection]:
    """The ERPGo database; a failure to connect becomes one classified finding (CannotConnect)."""
    pg = ctx.targets.pg
    connection = pg.connect(APP_NAME)
    try:
        conn = await connection.__aenter__()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ssl.SSLError) as exc:
        try:
            parts = parse_dsn(pg.dsn)
        except ValueError:
            parts = None
        title, hint = connect_failure(exc, parts, pg.timeout)
        raise CannotConnect(
            Finding.crit(
                "PostgreSQL",
                "unreachable — " + title,
                section=CONNECTION,
                details=[hint, "`db connect` walks through URL, DNS, TCP and login step by step."],
                data={"error": type(exc).__name__, "sqlstate": getattr(exc, "sqlstate", None)},
            )
        ) from exc
    try:
        yield conn
    finally:
        await connection.__aexit__(None, None, None)  # closes it


def db_check(
    runbook: Runbook,
    *verbs: str,
    component: str = "PostgreSQL",
    section: str,
    timeout: float | None = None,
    proposes: tuple[str, ...] = (),
) -> Callable[[CheckFunc], CheckFunc]:
    """@runbook.check for checks that talk to the ERPGo database: an unreachable or unconfigured
    database is said once per report (every check that notices says it; the report keeps the first)."""

    def decorate(func):
        @functools.wraps(func)
        async def check(ctx: CheckContext):
            try:
                return await func(ctx)
            except NotConfigured as exc:
                return Finding.skipped(component, str(exc), once="database")
            except CannotConnect as exc:
                exc.finding.once = "database"
                return exc.finding

        return runbook.check(*verbs, component=component, section=section, timeout=timeout, proposes=proposes)(check)

    return decorate


# --- small helpers --------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """PostgreSQL identifier quoting (always quoted, inner quotes doubled), as asyncpg does it."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def one_line(text: str | None, limit: int = 120) -> str:
    return shorten(re.sub(r"\s+", " ", text or "").strip(), limit)


def statement_text(query: str | None, limit: int = 120) -> str:
    """A statement on one line, without its comments (ORMs and tags prepend them)."""
    text = re.sub(r"/\*.*?\*/|--[^\n]*", " ", query or "", flags=re.S)
    return shorten(re.sub(r"\s+", " ", text).strip(), limit)


def count(n: float | int | None) -> str:
    return f"{int(n or 0):,}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.2f} ms"


def ago(seconds: float | None) -> str:
    seconds = None if seconds is None else max(seconds, 0.0)  # clocks of two statements may differ by a hair
    return "n/a" if seconds is None else f"{seconds:.1f}s" if seconds < 10 else human_duration(seconds)


def by_seconds(seconds: float, warn: float, crit: float) -> Status:
    return Status.CRIT if seconds >= crit else Status.WARN if seconds >= warn else Status.OK


def session_label(row) -> str:
    app = row["application_name"] or "no application_name"
    return f"pid {row['pid']} ({app}, user {row['usename']})"


async def server_version_num(conn) -> int:
    return int(await conn.fetchval("SELECT current_setting('server_version_num')"))


async def find_relation(conn, schema: str, name: str, kinds: str):
    return await conn.fetchrow(
        "SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind::text = ANY($3::text[])",
        schema,
        name,
        list(kinds),
    )


def text_arg(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 63 or "\x00" in value:
        raise Refused(f"`{name}` must be a PostgreSQL identifier (1–63 characters)")
    return value
