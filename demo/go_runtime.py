"""The Go runtime and process metrics of the simulated ERPGo API, as its `/metrics` exports them.

The real ERPGo exports only Go's and the process's collectors (client_golang's defaults), in the
Prometheus text format. A quiet API holds about 40 goroutines and 18 MB of heap. With the `leak`
switch on they grow with time, as behind a handler that never lets go: +25 goroutines and +2 MB of
heap a second, resident memory following, the garbage collector working harder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MiB = 1024 * 1024
LEAK_GOROUTINES_PER_S = 25.0
LEAK_HEAP_PER_S = 2 * MiB
QUIET_CPU_PER_S = 0.02  # CPU-seconds per second of a quiet API
LEAK_CPU_PER_S = 0.35
QUIET_GC_PER_S, LEAK_GC_PER_S = 0.2, 3.0


@dataclass
class GoRuntime:
    goroutines: float = 42
    heap_alloc: float = 18 * MiB
    heap_inuse: float = 21 * MiB
    sys_bytes: float = 41 * MiB
    rss: float = 38 * MiB
    cpu_seconds: float = 1.25
    gc_cycles: float = 57
    gc_pause_seconds: float = 0.0031
    open_fds: int = 14
    max_fds: int = 1_048_576
    threads: int = 9
    started: float = field(default_factory=time.time)
    last: float = field(default_factory=time.monotonic)

    def advance(self, leaking: bool, now: float | None = None) -> None:
        """Move the figures on to `now` (monotonic seconds)."""
        now = time.monotonic() if now is None else now
        elapsed, self.last = max(0.0, now - self.last), now
        self.cpu_seconds += elapsed * (LEAK_CPU_PER_S if leaking else QUIET_CPU_PER_S)
        cycles = elapsed * (LEAK_GC_PER_S if leaking else QUIET_GC_PER_S)
        self.gc_cycles += cycles
        self.gc_pause_seconds += cycles * 0.00006
        if leaking:
            self.goroutines += elapsed * LEAK_GOROUTINES_PER_S
            grown = elapsed * LEAK_HEAP_PER_S
            self.heap_alloc += grown
            self.heap_inuse += grown
            self.sys_bytes += grown
            self.rss += grown

    def exposition(self) -> str:
        """The Prometheus text client_golang writes for its Go and process collectors."""
        metrics = [
            (
                "go_gc_duration_seconds",
                "summary",
                "A summary of the pause duration of garbage collection cycles.",
                None,
            ),
            ("go_goroutines", "gauge", "Number of goroutines that currently exist.", int(self.goroutines)),
            ("go_info", "gauge", "Information about the Go environment.", None),
            (
                "go_memstats_heap_alloc_bytes",
                "gauge",
                "Number of heap bytes allocated and still in use.",
                int(self.heap_alloc),
            ),
            ("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", int(self.heap_inuse)),
            ("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from system.", int(self.sys_bytes)),
            ("go_threads", "gauge", "Number of OS threads created.", self.threads),
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                round(self.cpu_seconds, 2),
            ),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.", self.max_fds),
            ("process_open_fds", "gauge", "Number of open file descriptors.", self.open_fds),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", int(self.rss)),
            ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", None),
        ]
        lines = []
        for name, kind, help_text, value in metrics:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            if name == "go_gc_duration_seconds":
                for quantile, pause in (
                    ("0", 2.1e-05),
                    ("0.25", 3.4e-05),
                    ("0.5", 4.9e-05),
                    ("0.75", 7.2e-05),
                    ("1", 0.00031),
                ):
                    lines.append(f'go_gc_duration_seconds{{quantile="{quantile}"}} {pause:g}')
                lines.append(f"go_gc_duration_seconds_sum {self.gc_pause_seconds:.6g}")
                lines.append(f"go_gc_duration_seconds_count {int(self.gc_cycles)}")
            elif name == "go_info":
                lines.append('go_info{version="go1.23.4"} 1')
            elif name == "process_start_time_seconds":
                lines.append(f"process_start_time_seconds {self.started:.2f}")
            else:
                lines.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
        return "\n".join(lines) + "\n"
