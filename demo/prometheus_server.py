"""A throwaway Prometheus (Debian's `prometheus` package) on a free loopback port: a 1 s scrape and
evaluation interval, the scrape targets and rule files it is given, alerts sent to an Alertmanager.
The demo's (scraping the ERPGo simulator and the bot) and the tests' (a /metrics they set)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from demo.services import ServiceUnavailable, _Service, free_port, http_status, wait_for

LOOPBACK = "127.0.0.1"


class PrometheusServer(_Service):
    """`PrometheusServer(dir, targets=["127.0.0.1:8080"], rules={...}, alertmanager="127.0.0.1:9093")`
    scrapes the targets as job "erpgo"; `jobs={"erpgo-api": "http://127.0.0.1:8080"}` names a job each."""

    def __init__(
        self,
        base_dir: Path,
        *,
        targets: list[str] | None = None,
        jobs: dict[str, str] | None = None,
        rules: dict[str, Any] | None = None,
        alertmanager: str | None = None,
        metrics_path: str = "/metrics",
        port: int | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.jobs = {job: [urlsplit(url).netloc] for job, url in (jobs or {}).items()}
        if targets:
            self.jobs["erpgo"] = list(targets)
        self.rules = rules
        self.alertmanager = alertmanager
        self.metrics_path = metrics_path
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "metrics_path": self.metrics_path, "static_configs": [{"targets": targets}]}
                for job, targets in self.jobs.items()
            ],
        }
        if self.rules is not None:
            config["rule_files"] = [str(self.base_dir / "rules.yml")]
        if self.alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        return config

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise ServiceUnavailable(
                "prometheus not found: install the Debian package prometheus (scripts/setup does it)"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.rules is not None:
            (self.base_dir / "rules.yml").write_text(yaml.safe_dump(self.rules, sort_keys=False))
        (self.base_dir / "prometheus.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))
        cmd = [
            binary,
            f"--config.file={self.base_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.base_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--rules.alert.resend-delay=1s",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        wait_for(
            lambda: http_status(f"{self.url}/-/ready") == 200,
            what="prometheus",
            timeout=30,
            log=self.log_path,
            proc=self._proc,
        )

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
