"""Guide: "Database Issues" (Database Connection Issues, Slow Query Performance) and the database
part of "Performance Issues" (High Response Times › Database Performance).

Verbs: `db` (overview), `db connect`, `db connections`, `db slow`, `db indexes`, `db sizes`,
`db settings`, `db explain <queryid>`. Remediations (through approvals): `db.analyze`,
`db.slowlog`, `db.reindex`, `db.pgss_reset`; each Proposal's preview is the exact SQL that runs.

Every check opens its own short connection (the frame's rule: no stale state). When the database
cannot be reached, the first check of a report says why, with the guide's hint, and the others
stay quiet instead of repeating it.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import socket
import ssl
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import parse_qsl, quote, unquote

import asyncpg

from bot.engine import CheckContext, describe_error
from bot.findings import Finding, Proposal, Status
from bot.redact import redact
from bot.registry import Outcome, Refused, UsageError, registry
from bot.targets import NotConfigured
from bot.units import human_bytes, human_duration
from runbooks.quick import percent_status

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


# --- verbs ----------------------------------------------------------------------------------

def parse_overview(words: list[str]) -> dict[str, Any]:
    if words:
        subverbs = sorted(name for name in registry.verbs if name.startswith("db "))
        raise UsageError(f"unknown `db` subcommand `{words[0][:40]}`; try: " + ", ".join(f"`{name}`" for name in subverbs))
    return {}


def parse_queryid(words: list[str]) -> dict[str, Any]:
    if len(words) != 1:
        raise UsageError("give one queryid (the number `db slow` shows before each statement)")
    try:
        queryid = int(words[0])
    except ValueError:
        raise UsageError(f"queryid must be an integer, not `{words[0][:40]}`") from None
    if not -(2**63) <= queryid < 2**63:
        raise UsageError("queryid is out of range (a 64-bit integer)")
    return {"queryid": queryid}


registry.verb("db", "PostgreSQL at a glance: version, uptime, connections, cache, transactions, locks, replication",
              parse=parse_overview, ack="Looking at PostgreSQL…")
registry.verb("db connect", "why the database cannot be reached: URL, DNS, TCP, login", ack="Tracing the database connection…")
registry.verb("db connections", "connections by state, user and application; idle in transaction",
              ack="Counting database connections…")
registry.verb("db slow", "slowest statements (pg_stat_statements) and stale planner statistics",
              ack="Looking for slow statements…")
registry.verb("db indexes", "index usage, unused and invalid indexes, heavy sequential scans", ack="Checking indexes…")
registry.verb("db sizes", "largest tables and indexes", ack="Measuring tables and indexes…")
registry.verb("db settings", "memory and logging settings, with notes where they look wrong",
              ack="Reading PostgreSQL settings…")
registry.verb("db explain", "EXPLAIN (never ANALYZE) a statement from `db slow`", usage="<queryid>",
              parse=parse_queryid, ack="Planning the statement…")


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
    user = params.pop("user", None) or unquote(user)
    has_password = bool(colon and password) or bool(params.pop("password", None))
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


def connect_failure(exc: BaseException, parts: DsnParts | None, timeout: float) -> tuple[str, str]:
    """(title, the guide's resolution hint) for anything asyncpg.connect or a socket can raise."""
    where = f"{parts.host}:{parts.port}" if parts else "the database"
    user = parts.user if parts else "the user"
    database = parts.database if parts else "the database"
    if isinstance(exc, socket.gaierror):
        return (f"cannot resolve host {parts.host if parts else '(unknown)'}: {exc.strerror or exc}",
                "Check the host name in ERPGO_DATABASE_URL and that the postgres service is up and on the same "
                "network (`docker-compose ps postgres`; in Compose the host is the service name).")
    if isinstance(exc, ConnectionRefusedError):
        return (f"connection refused at {where}: nothing listens there",
                "Is PostgreSQL running? `docker-compose ps postgres`, `docker-compose logs postgres | tail -20`; "
                "check the port in ERPGO_DATABASE_URL and listen_addresses; restart with "
                "`docker-compose restart postgres` (guide step 4).")
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return (f"too many connections (53300): {first_line(exc)}",
                "Every connection slot is taken. Find who holds them (`db connections` from a superuser, or "
                "`SELECT usename, application_name, state, count(*) FROM pg_stat_activity GROUP BY 1, 2, 3`), end "
                "sessions idle in transaction, lower the ERPGo pool size, or raise max_connections (needs a restart).")
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return (f"authentication failed for user {user} (28P01): wrong password",
                "The password in ERPGO_DATABASE_URL does not match the role's: compare "
                "`docker-compose exec erpgo-api env | grep DATABASE_URL` with the role "
                f"(`ALTER ROLE {user} PASSWORD '…'` to reset it).")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return (f"login rejected for user {user} (28000): {first_line(exc)}",
                "The role does not exist or pg_hba.conf has no entry for this host, user and database: "
                "check the user in ERPGO_DATABASE_URL and pg_hba.conf, then `SELECT pg_reload_conf()`.")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (f"database {database} does not exist (3D000)",
                "Fix the database name in ERPGO_DATABASE_URL, or create it (`CREATE DATABASE …`) / restore it "
                "from backup (guide: Emergency Procedures › Data Recovery).")
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return (f"server not accepting connections yet (57P03): {first_line(exc)}",
                "PostgreSQL is starting up, shutting down or in recovery: wait and retry; "
                "`docker-compose logs postgres | tail -20` shows why and how far it is.")
    if isinstance(exc, asyncpg.PostgresError):
        return (f"login failed ({getattr(exc, 'sqlstate', '?')}): {first_line(exc)}",
                "See the server log: `docker-compose logs postgres | tail -20`.")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with {where} failed: {first_line(exc)}",
                "Check sslmode in ERPGO_DATABASE_URL against the server's ssl setting and certificates.")
    if isinstance(exc, TimeoutError):
        return (f"no answer from {where} within {timeout:.1f} s (timed out)",
                "A firewall, a network partition or an overloaded server: test with "
                f"`pg_isready -h {parts.host if parts else 'HOST'} -p {parts.port if parts else 5432}` from the "
                "application container, and check the server's load.")
    if isinstance(exc, (ConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError)):
        return (f"{where} closed the connection during login: {describe_error(exc)}",
                "Something other than PostgreSQL may listen on that port, or the server crashed: "
                "`docker-compose logs postgres | tail -20`.")
    if isinstance(exc, OSError):
        return (f"cannot reach {where}: {describe_error(exc)}",
                "Check the network between the bot and the database host (routes, firewall, Docker network).")
    return (f"cannot connect: {describe_error(exc)}", "See the server log: `docker-compose logs postgres | tail -20`.")


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
        raise CannotConnect(Finding.crit(
            "PostgreSQL", "unreachable — " + title, section=CONNECTION,
            details=[hint, "`db connect` walks through URL, DNS, TCP and login step by step."],
            data={"error": type(exc).__name__, "sqlstate": getattr(exc, "sqlstate", None)},
        )) from exc
    try:
        yield conn
    finally:
        await connection.__aexit__(None, None, None)  # closes it


_REPORTED = "_database_unreachable_reported"


def db_check(*verbs: str, component: str = "PostgreSQL", section: str, timeout: float | None = None):
    """@registry.check for checks that talk to the ERPGo database: an unreachable or unconfigured
    database is said once per report (the first check to notice says it, the rest return nothing)."""

    def decorate(func):
        @functools.wraps(func)
        async def check(ctx: CheckContext):
            try:
                return await func(ctx)
            except (CannotConnect, NotConfigured) as exc:
                if ctx.params.get(_REPORTED):
                    return []
                ctx.params[_REPORTED] = True
                if isinstance(exc, NotConfigured):
                    return Finding.skipped(component, str(exc))
                return exc.finding

        return registry.check(*verbs, component=component, section=section, timeout=timeout)(check)

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
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def statement_text(query: str | None, limit: int = 120) -> str:
    """A statement on one line, without its comments (ORMs and tags prepend them)."""
    text = re.sub(r"/\*.*?\*/|--[^\n]*", " ", query or "", flags=re.S)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# --- `db`: the overview -------------------------------------------------------------------------

OVERVIEW_SQL = """
SELECT current_setting('server_version') AS version,
       pg_postmaster_start_time() AS started,
       EXTRACT(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s,
       pg_is_in_recovery() AS in_recovery,
       current_database() AS database,
       pg_database_size(current_database()) AS database_size,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active') AS active,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state LIKE 'idle in transaction%') AS idle_in_transaction,
       d.blks_hit, d.blks_read, d.deadlocks,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'MEMBER')
         AS sees_all
FROM pg_stat_database d
WHERE d.datname = current_database()
"""

LONGEST_TRANSACTION_SQL = f"""
SELECT pid, usename, application_name, state, backend_start,
       EXTRACT(epoch FROM now() - xact_start)::float8 AS xact_s,
       EXTRACT(epoch FROM now() - state_change)::float8 AS state_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND application_name NOT LIKE '{APP_NAME}%'
ORDER BY xact_start
LIMIT 1
"""

