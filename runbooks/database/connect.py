"""Guide: "Database Connection Issues" — `db connect`, the "Database Connection Resolution" runbook
step by step: URL, DNS, TCP, login."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any

import asyncpg

from bot.context import CheckContext
from bot.core.errors import describe_error
from bot.core.findings import Finding, Status
from bot.core.redact import register_secret
from bot.core.registry import Runbook
from bot.targets import NotConfigured
from bot.targets.docker import ContainerNotFound
from runbooks.database.common import (
    APP_NAME,
    CONNECTION,
    CONNECTIONS_CRIT_PCT,
    CONNECTIONS_WARN_PCT,
    DsnParts,
    connect_failure,
    parse_dsn,
)
from runbooks.database.overview import usable_connections
from runbooks.quick import percent_status

runbook = Runbook("database.connect")


runbook.verb(
    "db connect", "why the database cannot be reached: URL, DNS, TCP, login", ack="Tracing the database connection…"
)


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


@runbook.check("db connect", component="PostgreSQL URL", section=CONNECTION)
async def connection_diagnosis(ctx: CheckContext) -> list[Finding]:
    """Parse ERPGO_DATABASE_URL, resolve the host, open TCP, log in — and name the first step that fails."""
    budget = Budget(max(ctx.settings.erpgo_check_timeout - 0.3, 0.5))
    return await diagnose(ctx.targets.pg.dsn, budget)


# the bot resolves and connects from where it runs; the API from its compose network
VANTAGE = (
    "tried from the bot, not from inside the API: a compose service name (e.g. `postgres`) resolves only on the "
    "deployment's network — `/erpgo net` resolves it from inside the API"
)


async def api_database_url(ctx: CheckContext) -> tuple[str, str | None]:
    """(the API container, its DATABASE_URL); NotConfigured without an engine or an API container."""
    name = await ctx.targets.container_of("api")
    return name, await ctx.targets.docker.read_env_value(name, "DATABASE_URL")


@runbook.check("db connect", component="API PostgreSQL URL", section=CONNECTION)
async def api_connection_diagnosis(ctx: CheckContext) -> list[Finding]:
    """Guide step 2 for the API itself: its own DATABASE_URL (read from its container, never shown), diagnosed
    the way the bot's is — user, database, options, DNS, TCP, login. Without a Docker engine, nothing to say."""
    try:
        name, dsn = await api_database_url(ctx)
    except NotConfigured:
        return []
    except (ConnectionError, TimeoutError, ContainerNotFound) as exc:
        return [Finding.skipped("API PostgreSQL URL", f"the API's DATABASE_URL not read: {describe_error(exc)}")]
    if not dsn:
        return [Finding.crit("API PostgreSQL URL", f"{name} has no DATABASE_URL: the API cannot start without one")]
    register_secret(dsn)
    budget = Budget(max(ctx.settings.erpgo_check_timeout - 0.3, 0.5))
    findings = await diagnose(dsn, budget, source=f"{name}'s DATABASE_URL")
    for finding in findings:
        finding.component = "API " + finding.component
        if finding.component in ("API PostgreSQL DNS", "API PostgreSQL TCP") and finding.status is Status.CRIT:
            finding.details.append(VANTAGE)
    findings[0].title = f"{name}'s DATABASE_URL: " + findings[0].title
    return findings


async def diagnose(dsn: str, budget: Budget, source: str = "ERPGO_DATABASE_URL") -> list[Finding]:
    """The steps of a connection to `dsn` (read from `source`), each a finding, up to the first that fails."""
    try:
        parts = parse_dsn(dsn)
    except ValueError as exc:
        return [unparsable(exc, source), *not_tried(CONNECT_STEPS[1:], "the URL cannot be parsed")]
    findings = [url_finding(parts)]
    dns, addresses = await dns_step(parts, budget)
    findings.append(dns)
    if addresses is None:
        return findings + not_tried(CONNECT_STEPS[2:], "the host does not resolve")
    tcp = await tcp_step(parts, addresses, budget)
    findings.append(tcp)
    if tcp.status is not Status.OK:
        return findings + not_tried(CONNECT_STEPS[3:], "no TCP connection")
    findings.append(await login_step(dsn, parts, budget))
    return findings


def unparsable(exc: ValueError, source: str) -> Finding:
    return Finding.crit(
        "PostgreSQL URL",
        f"{source} cannot be parsed: {exc}",
        section=CONNECTION,
        details=["expected postgres://USER:PASSWORD@HOST:5432/erp (guide step 2, Verify Connection Parameters)"],
    )


