"""Prometheus for the demo: scrapes the ERPGo API simulator's /metrics (Go runtime and process
metrics, as the real ERPGo exports them) and the bot's own, every second, so that graphs have
something to show (PROMETHEUS_URL)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from demo.services import LOOPBACK, ServiceUnavailable, _remove, _Service, _terminate, free_port, http_status, wait_for


class Prometheus(_Service):
    """A throwaway Prometheus on 127.0.0.1:port scraping `targets` ({job: base URL})."""

    def __init__(self, base_dir: Path, targets: dict[str, str], port: int | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.targets = targets
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self) -> dict:
        jobs = [
            {"job_name": job, "scheme": urlsplit(url).scheme, "static_configs": [{"targets": [urlsplit(url).netloc]}]}
            for job, url in self.targets.items()
        ]
        return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise ServiceUnavailable(
                "prometheus not found: install the Debian package prometheus (scripts/setup does it)"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        log_path = self.base_dir / "prometheus.log"
        cmd = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.base_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
        ]
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        ready = f"{self.url}/-/ready"
        wait_for(lambda: http_status(ready) == 200, what="prometheus", timeout=30, log=log_path, proc=self._proc)

    def cleanup(self) -> None:
        try:
            _terminate(self._proc)
            self._proc = None
        finally:
            _remove(self.base_dir)