BLOCKED_SQL = """
SELECT pid, usename, application_name, pg_blocking_pids(pid) AS blockers,
       EXTRACT(epoch FROM now() - COALESCE(query_start, state_change))::float8 AS wait_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE cardinality(pg_blocking_pids(pid)) > 0
ORDER BY wait_s DESC
"""

REPLICAS_SQL = """
SELECT application_name, client_addr::text AS client, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       EXTRACT(epoch FROM replay_lag)::float8 AS lag_s
FROM pg_stat_replication
ORDER BY application_name
"""

STANDBY_SQL = """
SELECT EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS delay_s,
       pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() AS caught_up
"""


def usable_connections(row) -> int:
    return max(row["max_connections"] - row["superuser_reserved"] - row["reserved"], 1)


def server_finding(row, connect_ms: float) -> Finding:
    role = "replica (in recovery)" if row["in_recovery"] else "primary"
    title = (f"PostgreSQL {row['version']} ({role}), up {human_duration(row['uptime_s'])}, "
             f"connect {connect_ms:.0f} ms, database {row['database']} {human_bytes(row['database_size'])}")
    details = [f"started at {row['started']:%Y-%m-%d %H:%M:%S %Z}"]
    if not row["sees_all"]:
        details.append("the bot's database user cannot see other users' sessions in full: grant it pg_read_all_stats")
    return Finding.ok("PostgreSQL", title, details=details, section=CONNECTION,
                      data={"version": row["version"], "uptime_s": row["uptime_s"], "in_recovery": row["in_recovery"],
                            "connect_ms": round(connect_ms, 2), "database": row["database"],
                            "database_size": row["database_size"]})


def connection_usage_finding(row) -> Finding:
    used, usable = row["connections"], usable_connections(row)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    pct = used * 100 / usable
    title = (f"{used} of {usable} usable connections ({pct:.0f} %): {row['active']} active, "
             f"{row['idle_in_transaction']} idle in transaction")
    details = [f"max_connections {row['max_connections']}, of which {row['superuser_reserved']} reserved for "
               f"superusers" + (f" and {row['reserved']} for pg_use_reserved_connections" if row["reserved"] else "")]
    if status is not Status.OK:
        details.append("`db connections` shows who holds them")
    return Finding(status, "PostgreSQL connections", title, details=details, section=CONNECTION,
                   data={"connections": used, "usable": usable, "max_connections": row["max_connections"],
                         "active": row["active"], "idle_in_transaction": row["idle_in_transaction"]})


def cache_finding(row) -> Finding:
    hit, read = row["blks_hit"] or 0, row["blks_read"] or 0
    total = hit + read
    ratio = hit * 100 / total if total else None
    data = {"cache_hit_pct": ratio, "blks_hit": hit, "blks_read": read}
    if total < CACHE_MIN_BLOCKS:
        title = f"cache hit ratio {ratio:.1f} % over only {count(total)} block reads: too little traffic to judge" \
            if ratio is not None else "cache hit ratio: no reads yet"
        return Finding.ok("PostgreSQL cache", title, section=PERFORMANCE, data=data)
    status = Status.WARN if ratio < CACHE_HIT_WARN_PCT else Status.OK
    details = [f"{count(hit)} blocks from shared_buffers, {count(read)} from disk or the OS cache (aim for ≥ 99 %)"]
    if status is Status.WARN:
        details.append("reads miss shared_buffers often: look at `db settings` (shared_buffers) and `db slow`")
    return Finding(status, "PostgreSQL cache", f"cache hit ratio {ratio:.1f} %", details=details,
                   section=PERFORMANCE, data=data)


def longest_transaction_finding(row) -> Finding:
    if row is None:
        return Finding.ok("PostgreSQL transactions", "no open transactions besides this bot's", section=PERFORMANCE,
                          data={"longest_transaction_s": 0})
    status = by_seconds(row["xact_s"], LONG_TRANSACTION_WARN_S, LONG_TRANSACTION_CRIT_S)
    title = f"longest transaction {ago(row['xact_s'])} — {session_label(row)}, {row['state']}"
    details = [f"last statement: {one_line(row['query'], 200)}"]
    if (row["state"] or "").startswith("idle in transaction"):
        details.append(f"idle in transaction for {ago(row['state_s'])}: it holds its locks and snapshot until it ends")
    return Finding(status, "PostgreSQL transactions", title, details=details, section=PERFORMANCE,
                   data={"longest_transaction_s": row["xact_s"], "pid": row["pid"], "state": row["state"]})


def blocked_finding(rows) -> Finding:
    if not rows:
        return Finding.ok("PostgreSQL locks", "no blocked sessions", section=LOCKS, data={"blocked": 0})
    longest = max(row["wait_s"] or 0 for row in rows)
    blockers = sorted({pid for row in rows for pid in row["blockers"]})
    status = Status.CRIT if longest >= LOCK_WAIT_CRIT_S else Status.WARN
    title = (f"{len(rows)} blocked session{'s' if len(rows) != 1 else ''}, longest waiting {ago(longest)}, "
             f"blocked by pid {', '.join(map(str, blockers))}")
    evidence = [f"pid {row['pid']} ({row['application_name'] or '-'}) waits {ago(row['wait_s'])} on "
                f"{', '.join(map(str, row['blockers']))}: {one_line(row['query'], 100)}" for row in rows]
    return Finding(status, "PostgreSQL locks", title, section=LOCKS, evidence=evidence,
                   details=["`db locks` shows the blocking tree and offers to end the blocker"],
                   data={"blocked": len(rows), "longest_wait_s": longest, "blockers": blockers})


def replication_findings(in_recovery: bool, replicas, standby) -> list[Finding]:
    if in_recovery and standby is not None:
        delay = standby["delay_s"]
        if standby["caught_up"] or delay is None:
            return [Finding.ok("PostgreSQL replication", "replica has replayed all WAL it received",
                               section=CONNECTION, data={"lag_s": 0})]
        status = by_seconds(delay, REPLICATION_LAG_WARN_S, REPLICATION_LAG_CRIT_S)
        return [Finding(status, "PostgreSQL replication", f"replica replay is {ago(delay)} behind", section=CONNECTION,
                        data={"lag_s": delay})]
    findings = []
    for replica in replicas:
        lag_s, lag_bytes = replica["lag_s"] or 0.0, replica["lag_bytes"]
        status = by_seconds(lag_s, REPLICATION_LAG_WARN_S, REPLICATION_LAG_CRIT_S)
        if replica["state"] != "streaming":
            status = Status.WARN if status is Status.OK else status
        name = replica["application_name"] or replica["client"] or "replica"
        title = (f"{name} ({replica['sync_state']}, {replica['state']}): replay lag {ago(lag_s)}, "
                 f"{human_bytes(lag_bytes) if lag_bytes is not None else 'n/a'} behind")
        findings.append(Finding(status, f"PostgreSQL replica {name}", title, section=CONNECTION,
                                data={"lag_s": lag_s, "lag_bytes": lag_bytes, "state": replica["state"]}))
    return findings


@db_check("db", section=CONNECTION)
async def database_overview(ctx: CheckContext) -> list[Finding]:
    """One connection, one line per aspect: server, connections, cache, transactions, locks, replication."""
    started = time.perf_counter()
    async with db_connection(ctx) as conn:
        connect_ms = (time.perf_counter() - started) * 1000
        row = await conn.fetchrow(OVERVIEW_SQL)
        longest = await conn.fetchrow(LONGEST_TRANSACTION_SQL)
        blocked = await conn.fetch(BLOCKED_SQL)
        if row["in_recovery"]:
            replicas, standby = [], await conn.fetchrow(STANDBY_SQL)
        else:
            replicas, standby = await conn.fetch(REPLICAS_SQL), None
    findings = [
        server_finding(row, connect_ms),
        connection_usage_finding(row),
        cache_finding(row),
        longest_transaction_finding(longest),
        blocked_finding(blocked),
        *replication_findings(row["in_recovery"], replicas, standby),
    ]
    if not replicas and not row["in_recovery"]:
        findings[0].details.append("replication: no replica attached")
    return findings


# --- `db connect`: the "Database Connection Resolution" runbook, step by step --------------------

class Budget:
    """The check's time, shared by its steps, so a hung step still leaves room to report."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.05)


CONNECT_STEPS = ("PostgreSQL URL", "PostgreSQL DNS", "PostgreSQL TCP", "PostgreSQL login")

LOGIN_SQL = """
SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS in_recovery,
       current_user AS user, current_database() AS database,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active') AS active
