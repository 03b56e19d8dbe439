"""Guide: "Performance Issues › High Response Times" step 1 and "› High CPU Usage" steps 1–2 — `profile
[cpu|heap|goroutines|block] [seconds]`.

When the API exposes Go's /debug/pprof: the CPU profile sampled for the given seconds (default 10, at
most 30), the heap or the block profile — each decoded from the gzip'd protobuf pprof writes (its
published profile.proto, as flameshow ships it compiled) into the top functions by flat and by cumulative
value — or every goroutine's stack (`debug=2`) grouped by state and stack. When it is not exposed, how to
expose it without publishing it. Beside it, the Docker host's load when the bot runs on that host.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Finding, Status
from bot.core.parse import ascii_int
from bot.core.registry import Args, Runbook, UsageError
from bot.core.units import human_bytes
from bot.targets import NotConfigured
from runbooks.resources.memory import read_meminfo, same_host

runbook = Runbook("profile")

SECTION = "Performance Issues › High CPU Usage"
KINDS = ("cpu", "heap", "goroutines", "block")
DEFAULT_SECONDS, MAX_SECONDS = 10, 30
TOP = 10
MAX_PROFILE_BYTES = 32 * 1024 * 1024
EXTRA_SECONDS = 15.0  # beyond the sampling: the transfer, and a busy API's slower answer
LOADAVG = "/proc/loadavg"
PATHS = {
    "cpu": "/debug/pprof/profile?seconds={seconds}",
    "heap": "/debug/pprof/heap",
    "block": "/debug/pprof/block",
    "goroutines": "/debug/pprof/goroutine?debug=2",
}
# the value each profile is ranked by: pprof's own default sample type for it
RANKED_BY = {"cpu": "cpu", "heap": "inuse_space", "block": "delay"}
HOW_TO_EXPOSE = [
    'in the API\'s main package: `import _ "net/http/pprof"`, then serve it on a listener of its own bound to '
    'the loopback — `go http.ListenAndServe("127.0.0.1:6060", nil)` — never on the public port',
    "reach it from the host with `docker compose exec api wget -qO- 127.0.0.1:6060/debug/pprof/…`, or point "
    "ERPGO_API_URL of a bot on that host at it; /debug/pprof shows stacks and memory: keep it off the internet",
    "the block profile stays empty until the program calls runtime.SetBlockProfileRate",
]
GOROUTINE_HEAD = re.compile(r"^goroutine \d+ \[([^\],]+)(?:, ([^\]]+))?\]:$")


@dataclass(frozen=True)
class ProfileArgs(Args):
    kind: str = "cpu"
    seconds: int = DEFAULT_SECONDS


def parse_profile(words: list[str]) -> ProfileArgs:
    kind, rest = (words[0].lower(), words[1:]) if words and not words[0].isdigit() else ("cpu", words)
    if kind not in KINDS:
        raise UsageError(f"profile one of {', '.join(KINDS)}, not {kind[:20]!r}")
    if len(rest) > 1:
        raise UsageError("give at most a profile and a number of seconds")
    seconds = ascii_int(rest[0], min=1, max=MAX_SECONDS, what="seconds") if rest else DEFAULT_SECONDS
    return ProfileArgs(kind, seconds)


runbook.verb(
    "profile",
    "Go profiles from the API's /debug/pprof: top functions by flat and cumulative CPU time (default cpu 10 s, at "
    "most 30), heap or block profile; goroutine stacks grouped; how to expose pprof safely when it is not",
    usage="[cpu|heap|goroutines|block] [seconds]",
    parse=parse_profile,
    ack="Sampling the API's /debug/pprof (cpu for 10 s unless you said otherwise): the report posts when done…",
)


# --- decoding ---------------------------------------------------------------------------------


def decode(raw: bytes) -> Any:
    """pprof's Profile message, from the gzip'd bytes /debug/pprof returns."""
    # imported here: the package's parser pulls in its terminal UI, which only this verb needs
    from flameshow.pprof_parser import profile_pb2

    return profile_pb2.Profile.FromString(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def function_names(profile: Any) -> dict[int, list[str]]:
    """location id -> its functions, innermost (the inlined callee) first."""
    strings = profile.string_table
    functions = {f.id: strings[f.name] for f in profile.function}
    return {loc.id: [functions.get(line.function_id, "?") for line in loc.line] or ["?"] for loc in profile.location}


def value_index(profile: Any, wanted: str) -> tuple[int, str, str]:
    """(index into each sample's values, the type's name, its unit) of `wanted`, else the last type."""
    strings = profile.string_table
    types = [(strings[t.type], strings[t.unit]) for t in profile.sample_type]
    index = next((i for i, (name, _) in enumerate(types) if name == wanted), len(types) - 1)
    return index, *types[index]


def flat_and_cumulative(profile: Any, index: int) -> tuple[Counter[str], Counter[str], int]:
    names = function_names(profile)
    flat: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for sample in profile.sample:
        value = sample.value[index]
        stack = [name for location in sample.location_id for name in names.get(location, ["?"])]
        if not stack or not value:
            continue
        total += value
        flat[stack[0]] += value
        for name in set(stack):
            cumulative[name] += value
    return flat, cumulative, total


def amount(value: float, unit: str) -> str:
    if unit == "nanoseconds":
        return f"{value / 1e9:.2f} s"
    if unit == "bytes":
        return human_bytes(value)
    return f"{value:,.0f} {unit}"


def ranked(counter: Counter[str], total: int, unit: str) -> list[str]:
    return [f"{amount(value, unit)} ({value * 100 / total:.1f} %)  {name}" for name, value in counter.most_common(TOP)]


def profile_finding(kind: str, profile: Any, seconds: int) -> Finding:
    index, name, unit = value_index(profile, RANKED_BY[kind])
    flat, cumulative, total = flat_and_cumulative(profile, index)
    component = f"Profile {kind}"
    if not total:
        empty = "no samples" + (": is runtime.SetBlockProfileRate set?" if kind == "block" else "")
        return Finding.ok(component, f"{name}: {empty}", details=HOW_TO_EXPOSE[2:] if kind == "block" else [])
    top_name, top_value = flat.most_common(1)[0]
    sampled = f" over {seconds} s" if kind == "cpu" else ""
    title = f"{amount(total, unit)} {name}{sampled}; hottest: {top_name} ({top_value * 100 / total:.0f} % flat)"
    evidence = ["by flat (the function itself):", *ranked(flat, total, unit)]
    evidence += ["by cumulative (with what it calls):", *ranked(cumulative, total, unit)]
    data = {"kind": kind, "type": name, "unit": unit, "total": total, "flat": flat.most_common(TOP)}
    return Finding.ok(component, title, evidence=evidence, data=data)


# --- goroutines ---------------------------------------------------------------------------------


def goroutine_stacks(text: str) -> Counter[tuple[str, tuple[str, ...]]]:
    """(state, the functions of its stack) -> how many goroutines are there, from `goroutine?debug=2`."""
    groups: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        head = GOROUTINE_HEAD.match(lines[0]) if lines else None
        if head is None:
            continue
        frames = tuple(line.rsplit("(", 1)[0] for line in lines[1::2] if line and not line.startswith("\t"))
        groups[(head.group(1), frames)] += 1
    return groups


def goroutines_finding(text: str) -> Finding:
    groups = goroutine_stacks(text)
    total = sum(groups.values())
    if not total:
        return Finding.error("Profile goroutines", "the goroutine dump could not be read")
    evidence = []
    for (state, frames), count in groups.most_common(TOP):
        outside = [f for f in frames if not f.startswith(("runtime.", "internal/"))] or list(frames)
        evidence.append(f"{count} × [{state}] {' ← '.join(outside[:4])}")
    (state, frames), count = groups.most_common(1)[0]
    title = f"{total} goroutines in {len(groups)} distinct stacks; largest group: {count} [{state}]"
    return Finding.ok("Profile goroutines", title, evidence=evidence, data={"total": total, "groups": len(groups)})


# --- the checks ---------------------------------------------------------------------------------


@runbook.check("profile", component="Profile", section=SECTION, timeout=MAX_SECONDS + EXTRA_SECONDS + 5)
async def api_profile(ctx: CheckContext) -> Finding:
    args = ctx.arg(ProfileArgs)
    path = PATHS[args.kind].format(seconds=args.seconds)
    seconds = args.seconds + EXTRA_SECONDS if args.kind == "cpu" else EXTRA_SECONDS
    status, body = await ctx.targets.api.get_bytes(path, timeout=seconds, limit=MAX_PROFILE_BYTES)
    if status == 404:
        return Finding.skipped(f"Profile {args.kind}", "GET /debug/pprof: not exposed (404)", details=HOW_TO_EXPOSE)
    if status != 200:
        return Finding.error(f"Profile {args.kind}", f"GET {path.split('?')[0]}: HTTP {status}")
    if args.kind == "goroutines":
        return goroutines_finding(body.decode(errors="replace"))
    try:
        return profile_finding(args.kind, decode(body), args.seconds)
    except Exception as exc:  # not a profile: a proxy's page, a truncated body
        return Finding.error(f"Profile {args.kind}", f"not a pprof profile: {type(exc).__name__}")


@runbook.check("profile", component="Host load", section=SECTION)
async def host_load(ctx: CheckContext) -> Finding | list[Finding]:
    """The load average of the machine the bot runs on, when that is the Docker host."""
    try:
        host = await ctx.targets.docker.host_info()
    except (NotConfigured, ConnectionError, TimeoutError):
        return []  # no Docker engine to compare with: the load of some other machine would mislead
    if not same_host(host, read_meminfo()):
        return Finding.skipped("Host load", "the bot does not run on the Docker host: `uptime` and `top` there")
    cpus = host.ncpu or os.cpu_count() or 1
    with open(LOADAVG) as loadavg:
        one, five, fifteen = (float(v) for v in loadavg.read().split()[:3])
    status = Status.CRIT if one > 2 * cpus else Status.WARN if one > cpus else Status.OK
    title = f"load {one:.2f} / {five:.2f} / {fifteen:.2f} (1, 5, 15 min) on {cpus} CPUs"
    details = ["`/erpgo cpu` shows the API container's own CPU use and its top processes"]
    return Finding(status, "Host load", title, details=details, data={"load": [one, five, fifteen], "cpus": cpus})
