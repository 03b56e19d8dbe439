"""`/erpgo db connect` — the guide's "Database Connection Resolution", step by step — and how the
other database verbs report a database they cannot reach, each cause made for real: a wrong
password, an unknown database, a closed port, a host that does not resolve, every connection slot
taken, a server that does not accept connections yet, a server that never answers the login.
A server without pg_stat_statements is here too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import asyncpg
import pytest

from bot.core.findings import Status
from demo.services import PostgresServer, free_port
from runbooks.database.common import parse_dsn
from runbooks.database.connect import CONNECT_STEPS
from tests.db_support import one, run_verb, text_of

PASSWORD = "s3cret-Horse-battery"
SLOTS = 6  # max_connections of the strict cluster; 3 of them are reserved for superusers


@pytest.fixture(scope="module")
def strict_cluster(tmp_path_factory):
    """A second cluster: logins need a password, only 6 connections, no pg_stat_statements."""
    server = PostgresServer(
        tmp_path_factory.mktemp("strict-pg"), password=PASSWORD, max_connections=SLOTS, pg_stat_statements=False
    )
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def standby_cluster(tmp_path_factory):
    """A standby without hot standby: it runs, listens, and answers every login with 57P03."""
    server = PostgresServer(tmp_path_factory.mktemp("standby-pg"), settings={"hot_standby": "off"})
    try:
        server.start()
        server.stop()
        signal_file = server.data_dir / "standby.signal"
        signal_file.write_text("")
        if shutil.which("runuser"):
            shutil.chown(signal_file, "postgres", "postgres")
        server.start()
        yield server
    finally:
        server.cleanup()


def steps(findings) -> dict[str, tuple[Status, str]]:
    assert [f.component for f in findings] == list(CONNECT_STEPS)
    return {f.component.removeprefix("PostgreSQL "): (f.status, f.title) for f in findings}


def everything(findings) -> str:
    return json.dumps([f.to_dict() for f in findings], default=str)


async def test_a_healthy_connection_passes_every_step(postgres_server):
    findings = await run_verb("db connect", postgres_server.dsn("postgres").replace("127.0.0.1", "localhost"))
    result = steps(findings)
    assert all(status is Status.OK for status, _ in result.values()), result
    assert result["URL"][1] == (
        f"postgresql URL parsed: user postgres, host localhost, port {postgres_server.port}, database postgres"
    )
    assert result["DNS"][1].startswith("localhost resolves to ") and "127.0.0.1" in result["DNS"][1]
    assert result["TCP"][1].startswith(f"127.0.0.1:{postgres_server.port} accepts connections")
    assert result["login"][1].startswith("logged in as postgres to postgres in ")
    assert "PostgreSQL 15" in result["login"][1] and "/97 usable connections" in result["login"][1]


async def test_the_url_is_shown_redacted(strict_cluster):
    findings = await run_verb("db connect", strict_cluster.dsn("postgres"))
    url = one(findings, "PostgreSQL URL")
    assert f"as configured, redacted: postgresql://postgres:***@127.0.0.1:{strict_cluster.port}/postgres" in url.details
    assert one(findings, "PostgreSQL login").status is Status.OK
    assert PASSWORD not in everything(findings)


async def test_wrong_password(strict_cluster):
    findings = await run_verb("db connect", strict_cluster.dsn("postgres", password="not-the-Password-9"))
    result = steps(findings)
    assert result["TCP"][0] is Status.OK
    assert result["login"] == (Status.CRIT, "authentication failed for user postgres (28P01): wrong password")
    login = one(findings, "PostgreSQL login")
    assert "grep DATABASE_URL" in login.details[0] and login.data["sqlstate"] == "28P01"
    assert "not-the-Password-9" not in everything(findings)


async def test_unknown_database(postgres_server):
    findings = await run_verb("db connect", postgres_server.dsn("no_such_db"))
    assert steps(findings)["login"] == (Status.CRIT, "database no_such_db does not exist (3D000)")
    assert "CREATE DATABASE" in one(findings, "PostgreSQL login").details[0]


async def test_closed_port():
    port = free_port()
    findings = await run_verb("db connect", f"postgresql://erpgo:pw-for-test@127.0.0.1:{port}/erp")
    result = steps(findings)
    assert result["URL"][0] is Status.OK and result["DNS"][0] is Status.OK
    assert result["TCP"] == (Status.CRIT, f"connection refused at 127.0.0.1:{port}: nothing listens there")
    assert "docker-compose ps postgres" in one(findings, "PostgreSQL TCP").details[0]
    assert result["login"] == (Status.SKIPPED, "not tried: no TCP connection")


async def test_host_that_does_not_resolve():
    findings = await run_verb("db connect", "postgresql://erpgo@db.erpgo.invalid:5432/erp")
    result = steps(findings)
    assert result["DNS"][0] is Status.CRIT and result["DNS"][1].startswith("cannot resolve host db.erpgo.invalid")
    assert "same network" in one(findings, "PostgreSQL DNS").details[0]
    assert result["TCP"] == result["login"] == (Status.SKIPPED, "not tried: the host does not resolve")


async def test_url_that_cannot_be_parsed():
    findings = await run_verb("db connect", "postgresql://erpgo@db:fivefourthreetwo/erp")
    result = steps(findings)
    assert result["URL"] == (
        Status.CRIT,
        "ERPGO_DATABASE_URL cannot be parsed: port 'fivefourthreetwo' is not a number",
    )
    assert all(result[step][0] is Status.SKIPPED for step in ("DNS", "TCP", "login"))


async def test_every_connection_slot_taken(strict_cluster):
    dsn = strict_cluster.dsn("postgres")
    held = [await asyncpg.connect(dsn) for _ in range(SLOTS)]
    try:
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await asyncpg.connect(dsn)
        connect = await run_verb("db connect", dsn)
        overview = await run_verb("db", dsn)
        connections = await run_verb("db connections", dsn)
    finally:
        for conn in held:
            await conn.close()
    result = steps(connect)
    assert result["TCP"][0] is Status.OK
    assert result["login"][0] is Status.CRIT and result["login"][1].startswith("too many connections (53300): ")
    assert "max_connections" in one(connect, "PostgreSQL login").details[0]
    # the other verbs say it once, with the same diagnosis, not once per check
    [down] = overview
    assert down.status is Status.CRIT and down.title.startswith("unreachable — too many connections (53300)")
    assert any("`db connect`" in line for line in down.details)
    [down] = connections
    assert down.status is Status.CRIT and "53300" in down.title


async def test_server_not_accepting_connections_yet(standby_cluster):
    findings = await run_verb("db connect", standby_cluster.dsn("postgres"))
    result = steps(findings)
    assert result["TCP"][0] is Status.OK
    assert result["login"][0] is Status.CRIT
    assert result["login"][1].startswith(
        "server not accepting connections yet (57P03): the database system is not accepting connections"
    )
    assert "starting up, shutting down or in recovery" in one(findings, "PostgreSQL login").details[0]


async def test_a_server_that_never_answers_the_login_times_out_in_time():
    async def silent(reader, writer):
        await reader.read()  # accept the connection, say nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.perf_counter()
        findings = await run_verb("db connect", f"postgresql://erpgo@127.0.0.1:{port}/erp", erpgo_check_timeout=1)
        elapsed = time.perf_counter() - started
    finally:
        server.close()
    result = steps(findings)
    assert result["TCP"][0] is Status.OK
    assert result["login"][0] is Status.CRIT
    assert result["login"][1].startswith(f"127.0.0.1:{port} accepts TCP but the login did not finish within ")
    assert elapsed < 1.5, "the steps share the check's time budget"


async def test_a_dead_server_is_one_line_in_every_database_verb():
    port = free_port()
    dsn = f"postgresql://erpgo@127.0.0.1:{port}/erp"
    for verb in ("db", "db connections", "db slow", "db indexes", "db sizes", "db settings"):
        [finding] = await run_verb(verb, dsn)
        assert finding.status is Status.CRIT, verb
        assert finding.title == f"unreachable — connection refused at 127.0.0.1:{port}: nothing listens there"


async def test_not_configured():
    [finding] = await run_verb("db connect", None)
    assert finding.status is Status.SKIPPED and finding.title == "not configured (set ERPGO_DATABASE_URL)"
    [finding] = await run_verb("db connections", None)
    assert finding.status is Status.SKIPPED and "ERPGO_DATABASE_URL" in finding.title


async def test_slow_on_a_server_without_pg_stat_statements(strict_cluster):
    dsn = strict_cluster.dsn("postgres")
    findings = await run_verb("db slow", dsn)
    statements = one(findings, "PostgreSQL statements")
    assert statements.status is Status.WARN  # a finding, not an error
    assert statements.title.startswith(
        "pg_stat_statements unavailable — pg_stat_statements is not enabled: add "
        "pg_stat_statements to shared_preload_libraries"
    )
    assert "CREATE EXTENSION pg_stat_statements" in text_of(statements)
    assert one(findings, "PostgreSQL statistics").status is Status.OK
    [plan] = await run_verb(f"db explain {42}", dsn)
    assert plan.status is Status.WARN and "shared_preload_libraries" in plan.title


async def test_slow_with_the_extension_created_but_not_loaded(strict_cluster):
    strict_cluster.create_database("created_only")
    dsn = strict_cluster.dsn("created_only")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()
    statements = one(await run_verb("db slow", dsn), "PostgreSQL statements")
    assert statements.status is Status.WARN
    assert "created in created_only but not loaded: add it to shared_preload_libraries" in statements.title


@pytest.mark.parametrize(
    ("dsn", "hosts", "database", "user", "password"),
    [
        ("postgresql://erpgo:pw@db/erp", [("db", 5432)], "erp", "erpgo", True),
        ("postgres://erpgo@db1:5433,db2/erp?sslmode=require", [("db1", 5433), ("db2", 5432)], "erp", "erpgo", False),
        ("postgresql://erpgo@[::1]:6432/erp", [("::1", 6432)], "erp", "erpgo", False),
        (
            "postgresql:///erp?host=/var/run/postgresql&user=erpgo",
            [("/var/run/postgresql", 5432)],
            "erp",
            "erpgo",
            False,
        ),
        ("postgresql://erpgo@db?dbname=erp&password=x", [("db", 5432)], "erp", "erpgo", True),
        ("postgresql://us%40er:p%2Fw@db:5432/my%20db", [("db", 5432)], "my db", "us@er", True),
    ],
)
def test_parse_dsn(dsn, hosts, database, user, password):
    parts = parse_dsn(dsn)
    assert (parts.hosts, parts.database, parts.user, parts.has_password) == (hosts, database, user, password)
    assert "pw" not in parts.shown().replace("postgres", "") and "p%2Fw" not in parts.shown()


async def test_the_apis_own_database_url_is_diagnosed_and_never_shown(
    postgres_server, strict_cluster, docker_engine, names
):
    """DB Connection 2 for the API: the bot's own URL works, the API's DATABASE_URL has a wrong password."""
    api = names("api")
    wrong = strict_cluster.dsn("postgres", password="api-Wrong-Password-7")
    docker_engine.run(api, "exec sleep 100000", run_args=["-e", f"DATABASE_URL={wrong}"])
    findings = await run_verb(
        "db connect", postgres_server.dsn("postgres"), docker_host=docker_engine.host, erpgo_containers=api
    )
    assert one(findings, "PostgreSQL login").status is Status.OK, "the bot's own connection is fine"
    url = one(findings, "API PostgreSQL URL")
    assert url.title == (
        f"{api}'s DATABASE_URL: postgresql URL parsed: user postgres, host 127.0.0.1, port {strict_cluster.port}, "
        "database postgres"
    )
    login = one(findings, "API PostgreSQL login")
    assert login.status is Status.CRIT
    assert login.title == "authentication failed for user postgres (28P01): wrong password"
    assert "api-Wrong-Password-7" not in everything(findings)


async def test_an_api_without_database_url_is_said(postgres_server, docker_engine, names):
    api = names("api")
    docker_engine.run(api, "exec sleep 100000")
    findings = await run_verb(
        "db connect", postgres_server.dsn("postgres"), docker_host=docker_engine.host, erpgo_containers=api
    )
    missing = one(findings, "API PostgreSQL URL")
    assert missing.status is Status.CRIT and "has no DATABASE_URL" in missing.title