"""


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def not_tried(steps: tuple[str, ...], because: str) -> list[Finding]:
    return [Finding.skipped(step, f"not tried: {because}", section=CONNECTION) for step in steps]


@registry.check("db connect", component="PostgreSQL URL", section=CONNECTION)
async def connection_diagnosis(ctx: CheckContext) -> list[Finding]:
    """Parse ERPGO_DATABASE_URL, resolve the host, open TCP, log in — and name the first step that fails."""
    pg = ctx.targets.pg
    budget = Budget(max(ctx.settings.erpgo_check_timeout - 0.3, 0.5))
    findings: list[Finding] = []
    try:
        parts = parse_dsn(pg.dsn)
    except ValueError as exc:
        return [Finding.crit("PostgreSQL URL", f"ERPGO_DATABASE_URL cannot be parsed: {exc}", section=CONNECTION,
                             details=["expected postgres://USER:PASSWORD@HOST:5432/erp (guide step 2, "
                                      "Verify Connection Parameters)"]),
                *not_tried(CONNECT_STEPS[1:], "the URL cannot be parsed")]
    url_details = ["a password is in the URL" if parts.has_password
                   else "no password in the URL (trust or peer authentication, or a .pgpass file)"]
    if parts.has_password:
        url_details.append(f"as configured, redacted: {parts.shown()}")
    if len(parts.hosts) > 1:
        url_details.append(f"{len(parts.hosts)} hosts listed; this diagnosis follows the first")
    if parts.params:
        url_details.append("options: " + ", ".join(f"{key}={'***' if 'pass' in key.lower() else value}"
                                                   for key, value in parts.params.items()))
    title = (f"{parts.scheme} URL parsed: user {parts.user or '(default)'}, host {parts.host}, port {parts.port}, "
             f"database {parts.database}")
    findings.append(Finding.ok("PostgreSQL URL", title, details=url_details, section=CONNECTION,
                               data={"user": parts.user, "host": parts.host, "port": parts.port,
                                     "database": parts.database}))

    # DNS
    if parts.is_socket:
        findings.append(Finding.ok("PostgreSQL DNS", f"Unix socket directory {parts.host}: nothing to resolve",
                                   section=CONNECTION))
        addresses: list[tuple] = []
    elif is_ip_address(parts.host):
        findings.append(Finding.ok("PostgreSQL DNS", f"{parts.host} is an IP address: nothing to resolve",
                                   section=CONNECTION, data={"addresses": [parts.host]}))
        addresses = [(parts.host, parts.port)]
    else:
        started = time.perf_counter()
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(parts.host, parts.port, type=socket.SOCK_STREAM), budget.left())
        except (socket.gaierror, TimeoutError, OSError) as exc:
            title, hint = connect_failure(exc, parts, time.perf_counter() - started)
            if isinstance(exc, TimeoutError):
                title = f"the DNS lookup of {parts.host} did not answer within {time.perf_counter() - started:.1f} s"
                hint = "The resolver is slow or unreachable: check /etc/resolv.conf and the Docker network's DNS."
            findings.append(Finding.crit("PostgreSQL DNS", title, details=[hint], section=CONNECTION,
                                         data={"error": type(exc).__name__}))
            return findings + not_tried(CONNECT_STEPS[2:], "the host does not resolve")
        dns_ms = (time.perf_counter() - started) * 1000
        addresses = list(dict.fromkeys(info[4][:2] for info in infos))
        shown = ", ".join(address[0] for address in addresses[:4])
        findings.append(Finding.ok("PostgreSQL DNS", f"{parts.host} resolves to {shown} ({dns_ms:.0f} ms)",
                                   section=CONNECTION, data={"addresses": [a[0] for a in addresses], "dns_ms": dns_ms}))

    # TCP
    tcp = await tcp_step(parts, addresses, budget)
    findings.append(tcp)
    if tcp.status is not Status.OK:
        return findings + not_tried(CONNECT_STEPS[3:], "no TCP connection")

    # login
    findings.append(await login_step(pg.dsn, parts, budget))
    return findings


async def tcp_step(parts: DsnParts, addresses: list[tuple], budget: Budget) -> Finding:
    started = time.perf_counter()
    last_error: BaseException | None = None
    targets = [(parts.host, parts.port)] if parts.is_socket else addresses
    for host, port in targets:
        try:
            if parts.is_socket:
                path = f"{host.rstrip('/')}/.s.PGSQL.{port}"
                opening = asyncio.open_unix_connection(path)
            else:
                opening = asyncio.open_connection(host, port)
            _reader, writer = await asyncio.wait_for(opening, budget.left())
        except (OSError, TimeoutError) as exc:
            last_error = exc
            continue
        tcp_ms = (time.perf_counter() - started) * 1000
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        where = f"{host}/.s.PGSQL.{port}" if parts.is_socket else f"{host}:{port}"
        return Finding.ok("PostgreSQL TCP", f"{where} accepts connections ({tcp_ms:.1f} ms)", section=CONNECTION,
                          data={"tcp_ms": round(tcp_ms, 2), "address": host})
    assert last_error is not None
    title, hint = connect_failure(last_error, parts, time.perf_counter() - started)
    return Finding.crit("PostgreSQL TCP", title, details=[hint], section=CONNECTION,
                        data={"error": type(last_error).__name__})


async def login_step(dsn: str, parts: DsnParts, budget: Budget) -> Finding:
    started = time.perf_counter()
    timeout = budget.left()
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout,
                                     server_settings={"application_name": APP_NAME})
    except Exception as exc:  # every way a login fails is a finding
        elapsed = time.perf_counter() - started
        title, hint = connect_failure(exc, parts, elapsed)
        if isinstance(exc, TimeoutError):
            title = f"{parts.host}:{parts.port} accepts TCP but the login did not finish within {elapsed:.1f} s"
            hint = ("The server is overloaded, stuck, or what listens there is not PostgreSQL: "
                    "`docker-compose logs postgres | tail -20`, and the host's load.")
        return Finding.crit("PostgreSQL login", title, details=[hint], section=CONNECTION,
                            data={"error": type(exc).__name__, "sqlstate": getattr(exc, "sqlstate", None)})
    try:
        login_ms = (time.perf_counter() - started) * 1000
        row = await conn.fetchrow(LOGIN_SQL, timeout=budget.left())
    finally:
        await conn.close(timeout=budget.left())
    used, usable = row["connections"], usable_connections(row)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    title = (f"logged in as {row['user']} to {row['database']} in {login_ms:.0f} ms — PostgreSQL {row['version']}, "
             f"{used}/{usable} usable connections")
    details = [
        f"max_connections {row['max_connections']} ({row['superuser_reserved']} reserved for superusers), "
        f"{used} connected, {row['active']} active",
        "server is a replica in recovery (read-only)" if row["in_recovery"] else "server is a primary (read-write)",
    ]
    return Finding(status, "PostgreSQL login", title, details=details, section=CONNECTION,
                   data={"login_ms": round(login_ms, 2), "version": row["version"], "connections": used,
                         "usable": usable, "in_recovery": row["in_recovery"]})


# --- `db connections` -----------------------------------------------------------------------------

BY_STATE_SQL = """
SELECT COALESCE(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC, 1
"""

LIMITS_SQL = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type <> 'client backend') AS background,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'MEMBER')
         AS sees_all
"""

BY_DATABASE_SQL = """
SELECT COALESCE(datname, '-') AS datname, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC, 1
"""

BY_CLIENT_SQL = """
SELECT COALESCE(NULLIF(application_name, ''), '(none)') AS application, COALESCE(usename::text, '?') AS usename,
       count(*) AS total,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
       string_agg(DISTINCT COALESCE(client_addr::text, 'local'), ', ') AS clients
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2
ORDER BY total DESC, 1, 2
"""

OWN_CONNECTIONS_SQL = f"""
SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE '{APP_NAME}%'
"""

IDLE_IN_TRANSACTION_SQL = f"""
SELECT pid, usename, application_name, client_addr::text AS client, datname, state, backend_start,
       EXTRACT(epoch FROM now() - state_change)::float8 AS idle_s,
       EXTRACT(epoch FROM now() - xact_start)::float8 AS xact_s,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE state LIKE 'idle in transaction%' AND backend_type = 'client backend'
  AND application_name NOT LIKE '{APP_NAME}%'  -- this bot's checks, between two statements
ORDER BY state_change
"""

DATABASE_ACTIVITY_SQL = """
SELECT datname, numbackends, xact_commit, xact_rollback, deadlocks, conflicts, temp_files, temp_bytes,
       blks_hit, blks_read, stats_reset
FROM pg_stat_database WHERE datname = current_database()
"""


@db_check("db connections", section=CONNECTION)
async def connections_by_state(ctx: CheckContext) -> Finding:
    """Guide step 3, "Check Connection Limits": connections by state against max_connections."""
    async with db_connection(ctx) as conn, conn.transaction(readonly=True):  # one snapshot of pg_stat_activity
        limits = await conn.fetchrow(LIMITS_SQL)
        states = await conn.fetch(BY_STATE_SQL)
        databases = await conn.fetch(BY_DATABASE_SQL)
        ours = await conn.fetchval(OWN_CONNECTIONS_SQL)
    used, usable = limits["connections"], usable_connections(limits)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    by_state = {row["state"]: row["n"] for row in states}
    title = f"{used} of {usable} usable connections ({used * 100 / usable:.0f} %): " + (
        ", ".join(f"{n} {state}" for state, n in by_state.items()) or "none")
    details = [
        f"max_connections {limits['max_connections']}: {limits['superuser_reserved']} reserved for superusers"
        + (f", {limits['reserved']} for pg_use_reserved_connections" if limits["reserved"] else "")
        + f", {usable} for everyone else",
        "by database: " + ", ".join(f"{row['datname']} {row['n']}" for row in databases),
        f"{limits['background']} background processes (autovacuum, WAL writer, …) do not count against the limit",
        f"{ours} of the connections are this bot's own (its checks connect briefly)",
    ]
    if status is not Status.OK:
        details.append("at the limit new logins fail with 53300 \"too many clients\": end idle sessions, shrink the "
                       "ERPGo pool, or raise max_connections (restart) / add a pooler such as PgBouncer")
    if not limits["sees_all"]:
        details.append("the bot's user cannot see other users' session states: grant it pg_read_all_stats")
    return Finding(status, "PostgreSQL connections", title, details=details,
                   data={"connections": used, "usable": usable, "max_connections": limits["max_connections"],
                         "superuser_reserved": limits["superuser_reserved"], "reserved": limits["reserved"],
                         "by_state": by_state, "by_database": {r["datname"]: r["n"] for r in databases}})


@db_check("db connections", component="PostgreSQL clients", section=CONNECTION)
async def connections_by_client(ctx: CheckContext) -> Finding:
    """Who holds the connections: by application_name and user (pg_stat_activity)."""
    async with db_connection(ctx) as conn, conn.transaction(readonly=True):  # one snapshot of pg_stat_activity
        everyone = await conn.fetch(BY_CLIENT_SQL)
        limits = await conn.fetchrow(LIMITS_SQL)
    rows = [row for row in everyone if not row["application"].startswith(APP_NAME)]
    own = sum(row["total"] for row in everyone) - sum(row["total"] for row in rows)
    total = sum(row["total"] for row in rows)
    users: dict[str, int] = {}
    for row in rows:
        users[row["usename"]] = users.get(row["usename"], 0) + row["total"]
    apps = {row["application"] for row in rows}
    if not rows:
        return Finding.ok("PostgreSQL clients", "no client connections besides this bot's", data={"clients": []})
    top = rows[0]
    share = top["total"] * 100 / usable_connections(limits)
    status = Status.WARN if share >= CONNECTIONS_WARN_PCT else Status.OK
    title = (f"{top['application']} (user {top['usename']}) holds the most: {top['total']} of {total} connections; "
             f"{len(apps)} application{'s' if len(apps) != 1 else ''}, {len(users)} user{'s' if len(users) != 1 else ''}")
    evidence = [f"{'application':<24} {'user':<14} {'total':>5} {'active':>6} {'idle':>5} {'idle-tx':>7}  clients"]
    evidence += [f"{one_line(row['application'], 24):<24} {one_line(row['usename'], 14):<14} {row['total']:>5} "
                 f"{row['active']:>6} {row['idle']:>5} {row['idle_in_transaction']:>7}  {one_line(row['clients'], 40)}"
                 for row in rows]
    details = ["by user: " + ", ".join(f"{user} {n}" for user, n in sorted(users.items(), key=lambda kv: -kv[1])),
               f"not listed: this bot's own {own} connection{'s' if own != 1 else ''} ({APP_NAME})"]
    if status is Status.WARN:
        details.append(f"{top['application']} alone uses {share:.0f} % of the usable connections: check its pool size")
    clients = [{k: row[k] for k in ("application", "usename", "total", "active", "idle", "idle_in_transaction")}
               for row in rows]
    return Finding(status, "PostgreSQL clients", title, details=details, evidence=evidence,
                   data={"clients": clients, "by_user": users, "own": own})


@db_check("db connections", component="PostgreSQL idle in transaction", section=CONNECTION)
async def idle_in_transaction(ctx: CheckContext) -> Finding:
    """Sessions idle in transaction, oldest first, with their age: they hold locks and snapshots."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(IDLE_IN_TRANSACTION_SQL)
        timeout_setting = await conn.fetchval("SELECT current_setting('idle_in_transaction_session_timeout')")
    component = "PostgreSQL idle in transaction"
    if not rows:
        return Finding.ok(component, "no session is idle in transaction", data={"sessions": []})
    oldest = rows[0]
    status = by_seconds(oldest["idle_s"], IDLE_IN_TRANSACTION_WARN_S, IDLE_IN_TRANSACTION_CRIT_S)
    n = len(rows)
    title = (f"{n} session{'s' if n != 1 else ''} idle in transaction, longest {ago(oldest['idle_s'])}: "
             f"{session_label(oldest)}")
    evidence = [f"pid {row['pid']} {row['application_name'] or '-'} user {row['usename']} db {row['datname']}: idle "
                f"{ago(row['idle_s'])}, transaction open {ago(row['xact_s'])} — last: {one_line(row['query'], 80)}"
                for row in rows]
    details = ["such a session keeps its locks and snapshot until it ends; pg_cancel_backend does not end it, "
               "only pg_terminate_backend does (`db locks` shows what it blocks and offers that)"]
    if timeout_setting in ("0", "0ms"):
        details.append("idle_in_transaction_session_timeout is off: setting it (e.g. 5min) makes such sessions end "
                       "on their own")
    else:
        details.append(f"idle_in_transaction_session_timeout is {timeout_setting}")
    sessions = [{"pid": row["pid"], "application_name": row["application_name"], "usename": row["usename"],
                 "idle_s": row["idle_s"], "xact_s": row["xact_s"], "state": row["state"],
                 "backend_start": row["backend_start"].isoformat()} for row in rows]
    return Finding(status, component, title, details=details, evidence=evidence, data={"sessions": sessions})


@db_check("db connections", component="PostgreSQL activity", section=CONNECTION)
async def database_activity(ctx: CheckContext) -> Finding:
    """Guide step 3, "Connection statistics": pg_stat_database for the ERPGo database."""
    async with db_connection(ctx) as conn:
        row = await conn.fetchrow(DATABASE_ACTIVITY_SQL)
    commits, rollbacks = row["xact_commit"], row["xact_rollback"]
    xacts = commits + rollbacks
    rollback_pct = rollbacks * 100 / xacts if xacts else 0.0
    status = Status.OK
    notes = []
    if xacts >= ROLLBACK_MIN_XACTS and rollback_pct >= ROLLBACK_WARN_PCT:
        status = Status.WARN
        notes.append(f"{rollback_pct:.1f} % of transactions roll back: look for errors in the ERPGo logs")
    if row["deadlocks"]:
        status = Status.WARN
        notes.append(f"{row['deadlocks']} deadlocks detected: see the guide's Database Locks and Deadlocks")
    since = f"since {row['stats_reset']:%Y-%m-%d %H:%M}" if row["stats_reset"] else "since statistics began"
    title = (f"{row['datname']}: {row['numbackends']} backends, {count(commits)} commits, {count(rollbacks)} rollbacks "
             f"({rollback_pct:.1f} %), {row['deadlocks']} deadlocks")
    details = notes + [
        f"counters {since}",
        f"temporary files: {count(row['temp_files'])} ({human_bytes(row['temp_bytes'])}) — many mean work_mem is "
        "too small for the sorts and hashes" if row["temp_files"] else "temporary files: none",
    ]
    return Finding(status, "PostgreSQL activity", title, details=details,
                   data={"database": row["datname"], "numbackends": row["numbackends"], "xact_commit": commits,
                         "xact_rollback": rollbacks, "deadlocks": row["deadlocks"], "temp_files": row["temp_files"]})


# --- pg_stat_statements -------------------------------------------------------------------------

@dataclass
class StatementsSource:
    """Where (and whether) pg_stat_statements can be read in this database."""

    available: bool
    problem: str = ""  # why not, and how to enable it
    version_num: int = 0

    @property
    def mean_col(self) -> str:
        return "mean_exec_time" if self.version_num >= 130000 else "mean_time"

    @property
    def total_col(self) -> str:
        return "total_exec_time" if self.version_num >= 130000 else "total_time"


def preload_listed(value: str | None) -> bool | None:
    if value is None:
        return None
    names = [item.strip().strip('"').rsplit("/", 1)[-1].removesuffix(".so") for item in value.split(",")]
    return "pg_stat_statements" in names


HOW_TO_ENABLE = ("add pg_stat_statements to shared_preload_libraries (postgresql.conf, or "
                 "`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`), restart PostgreSQL, then run "
                 "`CREATE EXTENSION pg_stat_statements;` in database {db}")


async def statements_source(conn) -> StatementsSource:
    version_num = await server_version_num(conn)
    database = await conn.fetchval("SELECT current_database()")
    installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    try:
        preload = preload_listed(await conn.fetchval("SELECT current_setting('shared_preload_libraries')"))
    except asyncpg.InsufficientPrivilegeError:
        preload = None
    if installed:
        try:
            await conn.fetchval("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except asyncpg.ObjectNotInPrerequisiteStateError:
            return StatementsSource(False, f"pg_stat_statements is created in {database} but not loaded: add it to "
                                           "shared_preload_libraries and restart PostgreSQL", version_num)
        return StatementsSource(True, "", version_num)
    available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'")
    if not available:
        return StatementsSource(False, "pg_stat_statements is not installed on the server (Debian/Ubuntu: the "
                                       "postgresql-contrib package; the official Docker image has it), then "
                                       + HOW_TO_ENABLE.format(db=database), version_num)
    if preload:
        return StatementsSource(False, f"pg_stat_statements is loaded but not created in database {database}: run "
                                       "`CREATE EXTENSION pg_stat_statements;` there", version_num)
    return StatementsSource(False, "pg_stat_statements is not enabled: " + HOW_TO_ENABLE.format(db=database),
                            version_num)


def statements_sql(source: StatementsSource, order_by: str) -> str:
    """Top statements of this database; column names by server version (mean_exec_time from 13 on)."""
    mean, total = source.mean_col, source.total_col
    order = {"mean": mean, "total": total}[order_by]
    return f"""
SELECT s.queryid, s.calls, s.rows, s.{mean}::float8 AS mean_ms, s.{total}::float8 AS total_ms, s.query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.calls > 0
ORDER BY s.{order} DESC NULLS LAST
LIMIT {STATEMENTS_SCANNED}
"""


def statement_line(row) -> str:
    return (f"{row['queryid']}  mean {fmt_ms(row['mean_ms'])} · {count(row['calls'])} calls · total {fmt_ms(row['total_ms'])} "
            f"· {count(row['rows'])} rows — {statement_text(row['query'], 100)}")


def application_statements(rows) -> list:
    """The statements an application runs (queries and DML) — not DDL, VACUUM or SET, nor queries on the
    catalogs and statistics views such as this bot's own; the top TOP of them."""
    return [row for row in rows
            if first_keyword(row["query"] or "") in APPLICATION_KEYWORDS and not MONITORING.search(row["query"] or "")][:TOP]


async def slowlog_value(conn) -> int:
    return int(await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'log_min_duration_statement'"))


@db_check("db slow", section=SLOW)
async def slow_statements(ctx: CheckContext) -> list[Finding]:
    """Guide: "Query statistics" — top statements by mean and by total time, with calls and rows."""
    async with db_connection(ctx) as conn:
        source = await statements_source(conn)
        database = await conn.fetchval("SELECT current_database()")
        slowlog = await slowlog_value(conn)
        if not source.available:
            return [Finding.warn("PostgreSQL statements", "pg_stat_statements unavailable — " + source.problem,
                                 details=["without it the bot cannot rank statements; `db slow` and `db explain` "
                                          "need it"], data={"pg_stat_statements": False})]
        by_mean = application_statements(await conn.fetch(statements_sql(source, "mean")))
        by_total = application_statements(await conn.fetch(statements_sql(source, "total")))
        tracked = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())")
    if not by_mean:
        return [Finding.ok("PostgreSQL statements", f"no statements recorded yet for {database}",
                           data={"pg_stat_statements": True, "statements": 0})]
    slowest = by_mean[0]
    mean_ms = slowest["mean_ms"] or 0.0
    status = Status.CRIT if mean_ms >= SLOW_MEAN_CRIT_MS else Status.WARN if mean_ms >= SLOW_MEAN_WARN_MS else Status.OK
    slow_count = sum(1 for row in by_mean if (row["mean_ms"] or 0) >= SLOW_MEAN_WARN_MS)
    title = (f"slowest on average: {fmt_ms(mean_ms)} over {count(slowest['calls'])} calls — "
             f"{statement_text(slowest['query'], 80)}")
    details = [f"{slow_count} of the top {len(by_mean)} statements average ≥ {SLOW_MEAN_WARN_MS:.0f} ms"
               if slow_count else f"no statement averages ≥ {SLOW_MEAN_WARN_MS:.0f} ms",
               "each line starts with its queryid: `db explain <queryid>` shows its plan",
               "only application statements are ranked: queries and DML, not DDL, VACUUM or SET, nor queries on the "
               "catalogs and statistics views (like this bot's own)"]
    proposals = []
    if slowlog < 0 and status is not Status.OK:
        details.append("the slow query log is off, so the server log does not show these")
        proposals.append(slowlog_proposal(SLOWLOG_DEFAULT_MS, slowlog,
                                          reason="the guide's first step for slow queries: log what is slow"))
    mean_finding = Finding(status, "PostgreSQL slow statements", title, details=details,
                           evidence=[statement_line(row) for row in by_mean], proposals=proposals,
                           data={"pg_stat_statements": True, "columns": [source.mean_col, source.total_col],
                                 "by_mean": [statement_dict(row) for row in by_mean]})
    busiest = by_total[0]
    grand_total = sum(row["total_ms"] or 0 for row in by_total)
    total_title = (f"most time in total: {fmt_ms(busiest['total_ms'])} in {count(busiest['calls'])} calls — "
                   f"{statement_text(busiest['query'], 80)}")
    total_finding = Finding.ok(
        "PostgreSQL busiest statements", total_title,
        details=[f"the top {len(by_total)} account for {fmt_ms(grand_total)}; {count(tracked)} statements tracked "
                 f"for {database}",
                 "after fixing a statement, reset the statistics to measure afresh"],
        evidence=[statement_line(row) for row in by_total],
        proposals=[pgss_reset_proposal(source.version_num, database, tracked)],
        data={"by_total": [statement_dict(row) for row in by_total], "statements": tracked})
    return [mean_finding, total_finding]


def statement_dict(row) -> dict[str, Any]:
    return {"queryid": row["queryid"], "calls": row["calls"], "rows": row["rows"], "mean_ms": row["mean_ms"],
            "total_ms": row["total_ms"], "query": statement_text(row["query"], 300)}


STALE_STATS_SQL = f"""
SELECT schemaname, relname, n_live_tup, n_mod_since_analyze,
       GREATEST(last_analyze, last_autoanalyze) AS analyzed
FROM pg_stat_user_tables
WHERE n_mod_since_analyze >= {STALE_STATS_MIN_CHANGES}
  AND (GREATEST(last_analyze, last_autoanalyze) IS NULL
       OR n_mod_since_analyze > {STALE_STATS_FRACTION} * GREATEST(n_live_tup, 1))
ORDER BY n_mod_since_analyze DESC
"""


@db_check("db slow", component="PostgreSQL statistics", section=SLOW)
async def table_statistics(ctx: CheckContext) -> Finding:
    """Guide: "Update Statistics" — tables whose planner statistics are missing or stale."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(STALE_STATS_SQL)
        tables = await conn.fetchval("SELECT count(*) FROM pg_stat_user_tables")
        database = await conn.fetchval("SELECT current_database()")
    component = "PostgreSQL statistics"
    if not rows:
        return Finding.ok(component, f"planner statistics are fresh for all {tables} tables", data={"stale": []})
    evidence = [f"{row['schemaname']}.{row['relname']}: {count(row['n_mod_since_analyze'])} rows changed since "
                + (f"the last analyze ({row['analyzed']:%Y-%m-%d %H:%M})" if row["analyzed"] else "ever: never analyzed")
                + f", ≈ {count(row['n_live_tup'])} rows" for row in rows]
    first = rows[0]
    title = (f"{len(rows)} table{'s' if len(rows) != 1 else ''} with stale planner statistics, most changed: "
             f"{first['schemaname']}.{first['relname']} ({count(first['n_mod_since_analyze'])} changes)")
    if len(rows) == 1:
        proposal = analyze_proposal(first["schemaname"], first["relname"],
                                    reason="row estimates are off after many changes; ANALYZE refreshes them")
    else:
        proposal = analyze_proposal(database=database, reason=f"{len(rows)} tables have stale statistics")
    return Finding.warn(component, title, evidence=evidence, proposals=[proposal],
                        details=["stale statistics make the planner misjudge row counts and pick slow plans; "
                                 "autovacuum normally analyzes, so check it is on for these tables"],
                        data={"stale": [f"{r['schemaname']}.{r['relname']}" for r in rows]})


# --- `db indexes` --------------------------------------------------------------------------------

INDEX_USAGE_SQL = f"""
SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read, pg_relation_size(s.indexrelid) AS size
FROM pg_stat_user_indexes s
ORDER BY s.idx_scan DESC NULLS LAST, s.indexrelname
LIMIT {TOP}
"""

UNUSED_INDEXES_SQL = """
SELECT s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid) AS size,
       t.seq_scan + COALESCE(t.idx_scan, 0) AS table_reads
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_stat_user_tables t ON t.relid = s.relid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY size DESC, s.indexrelname
"""

INVALID_INDEXES_SQL = """
SELECT n.nspname AS schemaname, t.relname, c.relname AS indexrelname, pg_relation_size(c.oid) AS size,
       i.indisunique
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 3
"""

SEQ_SCANS_SQL = f"""
SELECT schemaname, relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan, n_live_tup,
       pg_total_relation_size(relid) AS size
