"""Docker stats kept sampled in the background, so that no report waits for the engine's 1-second tick.

One streaming subscription per watched container; of each only the newest sample (and the memory
used, over the last `history` samples) is kept. CPU % comes from two consecutive samples, memory is
counted like `docker stats` does (without the inactive page cache). A stream that ends or fails is
opened again with a growing pause (the container restarted, was removed, the engine went away).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import aiohttp
import structlog

from bot.targets.docker import Docker
from bot.targets.docker_models import parse_time

log = structlog.get_logger("erpgo.docker_stats")

STALE_AFTER = 5.0  # seconds; the engine sends one sample a second
HISTORY = 30
STREAM_READ_TIMEOUT = 10.0  # no sample for this long: the stream is stuck, open it again
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0


@dataclass(frozen=True)
class StatsSample:
    name: str
    container_id: str
    running: bool
    read_at: datetime | None  # the engine's time of the reading
    received: float  # time.monotonic() when it arrived
    cpu_percent: float | None  # of one CPU: 200 = two CPUs busy; None until two readings exist
    cpu_window: float | None  # seconds between the two readings CPU % is computed from
    online_cpus: int | None
    cpu_total_ns: int
    system_total_ns: int
    memory_used: int | None  # usage minus inactive file cache, as `docker stats`
    memory_limit: int | None  # the cgroup's limit (the host's memory when the container has none)
    throttled_periods: int
    periods: int
    throttled_ns: int
    throttled_ratio: float | None  # throttled / all CFS periods between the two readings
    pids: int | None
    memory_history: tuple[tuple[float, int], ...] = field(default=())  # (unix seconds, bytes used), oldest first
    cpu_history: tuple[tuple[float, float], ...] = field(default=())  # (unix seconds, CPU %), oldest first

    @property
    def age(self) -> float:
        return time.monotonic() - self.received

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used is None or not self.memory_limit:
            return None
        return 100.0 * self.memory_used / self.memory_limit

    @property
    def memory_slope(self) -> float | None:
        """Least-squares growth of the memory used over the history, in bytes per second."""
        return slope(self.memory_history)


def slope(points: tuple[tuple[float, int], ...]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def memory_used(memory: Mapping[str, Any]) -> int | None:
    """`docker stats`' figure: usage minus inactive file pages (cgroup v1 total_inactive_file, v2 inactive_file)."""
    usage = memory.get("usage")
    if usage is None:
        return None
    stats = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        inactive = stats.get(key)
        if inactive is not None and inactive < usage:
            return int(usage - inactive)
    return int(usage)


def cpu_percent(cpu: Mapping[str, Any], before: Mapping[str, Any]) -> float | None:
    """Docker's formula: container CPU time over host CPU time between two readings × online CPUs."""
    if not before.get("system_cpu_usage"):  # no earlier reading (the engine's first sample of a stream)
        return None
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - before["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - before["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    if system_delta <= 0 or cpu_delta < 0:  # no time passed, or the counters restarted with the container
        return None
    return 100.0 * cpu_delta / system_delta * online


def _throttling(cpu: Mapping[str, Any]) -> tuple[int, int, int]:
    data = cpu.get("throttling_data") or {}
    return int(data.get("periods") or 0), int(data.get("throttled_periods") or 0), int(data.get("throttled_time") or 0)


def _cpu_stats(sample: StatsSample) -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": sample.cpu_total_ns}, "system_cpu_usage": sample.system_total_ns}


def _seconds_between(a: datetime | None, b: datetime | None) -> float | None:
    return (a - b).total_seconds() if a and b else None


def stopped_sample(name: str, container_id: str) -> StatsSample:
    """What a stopped container reads as: not running, no figures."""
    return StatsSample(
        name=name,
        container_id=container_id,
        running=False,
        read_at=None,
        received=time.monotonic(),
        cpu_percent=None,
        cpu_window=None,
        online_cpus=None,
        cpu_total_ns=0,
        system_total_ns=0,
        memory_used=None,
        memory_limit=None,
        throttled_periods=0,
        periods=0,
        throttled_ns=0,
        throttled_ratio=None,
        pids=None,
    )


def make_sample(
    name: str,
    container_id: str,
    raw: Mapping[str, Any],
    previous: StatsSample | None,
    history: deque[tuple[float, int]] | None = None,
) -> StatsSample:
    """One reading turned into a sample; CPU % against `previous` (ours) or the engine's precpu_stats."""
    read_at = parse_time(raw.get("read"))
    cpu = raw.get("cpu_stats") or {}
    if read_at is None or not cpu.get("system_cpu_usage"):  # the engine's empty reading of a stopped container
        return stopped_sample(name, container_id)
    usable = previous if previous is not None and previous.running and previous.container_id == container_id else None
    before: Mapping[str, Any] = _cpu_stats(usable) if usable else (raw.get("precpu_stats") or {})
    window = _seconds_between(read_at, usable.read_at if usable else parse_time(raw.get("preread")))
    periods, throttled, throttled_ns = _throttling(cpu)
    ratio = None
    if usable and periods > usable.periods:
        ratio = (throttled - usable.throttled_periods) / (periods - usable.periods)
    memory = raw.get("memory_stats") or {}
    used = memory_used(memory)
    percent = cpu_percent(cpu, before)
    cpu_history = (usable.cpu_history if usable else ()) + (
        ((read_at.timestamp(), percent),) if percent is not None else ()
    )
    if history is not None and used is not None:
        history.append((read_at.timestamp(), used))
    return StatsSample(
        name=name,
        container_id=container_id,
        running=True,
        read_at=read_at,
        received=time.monotonic(),
        cpu_percent=percent,
        cpu_window=window,
        online_cpus=cpu.get("online_cpus"),
        cpu_total_ns=int((cpu.get("cpu_usage") or {}).get("total_usage") or 0),
        system_total_ns=int(cpu.get("system_cpu_usage") or 0),
        memory_used=used,
        memory_limit=memory.get("limit"),
        throttled_periods=throttled,
        periods=periods,
        throttled_ns=throttled_ns,
        throttled_ratio=ratio,
        pids=(raw.get("pids_stats") or {}).get("current"),
        memory_history=tuple(history) if history is not None else ((read_at.timestamp(), used),) if used else (),
        cpu_history=cpu_history[-(history.maxlen or HISTORY) :] if history is not None else cpu_history,
    )


@dataclass
class _Watch:
    task: asyncio.Task[None]
    latest: StatsSample | None = None
    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=HISTORY))


