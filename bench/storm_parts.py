"""The alert storm's parts that are not the storm: notification bodies of each shape, `/erpgo health`
rounds, and what /proc says of a process (bench/alert_storm)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

from bot.local.slack import LocalSlack
from demo.services import ServiceError

ALERTNAMES = ("HighErrorRate", "DatabaseConnectionPool", "HighResponseTime", "HighMemoryUsage", "ServiceDown")
HEALTH_EVERY_S = 0.5  # /erpgo health during a storm: one command this often, each in a channel of its own


def notification(group: int, indexes: range, truncated: int, channels: int) -> bytes:
    """A version 4 notification of the group carrying the alerts `indexes`, `truncated` more left out."""
    name = ALERTNAMES[group % len(ALERTNAMES)]
    gid = f"g{group:03d}"
    team = f"t{group % channels}"
    common = {"alertname": name, "severity": "warning", "storm_group": gid, "team": team}
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}/{{}}:{{alertname="{name}", storm_group="{gid}"}}',
            "truncatedAlerts": truncated,
            "status": "firing",
            "receiver": "erpgo-bot",
            "groupLabels": {"alertname": name, "storm_group": gid},
            "commonLabels": common,
            "commonAnnotations": {"summary": f"storm {gid}"},
            "externalURL": "http://alertmanager.bench:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {**common, "instance": f"host-{index:05d}"},
                    "annotations": {"summary": f"storm {gid}"},
                    "startsAt": "2025-11-30T01:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.bench/graph",
                    "fingerprint": f"{group:03d}{index:05d}",
                }
                for index in indexes
            ],
        }
    ).encode()


def single_bodies(groups: int, per_group: int, channels: int) -> list[tuple[bytes, int]]:
    """One new alert a notification, the group's others left out (Alertmanager's `max_alerts: 1`)."""
    return [
        (notification(g, range(i, i + 1), per_group - 1, channels), 1) for i in range(per_group) for g in range(groups)
    ]


def grouped_bodies(groups: int, per_group: int, channels: int, step: int) -> list[tuple[bytes, int]]:
    """As Alertmanager sends a storm: each group grows by `step` alerts a round, and each of its
    notifications carries every alert the group has (truncatedAlerts 0)."""
    sizes = list(range(step, per_group + 1, step))
    if not sizes or sizes[-1] != per_group:
        sizes.append(per_group)
    return [(notification(g, range(size), 0, channels), size) for size in sizes for g in range(groups)]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def max_per_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window)."""
    times, best, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def rss_mb(pid: int, field: str = "VmHWM") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time the process has used so far; zeros when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def steal_seconds() -> float:
    """CPU time the hypervisor gave to others (all CPUs): a busy host slows a bench down."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


async def health_once(slack: LocalSlack, channel: str) -> float:
    """`/erpgo health` in `channel`: ms from the command to its report in Slack."""
    sent = time.monotonic()
    result = await slack.slash("health", channel_id=channel, channel_name=channel.lower())
    if result.status != 200:
        raise ServiceError(f"/erpgo health answered HTTP {result.status}")
    head = await slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.at >= sent
            and c.args.get("channel") == channel
            and not c.args.get("thread_ts")
        ),
        timeout=30,
    )
    return (head.at - sent) * 1000


class HealthRounds:
    """`/erpgo health` as people send it: one command in a channel, the next a moment later in another
    (so what is measured is the report, not the bot keeping Slack's pace in one channel)."""

    def __init__(self, slack: LocalSlack):
        self.slack, self.count = slack, 0

    async def one(self) -> float:
        self.count += 1
        return await health_once(self.slack, f"C0HEALTH{self.count:04d}")

    async def quiet(self, rounds: int) -> list[float]:
        times = []
        for _ in range(rounds):
            times.append(await self.one())
            await asyncio.sleep(HEALTH_EVERY_S)  # spacing, as people type
        return times

    async def until(self, done: asyncio.Event) -> list[float]:
        times = []
        while not done.is_set():
            times.append(await self.one())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), HEALTH_EVERY_S)
        return times