def url_finding(parts: DsnParts) -> Finding:
    """What the URL says: user, host, port, database, options — never the password."""
    details = [
        "a password is in the URL"
        if parts.has_password
        else "no password in the URL (trust or peer authentication, or a .pgpass file)"
    ]
    if parts.has_password:
        details.append(f"as configured, redacted: {parts.shown()}")
    if len(parts.hosts) > 1:
        details.append(f"{len(parts.hosts)} hosts listed; this diagnosis follows the first")
    if parts.params:
        details.append(
            "options: "
            + ", ".join(f"{key}={'***' if 'pass' in key.lower() else value}" for key, value in parts.params.items())
        )
    title = (
        f"{parts.scheme} URL parsed: user {parts.user or '(default)'}, host {parts.host}, port {parts.port}, "
        f"database {parts.database}"
    )
    data = {"user": parts.user, "host": parts.host, "port": parts.port, "database": parts.database}
    return Finding.ok("PostgreSQL URL", title, details=details, section=CONNECTION, data=data)


async def dns_step(parts: DsnParts, budget: Budget) -> tuple[Finding, list[tuple[Any, ...]] | None]:
    """(the DNS finding, the addresses to try — None when the host does not resolve)."""
    if parts.is_socket:
        return Finding.ok(
            "PostgreSQL DNS", f"Unix socket directory {parts.host}: nothing to resolve", section=CONNECTION
        ), []
    if is_ip_address(parts.host):
        title = f"{parts.host} is an IP address: nothing to resolve"
        return Finding.ok("PostgreSQL DNS", title, section=CONNECTION, data={"addresses": [parts.host]}), [
            (parts.host, parts.port)
        ]
    started = time.perf_counter()
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(parts.host, parts.port, type=socket.SOCK_STREAM), budget.left()
        )
    except (socket.gaierror, TimeoutError, OSError) as exc:
        title, hint = connect_failure(exc, parts, time.perf_counter() - started)
        if isinstance(exc, TimeoutError):
            title = f"the DNS lookup of {parts.host} did not answer within {time.perf_counter() - started:.1f} s"
            hint = "The resolver is slow or unreachable: check /etc/resolv.conf and the Docker network's DNS."
        data = {"error": type(exc).__name__}
        return Finding.crit("PostgreSQL DNS", title, details=[hint], section=CONNECTION, data=data), None
    dns_ms = (time.perf_counter() - started) * 1000
    addresses: list[tuple[Any, ...]] = list(dict.fromkeys(info[4][:2] for info in infos))
    shown = ", ".join(str(address[0]) for address in addresses[:4])
    return (
        Finding.ok(
            "PostgreSQL DNS",
            f"{parts.host} resolves to {shown} ({dns_ms:.0f} ms)",
            section=CONNECTION,
            data={"addresses": [a[0] for a in addresses], "dns_ms": dns_ms},
        ),
        addresses,
    )


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
        return Finding.ok(
            "PostgreSQL TCP",
            f"{where} accepts connections ({tcp_ms:.1f} ms)",
            section=CONNECTION,
            data={"tcp_ms": round(tcp_ms, 2), "address": host},
        )
    assert last_error is not None
    title, hint = connect_failure(last_error, parts, time.perf_counter() - started)
    return Finding.crit(
        "PostgreSQL TCP", title, details=[hint], section=CONNECTION, data={"error": type(last_error).__name__}
    )


async def login_step(dsn: str, parts: DsnParts, budget: Budget) -> Finding:
    started = time.perf_counter()
    timeout = budget.left()
    try:
        conn = await asyncpg.connect(
            dsn, timeout=timeout, command_timeout=timeout, server_settings={"application_name": APP_NAME}
        )
    except Exception as exc:  # every way a login fails is a finding
        elapsed = time.perf_counter() - started
        title, hint = connect_failure(exc, parts, elapsed)
        if isinstance(exc, TimeoutError):
            title = f"{parts.host}:{parts.port} accepts TCP but the login did not finish within {elapsed:.1f} s"
            hint = (
                "The server is overloaded, stuck, or what listens there is not PostgreSQL: "
                "`docker-compose logs postgres | tail -20`, and the host's load."
            )
        return Finding.crit(
            "PostgreSQL login",
            title,
            details=[hint],
            section=CONNECTION,
            data={"error": type(exc).__name__, "sqlstate": getattr(exc, "sqlstate", None)},
        )
    try:
        login_ms = (time.perf_counter() - started) * 1000
        row = await conn.fetchrow(LOGIN_SQL, timeout=budget.left())
    finally:
        await conn.close(timeout=budget.left())
    used, usable = row["connections"], usable_connections(row)
    status = percent_status(used, usable, CONNECTIONS_WARN_PCT, CONNECTIONS_CRIT_PCT)
    title = (
        f"logged in as {row['user']} to {row['database']} in {login_ms:.0f} ms — PostgreSQL {row['version']}, "
        f"{used}/{usable} usable connections"
    )
    details = [
        f"max_connections {row['max_connections']} ({row['superuser_reserved']} reserved for superusers), "
        f"{used} connected, {row['active']} active",
        "server is a replica in recovery (read-only)" if row["in_recovery"] else "server is a primary (read-write)",
    ]
    return Finding(
        status,
        "PostgreSQL login",
        title,
        details=details,
        section=CONNECTION,
        data={
            "login_ms": round(login_ms, 2),
            "version": row["version"],
            "connections": used,
            "usable": usable,
            "in_recovery": row["in_recovery"],
        },
    )
