"""Who holds a host port, when the bot can see it: the listening socket in /proc/net/tcp{,6} and the process
whose file descriptors include it (a bounded walk of /proc). Only meaningful when the bot runs on the Docker
host in the host's network namespace; elsewhere nothing is found and the caller says so."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

PROC = Path("/proc")
TCP_TABLES = (PROC / "net" / "tcp", PROC / "net" / "tcp6")
LISTEN = "0A"
MAX_PROCESSES = 4000
MAX_FDS_PER_PROCESS = 2000


def listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets listening on TCP `port` in this network namespace."""
    inodes: set[str] = set()
    for table in TCP_TABLES:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def owner_of(inodes: set[str]) -> str | None:
    """`name (pid N)` of the first process holding one of the socket inodes; None when none is visible."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for process in islice(PROC.iterdir(), MAX_PROCESSES):
        if not process.name.isdigit():
            continue
        try:
            descriptors = list(islice((process / "fd").iterdir(), MAX_FDS_PER_PROCESS))
            for descriptor in descriptors:
                if os.readlink(descriptor) in wanted:
                    return f"{(process / 'comm').read_text().strip()} (pid {process.name})"
        except OSError:  # it exited meanwhile, or is not ours to read
            continue
    return None


def port_holder(port: int) -> str | None:
    """The process listening on TCP `port` on this machine, as `name (pid N)`; None when the bot cannot see one."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    return owner_of(inodes) or "a process whose owner this bot cannot see"
