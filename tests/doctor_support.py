"""What the doctor tests plant: a login role of the ERPGo database without any extra right, and a
real Prometheus process with a rule file."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from demo.services import LOOPBACK, PostgresServer, free_port, http_status, wait_for


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
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install the Debian package prometheus (scripts/setup does it)"
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "erpgo", "rules": rules}]}))
    config = {"global": {"evaluation_interval": "1s", "scrape_interval": "1s"}, "rule_files": ["rules.yml"]}
    (base_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(base_dir / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={base_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_for(lambda: http_status(f"{url}/-/ready") == 200, what="prometheus", timeout=30)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