class StatsSampler:
    """Background stats of the watched containers. `latest()` answers at once; stale → `one_shot()`."""

    def __init__(self, docker: Docker, *, stale_after: float = STALE_AFTER, history: int = HISTORY):
        self.docker = docker
        self.stale_after = stale_after
        self.history = history
        self._watches: dict[str, _Watch] = {}

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._watches)

    def start(self, names: Iterable[str]) -> None:
        """Begin following these containers (in addition to any already followed)."""
        for name in names:
            if name not in self._watches:
                watch = _Watch(
                    task=asyncio.get_running_loop().create_task(self._follow(name), name=f"stats {name}"),
                    history=deque(maxlen=self.history),
                )
                self._watches[name] = watch

    def update(self, names: Iterable[str]) -> None:
        """Follow exactly these containers: new ones start, dropped ones stop."""
        wanted = set(names)
        for name in set(self._watches) - wanted:
            self._watches.pop(name).task.cancel()
        self.start(sorted(wanted))

    async def close(self) -> None:
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            watch.task.cancel()
        await asyncio.gather(*(w.task for w in watches), return_exceptions=True)

    def latest(self, name: str) -> StatsSample | None:
        """The newest sample if it is fresh (younger than `stale_after`); None otherwise."""
        watch = self._watches.get(name)
        if watch is None or watch.latest is None or watch.latest.age > self.stale_after:
            return None
        return watch.latest

    async def sample(self, name: str) -> StatsSample:
        """A fresh sample: the background one, or else a reading now."""
        return self.latest(name) or await self.one_shot(name)

    async def one_shot(self, name: str) -> StatsSample:
        """A single reading now. The engine answers at its next 1-second collection tick, so this
        costs up to a second. With an earlier sample of the same container kept, the engine's
        one-shot reading is compared with it (CPU % over that longer window; `cpu_window` says how
        long); without one the engine is asked for a reading with precpu_stats filled, which waits
        for two ticks (about 2 s)."""
        watch = self._watches.get(name)
        previous = watch.latest if watch else None
        async with self.docker._call(self.docker.timeout + 2, container=name) as client:
            container = await client.containers.get(name)
            params = {"stream": "false"}
            if previous is not None and previous.running and previous.container_id == container.id:
                params["one-shot"] = "true"
            raw = await client._query_json(f"containers/{container.id}/stats", params=params)
        sample = make_sample(name, container.id, raw, previous if "one-shot" in params else None)
        if sample.running and sample.cpu_percent is None and "one-shot" in params:
            sample = await self._fresh_one_shot(name, container.id)
        if watch is not None and sample.running:
            watch.latest = sample  # the stream's next sample compares with this one
        return sample

    async def _fresh_one_shot(self, name: str, container_id: str) -> StatsSample:
        async with self.docker._call(self.docker.timeout + 2, container=name) as client:
            raw = await client._query_json(f"containers/{container_id}/stats", params={"stream": "false"})
        return make_sample(name, container_id, raw, None)

    async def _follow(self, name: str) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                async for _ in self._stream(name):
                    backoff = BACKOFF_FIRST
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info(
                    "docker_stats_stream_failed", container=name, error=type(exc).__name__, retry_in=round(backoff, 1)
                )
            await asyncio.sleep(backoff)  # a pause before opening the stream again, not a synchronisation
            backoff = min(BACKOFF_MAX, backoff * 2)

    async def _stream(self, name: str) -> AsyncIterator[None]:
        """Yields after each sample stored; ends when the engine ends the stream."""
        async with self.docker._call(container=name) as client:
            container = await client.containers.get(name)
        watch = self._watches.get(name)
        if watch is None:
            return
        if watch.latest is not None and watch.latest.container_id != container.id:
            watch.history.clear()  # a new container under the old name: its memory is a new story
        read_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.docker.timeout, sock_read=STREAM_READ_TIMEOUT
        )
        stream = cast(AsyncGenerator[dict[str, Any], None], container.stats(stream=True, timeout=read_timeout))
        async with contextlib.aclosing(stream):
            async for raw in stream:
                watch.latest = make_sample(name, container.id, raw, watch.latest, watch.history)
                yield
