"""The Go runtime and process metrics the ERPGo API exports on `/metrics` (Prometheus text format).

The real ERPGo has no `/debug/pprof`; these gauges and counters are what is left of the guide's
profiling steps: goroutines, heap, resident memory, CPU seconds and file descriptors. Read them
twice a few seconds apart and the difference shows growth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bot.targets.api import ErpgoApi

PATH = "/metrics"

# sample name -> field of GoMetrics
SAMPLES = {
    "go_goroutines": "goroutines",
    "go_threads": "threads",
    "go_memstats_heap_alloc_bytes": "heap_alloc",
    "go_memstats_heap_inuse_bytes": "heap_inuse",
    "go_memstats_sys_bytes": "sys_bytes",
    "go_gc_duration_seconds_sum": "gc_pause_seconds",
    "go_gc_duration_seconds_count": "gc_cycles",
    "process_resident_memory_bytes": "rss",
    "process_cpu_seconds_total": "cpu_seconds",
    "process_open_fds": "open_fds",
    "process_max_fds": "max_fds",
}


class MetricsUnreadable(ValueError):
    """/metrics answered, but not with Prometheus text the bot can read."""


@dataclass(frozen=True)
class GoMetrics:
    read_at: float  # time.monotonic() when the answer arrived
    goroutines: float | None = None
    threads: float | None = None
    heap_alloc: float | None = None
    heap_inuse: float | None = None
    sys_bytes: float | None = None
    gc_pause_seconds: float | None = None
    gc_cycles: float | None = None
    rss: float | None = None
    cpu_seconds: float | None = None
    open_fds: float | None = None
    max_fds: float | None = None
    go_version: str | None = None
    families: frozenset[str] = field(default=frozenset())  # every family the endpoint exported
    requests: dict[str, float] = field(default_factory=dict)  # http_requests_total by status, when exported

    @property
    def is_go(self) -> bool:
        return self.goroutines is not None or self.heap_alloc is not None


def status_of(labels: dict[str, str]) -> str:
    """The HTTP status of an http_requests_total sample, whichever label name the exporter uses."""
    return labels.get("status") or labels.get("code") or labels.get("status_code") or "?"


def parse(text: str, read_at: float | None = None) -> GoMetrics:
    """The Go runtime figures of one /metrics answer; MetricsUnreadable when it is not Prometheus text."""
    values: dict[str, float] = {}
    requests: dict[str, float] = {}
    families: set[str] = set()
    version = None
    try:
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            for sample in family.samples:
                if sample.name in SAMPLES and not sample.labels:
                    values[SAMPLES[sample.name]] = float(sample.value)
                elif sample.name == "go_info":
                    version = sample.labels.get("version") or version
                elif sample.name == "http_requests_total":
                    status = status_of(sample.labels)
                    requests[status] = requests.get(status, 0.0) + float(sample.value)
    except (ValueError, TypeError, IndexError) as exc:
        raise MetricsUnreadable(f"/metrics is not Prometheus text: {type(exc).__name__}") from exc
    return GoMetrics(
        read_at=time.monotonic() if read_at is None else read_at,
        go_version=version,
        families=frozenset(families),
        requests=requests,
        **values,
    )


async def scrape(api: ErpgoApi) -> GoMetrics | None:
    """GET /metrics; None when the API does not expose it (404)."""
    result = await api.get(PATH)
    if result.status == 404:
        return None
    if result.status != 200:
        raise MetricsUnreadable(f"GET {PATH} answered HTTP {result.status}")
    return parse(result.text)


def rate(first: GoMetrics, second: GoMetrics, name: str) -> float | None:
    """Per-second change of one figure between two readings."""
    before, after = getattr(first, name), getattr(second, name)
    elapsed = second.read_at - first.read_at
    if before is None or after is None or elapsed <= 0:
        return None
    return (after - before) / elapsed