FROM pg_stat_user_tables
WHERE n_live_tup >= {SEQ_SCAN_MIN_ROWS} AND seq_scan >= {SEQ_SCAN_MIN_SCANS} AND seq_scan > COALESCE(idx_scan, 0)
ORDER BY seq_tup_read DESC
LIMIT {TOP}
"""

STATS_SINCE_SQL = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"


@db_check("db indexes", component="PostgreSQL index usage", section=SLOW)
async def index_usage(ctx: CheckContext) -> Finding:
    """Guide: "Check index usage" — pg_stat_user_indexes by scans."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(INDEX_USAGE_SQL)
        total = await conn.fetchval("SELECT count(*) FROM pg_stat_user_indexes")
    if not rows:
        return Finding.ok("PostgreSQL index usage", "no user indexes", data={"indexes": 0})
    top = rows[0]
    title = f"{total} indexes; most used: {top['schemaname']}.{top['indexrelname']} ({count(top['idx_scan'])} scans)"
    evidence = [f"{r['schemaname']}.{r['relname']}.{r['indexrelname']}: {count(r['idx_scan'])} scans, "
                f"{count(r['idx_tup_read'])} entries read, {human_bytes(r['size'])}" for r in rows]
    return Finding.ok("PostgreSQL index usage", title, evidence=evidence,
                      data={"indexes": total, "top": [dict(r) for r in rows]})


