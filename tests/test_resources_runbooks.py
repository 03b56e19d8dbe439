"""`/erpgo memory` and `/erpgo cpu` against the suite's own Docker engine and the ERPGo simulator's
Go runtime `/metrics`: a container whose memory climbs, one killed by its memory limit, one busy
under a CPU limit, a /metrics whose heap and goroutines grow between two reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.app import build_registry
from bot.core.engine import run_checks
from bot.core.findings import Finding, Status
from bot.core.redact import redact
from bot.settings import load_settings
from bot.targets import Targets
from runbooks.watched import ContainerArgs
from tests import harness
from tests.db_support import one, text_of
from tests.support import eventually

registry = build_registry()
LEAKY = 'while :; do s="$s$(head -c 500000 /dev/zero | tr "\\0" x)"; sleep 0.4; done'
BUSY = "while :; do :; done"

Run = Callable[..., Awaitable[list[Finding]]]


@pytest.fixture
async def checks() -> AsyncIterator[Callable[..., Awaitable[tuple[Run, Targets]]]]:
    """`run, targets = await checks(sampled=True, **settings)`; `await run("memory", container=…)` runs a
    verb (or the checks named by `only`) as the bot would, with the stats sampler on when `sampled`."""
    made: list[Targets] = []

    async def make(*, sampled: bool = False, **settings) -> tuple[Run, Targets]:
        loaded = load_settings(**settings)
        targets = Targets(loaded)
        made.append(targets)
        if sampled:
            assert targets.start_sampling()

        async def run(verb: str, only: tuple[str, ...] = (), container: str | None = None) -> list[Finding]:
            chosen = [registry.checks[name] for name in only] or registry.verbs[verb].checks
            ctx = harness.context(loaded, targets, ContainerArgs(container))
            return await run_checks(chosen, ctx)

        return run, targets

    yield make
    for targets in made:
        await targets.close()


def sampled_for(targets: Targets, name: str, seconds: float) -> Callable[[], bool]:
    def ready() -> bool:
        sample = targets.stats.latest(name)
        history = sample.memory_history if sample else ()
        return len(history) >= 2 and history[-1][0] - history[0][0] >= seconds

    return ready


# --- memory ---------------------------------------------------------------------------------------


async def test_climbing_memory_is_rising_with_a_restart_proposed_and_a_quiet_one_steady(checks, docker_engine, names):
    leaky, quiet = names("api"), names("quiet")
    docker_engine.run(
        leaky,
        LEAKY,
        run_args=["--memory", "256m", "-e", "SERVER_PORT=8080", "-e", "GOGC=50", "-e", "GODEBUG=gctrace=1"],
    )
    docker_engine.run(quiet, "sleep 100")
    run, targets = await checks(sampled=True, docker_host=docker_engine.host, erpgo_containers=f"{leaky},{quiet}")
    for name in (leaky, quiet):
        await eventually(sampled_for(targets, name, 5), timeout=15, what="five seconds of background samples")

    findings = await run("memory", only=("memory_usage", "host_memory", "memory_trend"))

    climbing = one(findings, f"Memory {leaky}")
    assert climbing.status is Status.WARN
    assert " of 256.0 MB (" in climbing.title and "rising " in climbing.title and "/min over the last" in climbing.title
    assert any("reaches its limit in about" in line for line in climbing.details)
    assert "Go memory settings: GOGC=50, GOMEMLIMIT not set, GODEBUG=gctrace=1" in climbing.details
    assert any(
        "without GOMEMLIMIT the Go GC does not know the 256.0 MB limit" in line and "GOMEMLIMIT=230MiB" in line
        for line in climbing.details
    )
    assert any(line.startswith("GOGC=50 collects more often") for line in climbing.details)
    assert any("gctrace=1 prints one line per GC" in line for line in climbing.details)
    [restart] = climbing.proposals
    assert restart.action == "docker.restart" and restart.args["name"] == leaky
    steady = one(findings, f"Memory {quiet}")
    assert steady.status is Status.OK and "steady over the last" in steady.title and steady.proposals == []
    assert "(no limit: the host's memory)" in steady.title
    host = one(findings, "Host memory")
    assert host.status in (Status.OK, Status.WARN) and " available of " in host.title
    assert any(line.startswith("Docker host: ") for line in host.details)
    assert all(f.section.startswith(("Application Issues › Memory Leaks", "Infrastructure Issues")) for f in findings)
    trend = one(findings, "Memory trend")
    assert "sampled by the bot" in trend.title and trend.chart is not None, "no Prometheus: the Docker stats"
    [line] = [line for line in trend.details if f" {leaky} — " in line]
    assert line.split()[0][-1] in "▆▇█" and line.split()[0][0] in "▁▂▃", "the sparkline climbs"


async def test_a_container_killed_by_its_memory_limit(checks, docker, docker_engine, names):
    name = names("hungry")
    docker_engine.run(name, "head -c 200m /dev/zero | tail", run_args=["--memory", "16m", "--memory-swap", "16m"])

    async def stopped() -> bool:
        return not (await docker.inspect(name)).state.running

    await eventually(stopped, what="the memory limit to kill it")
    run, _ = await checks(docker_host=docker_engine.host, erpgo_containers=name)

    findings = await run("memory", container=name)

    killed = one(findings, f"Memory {name}")
    assert killed.status is Status.CRIT
    assert killed.title == "exited: killed by its memory limit (OOMKilled, exit code 137, limit 16.0 MB)"
    assert [p.action for p in killed.proposals] == ["docker.start"]
    assert one(findings, "Go runtime").title == "not configured (set ERPGO_API_URL)"


async def test_a_crash_looping_container_is_not_0_bytes_ok_and_docker_top_is_not_an_error(
    checks, docker, docker_engine, names
):
    """The engine says Running for a container its restart policy is restarting; `docker top` answers 409."""
    name = names("api")
    docker_engine.run(name, 'echo "FTL failed to connect to database"; exit 1', restart="always")

    async def looping() -> bool:
        state = (await docker.inspect(name)).state
        return state.restart_count >= 4 and state.status == "restarting"

    await eventually(looping, timeout=30, what="the restart policy to back off between restarts")
    run, _ = await checks(docker_host=docker_engine.host, erpgo_containers=name)

    memory = await run("memory", only=("memory_usage", "memory_processes"), container=name)
    cpu = await run("cpu", only=("cpu_usage", "container_processes"), container=name)

    looped = one(memory, f"Memory {name}")
    assert looped.status is Status.WARN and looped.title.startswith("restarting: its restart policy keeps restarting")
    assert "0 B" not in looped.title and "last exit code 1" in looped.title
    [restart] = looped.proposals
    assert restart.action == "docker.restart" and restart.args["loop"] is True
    assert one(cpu, f"CPU {name}").status is Status.WARN
    assert all(f.status is not Status.ERROR for f in memory + cpu), [f.title for f in memory + cpu]
    assert one(cpu, f"Processes {name}").status is Status.SKIPPED


# --- the Go runtime -------------------------------------------------------------------------------


async def test_metrics_show_goroutines_and_heap_growing_between_two_reads(checks, simulator, erpgo_containers):
    simulator.app["sim"].update({"leak": True})
    run, _ = await checks(erpgo_api_url=simulator.url, docker_host=erpgo_containers, erpgo_containers="erpgo-api")

    findings = await run("memory", only=("goroutines", "pprof_profiles"))

    runtime = one(findings, "Go runtime")
    assert runtime.status is Status.WARN and runtime.data["growing"] is True
    first, second = runtime.data["goroutines"]
    assert second - first >= 40 and runtime.data["heap_inuse"][1] > runtime.data["heap_inuse"][0]
    assert runtime.title.startswith(f"goroutines {first:.0f} → {second:.0f} (+")
    assert any("goroutines grew by" in line and "heap in use grew by" in line for line in runtime.details)
    assert "open file descriptors: 14 of 1,048,576" in runtime.details
    assert any(line.startswith("two reads of /metrics 2.0 s apart, go1.23.4") for line in runtime.details)
    assert [p.action for p in runtime.proposals] == ["docker.restart"]
    pprof = one(findings, "pprof")
    assert pprof.status is Status.SKIPPED and "/debug/pprof not exposed (404)" in pprof.title


async def test_a_quiet_runtime_is_steady_and_pprof_is_summarised_when_exposed(checks, simulator):
    simulator.app["sim"].update({"expose": ["pprof"]})
    run, _ = await checks(erpgo_api_url=simulator.url)

    findings = await run("memory", only=("goroutines", "pprof_profiles"))

    runtime = one(findings, "Go runtime")
    assert runtime.status is Status.OK and runtime.proposals == []
    assert runtime.title.startswith("goroutines 42 (steady), heap 21.0 MB (steady)")
    pprof = one(findings, "pprof")
    assert pprof.status is Status.OK
    assert "heap profile: 18.0 MB in 98,311 objects in use" in pprof.title
    assert "goroutine profile: 42 goroutines" in pprof.details
    assert "  18 in net/http.(*conn).serve+0x5e4" in pprof.details


async def test_an_api_without_metrics_is_not_exposed_not_an_error(checks):
    bare = web.Application()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    bare.router.add_get("/health", health)
    server = TestServer(bare, host="127.0.0.1")
    await server.start_server()
    try:
        run, _ = await checks(erpgo_api_url=str(server.make_url("")))
        findings = await run("cpu", only=("cpu_rate", "goroutines"))
    finally:
        await server.close()
    assert [(f.status, f.title) for f in findings] == [(Status.SKIPPED, "GET /metrics: not exposed (404)")] * 2


# --- CPU ------------------------------------------------------------------------------------------


async def test_busy_api_under_a_cpu_limit_is_throttled_and_gomaxprocs_does_not_fit(checks, docker_engine, names):
    unset, four = names("api"), names("api4")
    docker_engine.run(unset, BUSY, run_args=["--cpus", "0.5", "-e", "SERVER_PORT=8080"])
    docker_engine.run(four, "sleep 100", run_args=["--cpus", "0.5", "-e", "SERVER_PORT=8080", "-e", "GOMAXPROCS=4"])
    run, targets = await checks(sampled=True, docker_host=docker_engine.host, erpgo_containers=f"{unset},{four}")

    def throttled() -> bool:
        sample = targets.stats.latest(unset)
        return bool(sample and sample.throttled_ratio)

    await eventually(throttled, timeout=10, what="throttled CFS periods under --cpus 0.5")

    findings = await run("cpu", only=("cpu_usage", "cpu_trend"))
    trend = one(findings, "CPU trend")
    assert trend.chart is not None and any(f" {unset} — min " in line for line in trend.details)
    busy = one(findings, f"CPU {unset}")
    assert busy.status.rank >= Status.WARN.rank  # critical once it gets its whole quota; a busy host gives less
    assert "of its 0.5-CPU limit" in busy.title and "throttled in" in busy.title
    assert busy.data["cpu_percent"] > 30
    assert "GOMAXPROCS: not set" in busy.details
    assert any(
        line.startswith("GOMAXPROCS not set under a CPU limit of 0.5: Go before 1.25 runs") for line in busy.details
    )
    idle = one(findings, f"CPU {four}")
    assert idle.status is Status.WARN
    assert "GOMAXPROCS=4 but the CPU limit is 0.5: more threads than the quota — set GOMAXPROCS=1" in idle.details

    processes = one(await run("cpu", only=("container_processes",), container=unset), f"Processes {unset}")
    assert processes.title.startswith("busiest: PID ") and BUSY in processes.title
    assert "%CPU" in processes.title and "RSS " in processes.title


# what `docker top` shows of a worker started with its credentials on the command line
CREDENTIALED = 'exec sh -c "while :; do :; done" worker -pMyS3cretPw -u admin:Curl-Pw-99 DB_PASS=Db-Pass-42'


async def test_a_process_command_line_is_shown_with_its_passwords_masked(checks, docker_engine, names):
    name = names("creds")
    docker_engine.run(name, CREDENTIALED)
    run, _ = await checks(docker_host=docker_engine.host, erpgo_containers=name)

    async def worker_listed() -> Finding | None:  # a container just started may still list only `runc init`
        found = one(await run("cpu", only=("container_processes",), container=name), f"Processes {name}")
        return found if "worker" in text_of(found) else None

    processes = await eventually(worker_listed, timeout=15, what="the worker process in docker top")
    shown = redact(text_of(processes))  # what every outward path does to it
    assert "worker -p*** -u admin:*** DB_PASS=***" in shown, shown
    for password in ("MyS3cretPw", "Curl-Pw-99", "Db-Pass-42"):
        assert password not in shown


async def test_cpu_seconds_per_second_from_metrics(checks, simulator):
    simulator.app["sim"].update({"leak": True})
    run, _ = await checks(erpgo_api_url=simulator.url)

    [runtime] = await run("cpu", only=("cpu_rate",))

    assert runtime.status is Status.OK
    assert runtime.title.startswith("the API process burns 0.3") and "CPU-seconds per second" in runtime.title
    assert 0.3 < runtime.data["cpu_seconds_per_second"] < 0.4
    assert "goroutines" in text_of(runtime)


async def test_the_simulator_exports_go_runtime_and_process_metrics_only(simulator):
    async with aiohttp.ClientSession() as http, http.get(simulator.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    samples = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    assert {
        "go_goroutines",
        "go_memstats_heap_alloc_bytes",
        "go_memstats_heap_inuse_bytes",
        "go_gc_duration_seconds_sum",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    } <= samples
    assert not {"http_requests_total", "db_connections_active"} & samples  # the guide's, not the real ERPGo's


def test_a_host_short_of_memory_is_told_swap_is_a_host_change():
    """Memory Issues 3: the bot never changes the host; the report that meets the problem says what to run there."""
    from runbooks.resources.memory import meminfo_finding

    gib = 1024**3
    finding = meminfo_finding("Host memory", {"MemTotal": 8 * gib, "MemAvailable": gib // 4}, [])
    assert finding.status is Status.CRIT and "no swap" in finding.title
    text = "\n".join(finding.details)
    assert "swap (guide: Memory Issues 3) is a change to the host" in text and "mkswap /swapfile" in text
    roomy = meminfo_finding(
        "Host memory", {"MemTotal": 8 * gib, "MemAvailable": 6 * gib, "SwapTotal": gib, "SwapFree": gib}, []
    )
    assert roomy.status is Status.OK and not any("mkswap" in line for line in roomy.details)
