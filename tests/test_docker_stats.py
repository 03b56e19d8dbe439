"""Docker stats sampled in the background against the suite's own engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.targets.docker import Docker
from bot.targets.docker_stats import StatsSample, StatsSampler, cpu_percent, memory_used, slope
from demo.services import DockerEngine
from tests.support import eventually

BUSY = "while :; do :; done"


@pytest.fixture
async def sampler(docker: Docker) -> AsyncIterator[Callable[..., StatsSampler]]:
    made: list[StatsSampler] = []

    def make(**kwargs: Any) -> StatsSampler:
        made.append(StatsSampler(docker, **kwargs))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def _fresh(
    sampler: StatsSampler, name: str, check: Callable[[StatsSample], bool]
) -> Callable[[], Awaitable[StatsSample | None]]:
    async def condition() -> StatsSample | None:
        sample = sampler.latest(name)
        return sample if sample is not None and check(sample) else None

    return condition


async def test_busy_container_has_cpu_percent_within_two_seconds_then_instantly(
    sampler, docker_engine: DockerEngine, names
):
    name = names("busy")
    docker_engine.run(name, BUSY, run_args=["--cpus", "0.5"])
    stats = sampler()
    started = time.monotonic()
    stats.start([name])

    sample = await eventually(
        _fresh(stats, name, lambda s: s.cpu_percent is not None), timeout=5, what="a CPU % from the stream"
    )

    assert time.monotonic() - started < 2.5
    assert 10 < sample.cpu_percent < 80  # half a CPU at most, by its limit
    asked = time.perf_counter()
    again = stats.latest(name)
    assert time.perf_counter() - asked < 0.005
    assert again is not None and again.running and again.memory_used and again.memory_limit
    throttled = await eventually(
        _fresh(stats, name, lambda s: (s.throttled_ratio or 0) > 0),
        timeout=5,
        what="throttled CFS periods under --cpus 0.5",
    )
    assert throttled.throttled_periods > 0 and throttled.periods >= throttled.throttled_periods


async def test_stale_sample_falls_back_to_a_reading_now(sampler, docker_engine: DockerEngine, names):
    name = names("stale")
    docker_engine.run(name, BUSY, run_args=["--cpus", "0.3"])
    background = sampler()
    background.start([name])
    await eventually(_fresh(background, name, lambda s: s.running), what="a first sample")
    background.stale_after = 0.0  # every sample it holds is now too old

    assert background.latest(name) is None
    sample = await background.sample(name)
    assert sample.running and sample.cpu_percent is not None and sample.cpu_percent > 5
    assert sample.age < 1

    cold = sampler()  # nothing sampled before: the engine is asked for a reading with its precpu_stats
    reading = await cold.one_shot(name)
    assert reading.running and reading.cpu_percent is not None and reading.cpu_window and reading.cpu_window < 3


async def test_streams_follow_a_stopped_removed_and_recreated_container(sampler, docker_engine: DockerEngine, names):
    name = names("phoenix")
    first_id = docker_engine.run(name, "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    stats = sampler()
    stats.start([name])
    await eventually(_fresh(stats, name, lambda s: s.running and s.container_id == first_id), what="a first sample")

    docker_engine.docker("stop", "-t", "5", name)
    await eventually(_fresh(stats, name, lambda s: not s.running), what="a not-running sample after the stop")

    docker_engine.remove(name)
    second_id = docker_engine.run(name, "sleep 100")
    await eventually(
        _fresh(stats, name, lambda s: s.running and s.container_id == second_id),
        timeout=8,
        what="the stream re-opened on the new container",
    )


async def test_memory_history_is_bounded_and_shows_growth(sampler, docker_engine: DockerEngine, names):
    name = names("leaky")
    docker_engine.run(name, 'while :; do s="$s$(head -c 500000 /dev/zero | tr "\\0" x)"; sleep 0.4; done')
    stats = sampler(history=4)
    stats.start([name])
    grown = await eventually(
        _fresh(stats, name, lambda s: len(s.memory_history) == 4), timeout=8, what="four memory readings"
    )
    assert grown.memory_slope is not None and grown.memory_slope > 100_000  # bytes per second
    assert grown.memory_history[-1][1] > grown.memory_history[0][1]


async def test_update_and_close_cancel_the_streams(sampler, docker_engine: DockerEngine, names):
    one, two = names("one"), names("two")
    for name in (one, two):
        docker_engine.run(name, "sleep 100")
    stats = sampler()
    stats.start([one])
    stats.update([two])
    assert stats.watched == {two}
    await eventually(_fresh(stats, two, lambda s: s.running), what="the new container's sample")
    assert stats.latest(one) is None
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("stats ")]

    await stats.close()

    assert stats.watched == frozenset() and all(t.done() for t in tasks)


def test_cpu_and_memory_formulas_match_docker_stats():
    before = {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}
    now = {"cpu_usage": {"total_usage": 1_500}, "system_cpu_usage": 12_000, "online_cpus": 2}
    assert cpu_percent(now, before) == pytest.approx(50.0)
    assert cpu_percent(now, {}) is None  # the engine's first reading has no precpu_stats
    restarted = {"cpu_usage": {"total_usage": 10}, "system_cpu_usage": 13_000, "online_cpus": 2}
    assert cpu_percent(restarted, now) is None
    assert memory_used({"usage": 1000, "stats": {"total_inactive_file": 300}}) == 700  # cgroup v1
    assert memory_used({"usage": 1000, "stats": {"inactive_file": 200}}) == 800  # cgroup v2
    assert memory_used({"usage": 1000, "stats": {}}) == 1000
    assert slope(((0.0, 100), (1.0, 200), (2.0, 300))) == pytest.approx(100.0)
    assert slope(((0.0, 100), (1.0, 200))) is None