@db_check("db indexes", component="PostgreSQL unused indexes", section=SLOW)
async def unused_indexes(ctx: CheckContext) -> Finding:
    """Indexes never scanned since statistics began: they cost every write and buy nothing."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(UNUSED_INDEXES_SQL)
        since = await conn.fetchval(STATS_SINCE_SQL)
    component = "PostgreSQL unused indexes"
    since_text = f"since {since:%Y-%m-%d %H:%M}" if since else "since statistics began"
    if not rows:
        return Finding.ok(component, f"every index has been used {since_text}", data={"unused": []})
    size = sum(r["size"] for r in rows)
    names = ", ".join(f"{r['schemaname']}.{r['indexrelname']} ({human_bytes(r['size'])})" for r in rows[:3])
    title = f"{len(rows)} unused index{'es' if len(rows) != 1 else ''} ({human_bytes(size)}): {names}" + (
        ", …" if len(rows) > 3 else "")
    evidence = [f"{r['schemaname']}.{r['relname']}.{r['indexrelname']}: 0 scans, {human_bytes(r['size'])}, "
                f"table read {count(r['table_reads'])} times" for r in rows]
    return Finding.warn(component, title, evidence=evidence,
                        details=[f"0 index scans {since_text} (unique and constraint indexes are not listed: they "
                                 "enforce rules even when unread)",
                                 "every write to the table maintains them; drop one only after checking replicas "
                                 "and rare jobs (month-end reports) do not use it"],
                        data={"unused": [{"index": f"{r['schemaname']}.{r['indexrelname']}", "size": r["size"],
                                          "table": f"{r['schemaname']}.{r['relname']}"} for r in rows]})


@db_check("db indexes", component="PostgreSQL invalid indexes", section=SLOW)
async def invalid_indexes(ctx: CheckContext) -> Finding:
    """Indexes left invalid by a failed CREATE INDEX / REINDEX CONCURRENTLY: unused by the planner, still written."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(INVALID_INDEXES_SQL)
    component = "PostgreSQL invalid indexes"
    if not rows:
        return Finding.ok(component, "no invalid indexes", data={"invalid": []})
    title = f"{len(rows)} invalid index{'es' if len(rows) != 1 else ''}: " + ", ".join(
        f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}" for r in rows[:3])
    evidence = [f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}: {human_bytes(r['size'])}"
                + (", unique (not enforced while invalid)" if r["indisunique"] else "") for r in rows]
    proposals = [reindex_proposal(r["schemaname"], r["indexrelname"], r["relname"],
                                  reason="left invalid by a failed concurrent build; the planner ignores it") for r in rows[:3]]
    return Finding.warn(component, title, evidence=evidence, proposals=proposals,
                        details=["an invalid index is maintained on every write but never used to read; a unique one "
                                 "does not enforce uniqueness. Rebuild it (after fixing what made the build fail, "
                                 "e.g. duplicates) or drop it"],
                        data={"invalid": [f"{r['schemaname']}.{r['indexrelname']}" for r in rows]})


