"""Guide: "Infrastructure Issues › Disk Space Issues › Check Disk Usage" — the `du -sh /* | sort -hr`
half of step 1: the largest files under ERPGO_DISK_PATHS.

The walk is bounded (a number of entries and a time budget), stays on the filesystem it started on (as
`du -x`), and never follows a symbolic link: a link to `/` must not turn a look at /var/lib/docker into a
walk of the whole machine. What the bound left unseen is said.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import stat
import time
from dataclasses import dataclass, field

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Runbook
from bot.core.units import human_bytes

runbook = Runbook("disk.files")

SECTION = "Infrastructure Issues › Disk Space Issues › Check Disk Usage"
TOP_FILES = 10
MAX_ENTRIES = 200_000  # entries looked at under one path before the walk stops
WALK_SECONDS = 8.0


@dataclass
class Walk:
    """What a bounded walk under one path found."""

    root: str
    largest: list[tuple[int, str]] = field(default_factory=list)  # a min-heap of (size, path)
    entries: int = 0
    unreadable: int = 0
    stopped: str = ""  # why the walk stopped early ("" when it saw everything)

    def keep(self, size: int, path: str) -> None:
        if len(self.largest) < TOP_FILES:
            heapq.heappush(self.largest, (size, path))
        elif size > self.largest[0][0]:
            heapq.heapreplace(self.largest, (size, path))


def walk(root: str, max_entries: int = MAX_ENTRIES, seconds: float = WALK_SECONDS) -> Walk:
    """The TOP_FILES largest regular files under root, without following links or leaving its filesystem."""
    found = Walk(root)
    device = os.lstat(root).st_dev
    deadline = time.monotonic() + seconds
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    found.entries += 1
                    if found.entries > max_entries or time.monotonic() > deadline:
                        found.stopped = f"stopped after {found.entries - 1:,} entries" + (
                            "" if found.entries > max_entries else f" ({seconds:g} s)"
                        )
                        return found
                    visit(entry, device, pending, found)
        except OSError:
            found.unreadable += 1
    return found


def visit(entry: os.DirEntry[str], device: int, pending: list[str], found: Walk) -> None:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        found.unreadable += 1
        return
    if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
        pending.append(entry.path)
    elif stat.S_ISREG(info.st_mode):
        found.keep(info.st_blocks * 512 if info.st_blocks else info.st_size, entry.path)


def walk_finding(found: Walk) -> Finding:
    component = f"Largest files {found.root}"
    largest = sorted(found.largest, reverse=True)
    if not largest:
        return Finding.ok(component, "no files", data={"files": [], "entries": found.entries})
    lines = [f"{human_bytes(size)}  {path}" for size, path in largest]
    details = [f"looked at {found.entries:,} entries on its filesystem, never following links"]
    if found.stopped:
        details.append(f"the walk {found.stopped}: larger files may lie in what it did not reach")
    if found.unreadable:
        details.append(f"{found.unreadable:,} entries could not be read by the bot")
    title = f"largest: {human_bytes(largest[0][0])} {largest[0][1]}"
    data = {"files": [{"path": path, "bytes": size} for size, path in largest], "entries": found.entries}
    return Finding.ok(component, title, details=details, evidence=lines, data=data)


def walk_failed(root: str, exc: OSError) -> Finding:
    return Finding.error(f"Largest files {root}", f"cannot walk it: {exc.strerror or type(exc).__name__}")


async def largest_under(root: str) -> Finding:
    try:
        return walk_finding(await asyncio.to_thread(walk, root))
    except OSError as exc:
        return walk_failed(root, exc)


@runbook.check("disk", component="Largest files", section=SECTION, timeout=WALK_SECONDS + 4)
async def largest_files(ctx: CheckContext) -> list[Finding]:
    paths = list(dict.fromkeys(ctx.settings.erpgo_disk_paths))
    if not paths:
        return []  # the filesystem check already says ERPGO_DISK_PATHS is not set
    return list(await asyncio.gather(*(largest_under(path) for path in paths)))
