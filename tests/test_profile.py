"""`/erpgo profile` against a real Go runtime: the standard library's net/http/pprof in a container of the
suite's engine (tests/fixtures/go_api.py), its CPU, heap and block profiles decoded from pprof's protobuf
and its goroutines grouped; an API without /debug/pprof gets how to expose it safely."""

from __future__ import annotations

import pytest

from bot.core.findings import Finding, Status
from bot.core.registry import UsageError
from bot.settings import load_settings
from runbooks.profiling import ProfileArgs, parse_profile
from tests import harness
from tests.support import eventually


async def profile(url: str, kind: str, seconds: int = 10) -> Finding:
    findings = await harness.run_args("profile", ProfileArgs(kind, seconds), load_settings(erpgo_api_url=url))
    [finding] = [f for f in findings if f.component.startswith("Profile")]
    return finding


async def test_the_cpu_profile_names_the_hot_function_by_flat_and_cumulative_time(go_api):
    api = await go_api()
    finding = await profile(api.url, "cpu", 2)
    assert finding.status is Status.OK and " cpu over 2 s; hottest: " in finding.title
    flat_part = finding.evidence[: finding.evidence.index("by cumulative (with what it calls):")]
    assert any("crypto/sha256.block" in line for line in flat_part), flat_part
    cumulative_part = finding.evidence[finding.evidence.index("by cumulative (with what it calls):") :]
    assert any(line.endswith("main.hashForever") for line in cumulative_part), cumulative_part


async def test_heap_block_and_goroutines(go_api):
    api = await go_api()
    heap = await profile(api.url, "heap")
    assert heap.status is Status.OK and heap.data["type"] == "inuse_space" and heap.data["unit"] == "bytes"

    async def lock_waits_recorded() -> Finding | None:  # the block profile accumulates from the process's start
        found = await profile(api.url, "block")
        return found if any("main.holdTheLock" in line for line in found.evidence) else None

    block = await eventually(lock_waits_recorded, timeout=30, what="main.holdTheLock in the block profile")
    assert block.data["type"] == "delay"
    goroutines = await profile(api.url, "goroutines")
    assert goroutines.title.startswith(f"{goroutines.data['total']} goroutines in ")
    assert any("[semacquire]" in line and line.endswith("main.holdTheLock") for line in goroutines.evidence)


async def test_an_api_without_pprof_is_told_how_to_expose_it_safely(simulator):
    finding = await profile(simulator.url, "heap")
    assert finding.status is Status.SKIPPED and "not exposed (404)" in finding.title
    assert any("bound to the loopback" in line and "never on the public port" in line for line in finding.details)


@pytest.mark.parametrize(
    ("words", "expected"),
    [([], ProfileArgs("cpu", 10)), (["5"], ProfileArgs("cpu", 5)), (["heap"], ProfileArgs("heap", 10))],
)
def test_profile_arguments(words, expected):
    assert parse_profile(words) == expected


@pytest.mark.parametrize("words", [["threads"], ["cpu", "31"], ["cpu", "0"], ["cpu", "5", "6"], ["cpu", "٥"]])
def test_bad_profile_arguments_are_usage_errors(words):
    with pytest.raises(UsageError):
        parse_profile(words)


async def test_the_docker_hosts_load_is_shown_when_the_bot_runs_on_that_host(docker_engine, simulator):
    settings = load_settings(erpgo_api_url=simulator.url, docker_host=docker_engine.host)
    findings = await harness.run_args("profile", ProfileArgs("heap", 10), settings)
    [load] = [f for f in findings if f.component == "Host load"]
    assert " (1, 5, 15 min) on " in load.title and load.title.startswith("load ")
    one, cpus = load.data["load"][0], load.data["cpus"]
    assert load.status is (Status.CRIT if one > 2 * cpus else Status.WARN if one > cpus else Status.OK)
