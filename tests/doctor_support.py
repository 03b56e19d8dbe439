"""What the doctor tests plant: a login role of the ERPGo database without any extra right, and a
real Prometheus process with a rule file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demo.prometheus_server import PrometheusServer
from demo.services import PostgresServer


@contextmanager
def plain_role(postgres_server: PostgresServer, database: str) -> Iterator[str]:
    """A LOGIN role that is no superuser, has no CREATEDB and is no member of pg_signal_backend;
    yields a DSN of `database` as that role. Dropped afterwards."""
    name = f"doctor_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    postgres_server.psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        yield postgres_server.dsn(database, user=name, password=password)
    finally:
        postgres_server.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'; DROP ROLE {name}"
        )


@contextmanager
def prometheus(base_dir: Path, rules: list[dict]) -> Iterator[str]:
    """A Prometheus process evaluating `rules` (alerting rules) every second; yields its URL."""
    with PrometheusServer(base_dir, rules={"groups": [{"name": "erpgo", "rules": rules}]}) as server:
        yield server.url