@db_check("db indexes", component="PostgreSQL sequential scans", section=SLOW)
async def sequential_scans(ctx: CheckContext) -> Finding:
    """Big tables read mostly by sequential scans: the usual sign of a missing index."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(SEQ_SCANS_SQL)
    component = "PostgreSQL sequential scans"
    if not rows:
        return Finding.ok(component, f"no table of ≥ {count(SEQ_SCAN_MIN_ROWS)} rows is read mostly by sequential scans",
                          data={"tables": []})
    top = rows[0]
    title = (f"{top['schemaname']}.{top['relname']}: {count(top['seq_scan'])} sequential scans read "
             f"{count(top['seq_tup_read'])} rows (≈ {count(top['n_live_tup'])} rows, {count(top['idx_scan'])} index scans)")
    if len(rows) > 1:
        title += f", and {len(rows) - 1} more table{'s' if len(rows) > 2 else ''}"
    evidence = [f"{r['schemaname']}.{r['relname']}: {count(r['seq_scan'])} seq scans, {count(r['seq_tup_read'])} rows "
                f"read, {count(r['idx_scan'])} index scans, ≈ {count(r['n_live_tup'])} rows, {human_bytes(r['size'])}"
                for r in rows]
    return Finding.warn(component, title, evidence=evidence,
                        details=["find the statements behind them with `db slow`, then `db explain <queryid>`; an "
                                 "index on the columns they filter on usually helps"],
                        data={"tables": [{"table": f"{r['schemaname']}.{r['relname']}", "seq_scan": r["seq_scan"],
                                          "seq_tup_read": r["seq_tup_read"], "idx_scan": r["idx_scan"],
                                          "n_live_tup": r["n_live_tup"]} for r in rows]})


# --- `db sizes` ------------------------------------------------------------------------------------

LARGEST_TABLES_SQL = f"""
SELECT schemaname, relname, heap + indexes + toast AS total, heap, indexes, toast, estimated_rows, n_live_tup
FROM (
  -- each part read once, so the total always equals its parts even while files grow
  SELECT n.nspname AS schemaname, c.relname,
         pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS heap,
         pg_indexes_size(c.oid) AS indexes,
         COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
         GREATEST(c.reltuples, 0)::bigint AS estimated_rows, s.n_live_tup
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%'
) sizes
ORDER BY total DESC, 1, 2
LIMIT {TOP}
"""

LARGEST_INDEXES_SQL = f"""
SELECT n.nspname AS schemaname, t.relname, c.relname AS indexrelname, pg_relation_size(c.oid) AS size
FROM pg_class c
JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY size DESC, 1, 3
LIMIT {TOP}
"""


@db_check("db sizes", component="PostgreSQL tables", section=PERFORMANCE)
async def largest_tables(ctx: CheckContext) -> Finding:
    """Guide: "Check table sizes" — the largest tables with their indexes and TOAST."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(LARGEST_TABLES_SQL)
        database, size = await conn.fetchrow("SELECT current_database(), pg_database_size(current_database())")
    if not rows:
        return Finding.ok("PostgreSQL tables", f"database {database} ({human_bytes(size)}) has no tables",
                          data={"database_size": size, "tables": []})
    top = rows[0]
    title = (f"database {database} {human_bytes(size)}; largest table {top['schemaname']}.{top['relname']} "
             f"{human_bytes(top['total'])} (≈ {count(rows_of(top))} rows)")
    evidence = [f"{r['schemaname']}.{r['relname']}: {human_bytes(r['total'])} total = {human_bytes(r['heap'])} table + "
                f"{human_bytes(r['indexes'])} indexes + {human_bytes(r['toast'])} TOAST, ≈ {count(rows_of(r))} rows"
                for r in rows]
    return Finding.ok("PostgreSQL tables", title, evidence=evidence,
                      data={"database": database, "database_size": size,
                            "tables": [{"table": f"{r['schemaname']}.{r['relname']}", "total": r["total"],
                                        "heap": r["heap"], "indexes": r["indexes"], "toast": r["toast"],
                                        "rows": rows_of(r)} for r in rows]})


