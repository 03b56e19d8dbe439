"""Guide: "Infrastructure Issues › Memory Issues" step 2 — the Go runtime's memory settings as set in the
API container (GOGC, GOMEMLIMIT, GODEBUG: tuning values, never secrets, so shown with their values) and
what to change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.core.units import human_bytes

GO_MEMORY_ENV = ("GOGC", "GOMEMLIMIT", "GODEBUG")
GOMEMLIMIT_SHARE = 0.9  # of the container's limit: room for the stacks and the runtime outside the heap
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def go_memory_env(inspect: Mapping[str, Any]) -> dict[str, str | None]:
    """GOGC, GOMEMLIMIT and GODEBUG as the container's environment sets them (None: not set)."""
    values: dict[str, str | None] = dict.fromkeys(GO_MEMORY_ENV)
    for entry in (inspect.get("Config") or {}).get("Env") or []:
        name, _, value = entry.partition("=")
        if name in values:
            values[name] = value
    return values


def parse_gomemlimit(text: str) -> int | None:
    """GOMEMLIMIT's own syntax (`200MiB`, `1GiB`, plain bytes) in bytes; None for `off` or nonsense."""
    match = _LIMIT.match(text)
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def suggested_gomemlimit(memory_limit: int) -> str:
    return f"{int(memory_limit * GOMEMLIMIT_SHARE / 1024**2)}MiB"


def gomemlimit_advice(value: str | None, memory_limit: int) -> list[str]:
    if not memory_limit:
        return [] if value else ["no memory limit on the container: GOMEMLIMIT would have nothing to follow"]
    if not value:
        return [
            f"without GOMEMLIMIT the Go GC does not know the {human_bytes(memory_limit)} limit: the OOM killer "
            f"may strike first — set GOMEMLIMIT={suggested_gomemlimit(memory_limit)} (≈ 90 % of the limit) in "
            "the service's `environment:` and recreate the container (`docker compose up -d api`)"
        ]
    limit = parse_gomemlimit(value)
    if limit is not None and limit > memory_limit * GOMEMLIMIT_SHARE:
        return [
            f"GOMEMLIMIT={value} is above 90 % of the container's {human_bytes(memory_limit)} limit: the kernel "
            f"kills the process before the GC works harder — lower it to {suggested_gomemlimit(memory_limit)}"
        ]
    return []


def gogc_advice(value: str | None, gomemlimit: str | None) -> list[str]:
    if value is None or value == "":
        return []
    if value.strip().lower() == "off":
        if not gomemlimit:
            return ["GOGC=off without GOMEMLIMIT: the GC never runs and the heap grows until the process is killed"]
        return ["GOGC=off: the GC runs only when the heap nears GOMEMLIMIT (memory used stays close to it)"]
    if value.isdigit() and int(value) > 100:
        return [f"GOGC={value} lets the heap grow to {int(value) + 100} % of the live heap before each GC: more memory"]
    if value.isdigit() and int(value) < 100:
        return [f"GOGC={value} collects more often: less memory, more CPU spent in the GC"]
    return []


def godebug_advice(value: str | None) -> list[str]:
    if not value:
        return []
    advice = []
    if "gctrace=1" in value:
        advice.append("GODEBUG gctrace=1 prints one line per GC on stderr: `/erpgo logs` shows the heap at each GC")
    if "madvdontneed=0" in value:
        advice.append("GODEBUG madvdontneed=0: freed memory stays counted in the container's usage until reclaimed")
    return advice


def go_memory_settings(inspect: Mapping[str, Any], memory_limit: int) -> list[str]:
    """The settings as set, then what to change."""
    values = go_memory_env(inspect)
    shown = [f"{name}={value}" if value else f"{name} not set" for name, value in values.items()]
    return [
        "Go memory settings: " + ", ".join(shown),
        *gomemlimit_advice(values["GOMEMLIMIT"], memory_limit),
        *gogc_advice(values["GOGC"], values["GOMEMLIMIT"]),
        *godebug_advice(values["GODEBUG"]),
    ]