def rows_of(row) -> int:
    """reltuples is -1 until the first ANALYZE (PostgreSQL 14+); the statistics counter is better then."""
    return max(row["estimated_rows"] or 0, row["n_live_tup"] or 0)


@db_check("db sizes", component="PostgreSQL indexes", section=PERFORMANCE)
async def largest_indexes(ctx: CheckContext) -> Finding:
    """The largest indexes."""
    async with db_connection(ctx) as conn:
        rows = await conn.fetch(LARGEST_INDEXES_SQL)
    if not rows:
        return Finding.ok("PostgreSQL indexes", "no indexes", data={"indexes": []})
    top = rows[0]
    title = f"largest index {top['schemaname']}.{top['indexrelname']} on {top['relname']}: {human_bytes(top['size'])}"
    evidence = [f"{r['schemaname']}.{r['indexrelname']} on {r['relname']}: {human_bytes(r['size'])}" for r in rows]
    return Finding.ok("PostgreSQL indexes", title, evidence=evidence,
                      data={"indexes": [{"index": f"{r['schemaname']}.{r['indexrelname']}", "size": r["size"]}
                                        for r in rows]})


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
            return None, ("unknown: the bot's database user may not read /proc/meminfo (grant pg_read_server_files) "
                          "and the database is not on this machine")
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
            status, notes = Status.WARN, [f"low for {human_bytes(ram)} of RAM: about 25 % of RAM is the usual start "
                                          "(changing it needs a restart)"]
        elif row["bytes"] > ram / 2:
            status, notes = Status.WARN, ["more than half of RAM: little is left for the OS cache, work_mem and "
                                          "connections"]
    elif name == "effective_cache_size" and ram:
        if row["bytes"] > ram:
            status, notes = Status.WARN, [f"larger than the server's RAM ({human_bytes(ram)}): the planner expects "
                                          "more caching than there can be; 50–75 % of RAM is usual"]
        elif row["bytes"] < values.get("shared_buffers", 0):
            status, notes = Status.WARN, ["smaller than shared_buffers: the planner undervalues index scans"]
    elif name == "work_mem" and ram:
        worst_case = row["bytes"] * values.get("max_connections", 0)
        if worst_case > 2 * ram:
            status, notes = Status.WARN, [f"× max_connections far above RAM: {human_bytes(worst_case)} against "
                                          f"{human_bytes(ram)}; a burst of sorts and hashes can exhaust memory"]
        else:
            notes = [f"work_mem × max_connections = {human_bytes(worst_case)}"]
    elif name == "max_connections" and int(row["setting"]) > 500:
        status, notes = Status.WARN, ["hundreds of backends cost memory and CPU: a pooler such as PgBouncer serves "
                                      "many clients with fewer connections"]
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
        return "off (-1)" if value < 0 else "every statement (0)" if value == 0 else f"statements slower than {value} ms"
    if name == "max_connections":
        return f"{row['shown']} connections"
    if row["bytes"] is not None:
        share = f" ({row['bytes'] * 100 / ram:.1f} % of RAM)" if ram and name != "work_mem" else ""
        return f"{row['shown']}{share}"
    return row["shown"]


@db_check("db settings", component="PostgreSQL settings", section=SLOW)
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
        slowlog_row = rows.get("log_min_duration_statement")
        configured = await configured_slowlog(conn, slowlog_row["boot_val"]) if slowlog_row else None
    values = {name: (row["bytes"] if row["bytes"] is not None else int(row["setting"])) for name, row in rows.items()}
    findings = []
    for name in SETTINGS:
        row = rows.get(name)
        if row is None:
            continue
        status, notes = setting_note(name, row, values, ram)
        details = list(notes)
        if name in MEMORY_SETTINGS:
            details.append(f"server RAM: {ram_text}")
        if name == "max_connections":
            details.append(f"{connections} connected now")
        source = row["sourcefile"] or row["source"]
        by_alter_system = (row["sourcefile"] or "").endswith("postgresql.auto.conf")
        details.append(f"set by: {source}" + (" (ALTER SYSTEM)" if by_alter_system else ""))
        if row["pending_restart"]:
            details.append("changed in the configuration but waiting for a restart")
        elif row["context"] == "postmaster":
            details.append("changing it needs a restart")
        proposals = []
        if name == "log_min_duration_statement":
            value = int(row["setting"])
            if by_alter_system and configured is not None and configured != value:
                details.append(f"without ALTER SYSTEM it would be {describe_slowlog(configured)}")
                proposals.append(slowlog_proposal(configured, value, revert=True,
                                                  reason="go back to the value of the configuration files"))
            elif value < 0:
                proposals.append(slowlog_proposal(SLOWLOG_DEFAULT_MS, value,
                                                  reason="the guide's Slow Query Resolution starts by logging slow "
                                                         "statements"))
        title = setting_title(name, row, ram)
        if notes and status is not Status.OK:
            title += " — " + notes[0].split(":")[0]  # the note's lead, before its explanation
        findings.append(Finding(status, name, title, details=details, proposals=proposals,
                                data={"setting": row["setting"], "unit": row["unit"], "bytes": row["bytes"],
                                      "ram": ram, "source": source}))
    return findings


# --- `db explain <queryid>` ------------------------------------------------------------------------

EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
APPLICATION_KEYWORDS = EXPLAINABLE + ("MERGE", "VALUES", "TABLE", "CALL", "COPY")
LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
PARAMETER = re.compile(r"\$\d+")
MONITORING = re.compile(r"\b(?:pg_catalog\.|information_schema\.|pg_stat_\w+|pg_(?:settings|file_settings|class|namespace|"
                        r"index|database|roles|extension|available_extensions|type|attribute|constraint)\b)", re.I)
PLAN_SEQ_SCAN = re.compile(r"Seq Scan on (\S+).*?rows=(\d+)")


def first_keyword(query: str) -> str:
    rest = LEADING_NOISE.sub("", query, count=1)
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).upper() if match else ""


@db_check("db explain", component="PostgreSQL plan", section=SLOW)
async def explain_statement(ctx: CheckContext) -> Finding:
    """Guide: "Analyze Query Plans" — plain EXPLAIN of a pg_stat_statements statement, never ANALYZE."""
    queryid = ctx.params["queryid"]
    component = "PostgreSQL plan"
    async with db_connection(ctx) as conn:
        source = await statements_source(conn)
        if not source.available:
            return Finding.warn(component, "pg_stat_statements unavailable — " + source.problem)
        row = await conn.fetchrow(
            f"SELECT query, calls, {source.mean_col}::float8 AS mean_ms FROM pg_stat_statements "
            "WHERE queryid = $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY calls DESC LIMIT 1", queryid)
        if row is None:
            return Finding.warn(component, f"queryid {queryid} is not in pg_stat_statements for this database",
                                details=["`db slow` lists the current queryids (they change when statistics are "
                                         "reset or the server is upgraded)"], data={"queryid": queryid})
        query = (row["query"] or "").strip().rstrip(";").rstrip()
        shown = statement_text(query, 300)
        data = {"queryid": queryid, "query": shown, "calls": row["calls"], "mean_ms": row["mean_ms"]}
        if query.startswith("<insufficient privilege>"):
            return Finding.warn(component, f"queryid {queryid}: the statement text is hidden from the bot's user",
                                details=["grant it pg_read_all_stats to see other users' statements"], data=data)
        keyword = first_keyword(query)
        if keyword not in EXPLAINABLE:
            return Finding.warn(component, f"queryid {queryid} is {keyword or 'not a statement'}, not one of "
                                           f"{'/'.join(EXPLAINABLE)}: nothing to plan", details=[shown], data=data)
        if PARAMETER.search(query):
            return Finding.warn(
                component, f"queryid {queryid} has parameters ($1…): refusing to EXPLAIN it without their values",
                details=[shown, "pg_stat_statements keeps statements with their constants replaced by $n; run EXPLAIN "
                         "yourself with real values (or EXPLAIN (GENERIC_PLAN) on PostgreSQL 16+)"], data=data)
        timeout_ms = int(max(ctx.settings.erpgo_check_timeout - 0.5, 0.5) * 1000)
        transaction = conn.transaction(readonly=True)
        await transaction.start()
        try:
            await conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            plan = [record[0] for record in await conn.fetch("EXPLAIN " + query)]
        except asyncpg.PostgresError as exc:
            return Finding.error(component, f"EXPLAIN of queryid {queryid} failed: {first_line(exc)}",
                                 details=[shown, "the statement may rely on a search_path, temporary table or role "
                                          "the bot does not have"], data=data)
        finally:
            await transaction.rollback()
    notes = [f"sequential scan on {name} (≈ {count(int(rows))} rows): an index on its filter columns may help"
             for name, rows in PLAN_SEQ_SCAN.findall("\n".join(plan)) if int(rows) >= SEQ_SCAN_MIN_ROWS]
    details = [shown, f"{count(row['calls'])} calls, mean {fmt_ms(row['mean_ms'])}",
               "EXPLAIN only: the statement was planned, not run (read-only transaction, rolled back)"] + notes
    return Finding.ok(component, f"plan for queryid {queryid}: {one_line(plan[0] if plan else '', 140)}",
                      details=details, evidence=plan, data=data | {"plan": plan})


# --- remediations --------------------------------------------------------------------------------

def analyze_sql(schema: str | None = None, table: str | None = None) -> str:
    return f"ANALYZE {qualified(schema, table)};" if table else "ANALYZE;"


def analyze_proposal(schema: str | None = None, table: str | None = None, *, database: str = "",
                     reason: str = "") -> Proposal:
    if table:
        return Proposal("db.analyze", {"schema": schema, "table": table},
                        f"ANALYZE table {schema}.{table} (refresh its planner statistics)", reason,
                        analyze_sql(schema, table))
    return Proposal("db.analyze", {}, f"ANALYZE every table of database {database or 'ERPGo'} (refresh planner "
                                      "statistics)", reason, analyze_sql())


def slowlog_statements(ms_value: int) -> list[str]:
    return [f"ALTER SYSTEM SET log_min_duration_statement = {int(ms_value)};", "SELECT pg_reload_conf();"]


def describe_slowlog(value: int) -> str:
    return "off (-1)" if value < 0 else "every statement (0)" if value == 0 else f"{value} ms"


def slowlog_proposal(ms_value: int, previous: int, *, reason: str = "", revert: bool = False) -> Proposal:
    verb = "Revert" if revert else "Set"
    return Proposal("db.slowlog", {"ms": int(ms_value), "previous": int(previous)},
                    f"{verb} log_min_duration_statement to {describe_slowlog(ms_value)} "
                    f"(now {describe_slowlog(previous)}) and reload the configuration",
                    reason, "\n".join(slowlog_statements(ms_value)))


def reindex_sql(schema: str, index: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {qualified(schema, index)};"


def reindex_proposal(schema: str, index: str, table: str = "", *, reason: str = "") -> Proposal:
    return Proposal("db.reindex", {"schema": schema, "index": index},
                    f"Rebuild index {schema}.{index}" + (f" on {table}" if table else "") + " without blocking writes",
                    reason, reindex_sql(schema, index))


def pgss_reset_sql(version_num: int) -> str:
    if version_num >= 120000:  # reset only this database's statements
        return "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database();"
    return "SELECT pg_stat_statements_reset();"


def pgss_reset_proposal(version_num: int, database: str, tracked: int, *, reason: str = "") -> Proposal:
    scope = f"database {database}" if version_num >= 120000 else "the whole server"
    return Proposal("db.pgss_reset", {}, f"Reset pg_stat_statements for {scope} ({count(tracked)} statements)",
                    reason or "start measuring afresh, e.g. after adding an index", pgss_reset_sql(version_num))


async def find_relation(conn, schema: str, name: str, kinds: str):
    return await conn.fetchrow(
        "SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind::text = ANY($3::text[])", schema, name, list(kinds))


def text_arg(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 63 or "\x00" in value:
        raise Refused(f"`{name}` must be a PostgreSQL identifier (1–63 characters)")
    return value


@registry.remediation("db.analyze", "ANALYZE one table, or the whole database", timeout=LONG_STATEMENT_S)
async def analyze(ctx: CheckContext, schema: str | None = None, table: str | None = None) -> str:
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        if table is not None or schema is not None:
            schema, table = text_arg(schema, "schema"), text_arg(table, "table")
            found = await find_relation(conn, schema, table, "rpm")
            if found is None:
                raise Refused(f"table {schema}.{table} no longer exists")
            sql = analyze_sql(found["nspname"], found["relname"])
        else:
            sql = analyze_sql()
        started = time.perf_counter()
        await conn.execute(sql, timeout=LONG_STATEMENT_S - 5)
        elapsed = time.perf_counter() - started
        if table is not None:
            rows = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = $1", found["oid"])
            return f"ran `{sql}` in {elapsed:.2f} s: {schema}.{table} now estimated at ≈ {count(max(rows, 0))} rows"
        tables = await conn.fetchval("SELECT count(*) FROM pg_stat_user_tables")
        database = await conn.fetchval("SELECT current_database()")
    return f"ran `{sql}` in {elapsed:.2f} s: statistics refreshed for the {tables} tables of {database}"


@registry.remediation("db.slowlog", "Set log_min_duration_statement (ALTER SYSTEM) and reload", timeout=30)
async def slowlog(ctx: CheckContext, ms: int, previous: int) -> str:
    try:
        ms_value, previous = int(ms), int(previous)
    except (TypeError, ValueError):
        raise Refused("`ms` and `previous` must be integers (milliseconds, -1 = off)") from None
    if not -1 <= ms_value <= 2_147_483_647:
        raise Refused("log_min_duration_statement must be -1 (off) or 0…2147483647 ms")
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        current = await slowlog_value(conn)
        if current != previous:
            raise Refused(f"log_min_duration_statement is now {describe_slowlog(current)}, not "
                          f"{describe_slowlog(previous)} as when this was proposed")
        if current == ms_value:
            raise Refused(f"log_min_duration_statement is already {describe_slowlog(ms_value)}")
        try:
            for statement in slowlog_statements(ms_value):
                await conn.execute(statement)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise Refused(f"the bot's database user may not ALTER SYSTEM: {first_line(exc)}") from None
        now = await wait_for_setting(conn, ms_value)
    if now != ms_value:
        raise RuntimeError(f"ALTER SYSTEM succeeded but the server still reports {describe_slowlog(now)} after the "
                           "reload: check the server log for configuration errors")
    revert = slowlog_proposal(previous, ms_value, revert=True, reason="undo this change")
    return Outcome(f"log_min_duration_statement is now {describe_slowlog(ms_value)} (was "
                   f"{describe_slowlog(previous)}); to revert, approve db.slowlog ms={previous}", [revert])


async def wait_for_setting(conn, expected: int, within: float = 3.0) -> int:
    """pg_reload_conf() only signals the server; the session applies the file at its next statement."""
    deadline = time.monotonic() + within
    while True:
        value = await slowlog_value(conn)
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@registry.remediation("db.reindex", "REINDEX INDEX CONCURRENTLY of one index", timeout=LONG_STATEMENT_S)
async def reindex(ctx: CheckContext, schema: str, index: str) -> str:
    schema, index = text_arg(schema, "schema"), text_arg(index, "index")
    if schema in ("pg_catalog", "information_schema") or schema.startswith("pg_toast"):
        raise Refused(f"{schema}.{index} is a system index: REINDEX CONCURRENTLY cannot rebuild those")
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        found = await find_relation(conn, schema, index, "iI")
        if found is None:
            raise Refused(f"index {schema}.{index} no longer exists")
        info = await conn.fetchrow(
            "SELECT t.relname AS table_name, i.indrelid, pg_relation_size(i.indexrelid) AS size, i.indisvalid, "
            "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x') AS exclusion, "
            "EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid) AS building "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE i.indexrelid = $1", found["oid"])
        if info["exclusion"]:
            raise Refused(f"{schema}.{index} backs an exclusion constraint: it cannot be rebuilt concurrently")
        if info["building"]:
            raise Refused(f"an index build is already running on {info['table_name']}: wait for it to finish")
        sql = reindex_sql(found["nspname"], found["relname"])
        started = time.perf_counter()
        try:
            await conn.execute(f"SET statement_timeout = {int((LONG_STATEMENT_S - 10) * 1000)}")
            await conn.execute(sql, timeout=LONG_STATEMENT_S - 5)
        except asyncpg.PostgresError as exc:
            raise RuntimeError(f"{sql} failed: {first_line(exc)}; it may leave an invalid index named {index}_ccnew "
                               "behind (`db indexes` lists invalid indexes)") from exc
        elapsed = time.perf_counter() - started
        after = await conn.fetchrow(
            "SELECT pg_relation_size(c.oid) AS size, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2", schema, index)
    validity = "valid" if after and after["indisvalid"] else "still INVALID"
    return (f"ran `{sql}` in {elapsed:.2f} s: {human_bytes(info['size'])} → "
            f"{human_bytes(after['size']) if after else '?'}, {validity}")


@registry.remediation("db.pgss_reset", "Reset pg_stat_statements for the ERPGo database", timeout=30)
async def pgss_reset(ctx: CheckContext) -> str:
    async with ctx.targets.pg.connect(APP_NAME) as conn:
        source = await statements_source(conn)
        if not source.available:
            raise Refused("pg_stat_statements is not available: " + source.problem)
        before = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())")
        sql = pgss_reset_sql(source.version_num)
        try:
            await conn.execute(sql)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise Refused(f"the bot's database user may not reset pg_stat_statements: {first_line(exc)}") from None
        database = await conn.fetchval("SELECT current_database()")
    return f"ran `{sql}`: {count(before)} statements of {database} cleared; measuring afresh from now"
