"""DNS and TCP probes run inside a container, with whatever tools its image has — as argument lists, never
a shell string.

Images differ: glibc and musl images have `getent`, busybox builds may have `nslookup`, `nc` with or
without `-z`, and a `wget` that cannot resolve names (a static busybox linked against glibc crashes in its
resolver). So the tools are probed first (`Toolbox`), and each probe says which tool answered:

- DNS: `getent hosts NAME`, else `nslookup NAME`, else `nc -w 2 NAME 1` — nc prints the address it
  resolved in its "can't connect" message, so a refused port 1 still shows what the name resolves to.
- TCP: `nc -w 2 HOST PORT` with stdin closed (no `-z` needed: it connects, sends nothing, ends when the
  server closes), bounded by `timeout` when the image has it; else `wget` to the resolved address.

Every parser is pure; they are tested on the outputs the tools really print.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Literal

from bot.core.redact import shorten
from bot.targets.docker import Docker

PROBE_SECONDS = 4.0  # one exec, resolution and connect included
CONNECT_SECONDS = 2  # the tools' own connect timeout (-w, -T)
KILL_AFTER = 3  # `timeout N nc …`: a connection the server keeps open still ends
TIMEOUT_EXIT = (124, 143)  # what `timeout` returns after killing the command
NO_ANSWER = -1  # the exec itself passed its deadline
TOOLS = ("getent", "nslookup", "nc", "wget", "timeout")
DNS_TOOLS = ("getent", "nslookup", "nc")
TCP_TOOLS = ("nc", "wget")

TcpState = Literal["open", "refused", "timeout", "unresolved", "unreachable", "unknown"]

_IN_PARENS = re.compile(r"\(([0-9A-Fa-f.:]+)\)")
_NSLOOKUP_ADDRESS = re.compile(r"^Address(?:\s+\d+)?:\s*([0-9A-Fa-f.:]+)")
_NOT_FOUND = re.compile(r"bad address|can't resolve|NXDOMAIN|server can't find|Name or service not known", re.I)


@dataclass
class Toolbox:
    container: str
    available: set[str] = field(default_factory=set)
    crashed: set[str] = field(default_factory=set)  # tools that died of a signal when used

    def first(self, tools: tuple[str, ...]) -> str | None:
        return next((t for t in tools if t in self.available and t not in self.crashed), None)

    def describe(self) -> str:
        found = [t for t in TOOLS if t in self.available]
        line = "tools in the image: " + (", ".join(found) if found else "none of " + ", ".join(TOOLS))
        if self.crashed:
            line += f" ({', '.join(sorted(self.crashed))} crashed when used)"
        return line


@dataclass(frozen=True)
class Resolution:
    name: str
    tool: str | None
    resolved: bool | None  # None: this probe could not tell
    addresses: list[str]
    detail: str  # what the tool said, one line


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    tool: str | None
    state: TcpState
    address: str | None  # the address the tool connected to, when it said
    detail: str


async def toolbox(docker: Docker, container: str) -> Toolbox:
    found = await asyncio.gather(*(docker.has_tool(container, tool) for tool in TOOLS))
    return Toolbox(container, {tool for tool, present in zip(TOOLS, found, strict=True) if present})


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return shorten(lines[-1], 200, "") if lines else ""


def _crashed(code: int) -> bool:
    return code >= 128 and code not in TIMEOUT_EXIT


# --- parsers -------------------------------------------------------------------------------------


def parse_getent(name: str, code: int, output: str) -> Resolution:
    if code == 0:
        addresses = list(dict.fromkeys(line.split()[0] for line in output.splitlines() if line.split()))
        return Resolution(name, "getent", True, addresses, "")
    if code == 2:  # "key could not be found"
        return Resolution(name, "getent", False, [], "not found")
    return Resolution(name, "getent", None, [], _last_line(output) or f"exit {code}")


def parse_nslookup(name: str, code: int, output: str) -> Resolution:
    """busybox and bind nslookup: the answer's addresses follow a `Name:` line (the server's come before)."""
    addresses: list[str] = []
    answering = False
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("Name:"):
            answering = True
        elif answering and (match := _NSLOOKUP_ADDRESS.match(stripped)):
            addresses.append(match.group(1))
    if addresses:
        return Resolution(name, "nslookup", True, list(dict.fromkeys(addresses)), "")
    if _NOT_FOUND.search(output) or code != 0:
        return Resolution(name, "nslookup", False, [], _last_line(output) or f"exit {code}")
    return Resolution(name, "nslookup", None, [], _last_line(output))


def parse_nc(host: str, port: int, code: int, output: str, tool: str = "nc") -> Connection:
    """nc's verdict on one connect: 0 connected; otherwise its message says why (busybox and netcat forms)."""
    said = _last_line(output)
    address = match.group(1) if (match := _IN_PARENS.search(output)) else None
    if code == 0:
        return Connection(host, port, tool, "open", address, "")
    if code == NO_ANSWER:  # nc's own -w bounds resolving and connecting, so it most likely connected
        return Connection(host, port, tool, "unknown", None, "still running after its deadline: probably connected")
    if code in TIMEOUT_EXIT:  # still connected when `timeout` ended it: the server kept the connection open
        return Connection(host, port, tool, "open", address, "connected (the server kept the connection open)")
    lowered = output.lower()
    if _NOT_FOUND.search(output):
        return Connection(host, port, tool, "unresolved", None, said)
    if "refused" in lowered:
        return Connection(host, port, tool, "refused", address, said)
    if "timed out" in lowered:
        return Connection(host, port, tool, "timeout", address, said)
    if "unreachable" in lowered or "no route" in lowered:
        return Connection(host, port, tool, "unreachable", address, said)
    return Connection(host, port, tool, "unknown", address, said or f"exit {code}")


def resolution_from_nc(name: str, connection: Connection) -> Resolution:
    """What a connect by name says about the name: resolved (maybe to a shown address), not, or unknown."""
    if connection.state == "unresolved":
        return Resolution(name, "nc", False, [], connection.detail)
    if connection.state in ("open", "refused", "unreachable") or connection.address:
        addresses = [connection.address] if connection.address else []
        return Resolution(name, "nc", True, addresses, "" if addresses else "resolves (nc does not show the address)")
    return Resolution(name, "nc", None, [], connection.detail)


def parse_wget(host: str, port: int, code: int, output: str) -> Connection:
    """wget to http://ADDRESS:PORT/: anything but refused, timed out or unreachable means something answered."""
    said = _last_line(output)
    lowered = output.lower()
    if code == NO_ANSWER:
        return Connection(host, port, "wget", "timeout", host, said)
    if "refused" in lowered:
        return Connection(host, port, "wget", "refused", host, said)
    if "timed out" in lowered:
        return Connection(host, port, "wget", "timeout", host, said)
    if "unreachable" in lowered or "no route" in lowered:
        return Connection(host, port, "wget", "unreachable", host, said)
    return Connection(host, port, "wget", "open", host, "" if code == 0 else f"answered, not as HTTP: {said}")


# --- probes --------------------------------------------------------------------------------------


async def _run(docker: Docker, box: Toolbox, tool: str, argv: list[str]) -> tuple[int, str] | None:
    """The exit code and output (NO_ANSWER past the deadline), or None when the tool crashed: it is
    not used again."""
    try:
        code, output = await docker.exec_argv(box.container, argv, PROBE_SECONDS, max_output=4096)
    except TimeoutError:
        return NO_ANSWER, f"no answer within {PROBE_SECONDS:g} s (timed out)"
    if _crashed(code):
        box.crashed.add(tool)
        return None
    return code, output


async def resolve(docker: Docker, box: Toolbox, name: str) -> Resolution:
    """What `name` resolves to inside the container, by the first DNS tool that answers."""
    for tool in DNS_TOOLS:
        if box.first((tool,)) is None:
            continue
        if tool == "nc":
            connection = await connect(docker, box, name, 1, tools=("nc",))
            if connection.tool is not None:
                return resolution_from_nc(name, connection)
            continue
        argv = ["getent", "hosts", name] if tool == "getent" else ["nslookup", name]
        ran = await _run(docker, box, tool, argv)
        if ran is None:
            continue
        if ran[0] == NO_ANSWER:
            return Resolution(name, tool, None, [], ran[1])
        return parse_getent(name, *ran) if tool == "getent" else parse_nslookup(name, *ran)
    return Resolution(name, None, None, [], "no DNS tool in the image (" + ", ".join(DNS_TOOLS) + ")")


def _nc_argv(box: Toolbox, host: str, port: int) -> list[str]:
    argv = ["nc", "-w", str(CONNECT_SECONDS), host, str(port)]
    if "timeout" in box.available:
        argv = ["timeout", str(CONNECT_SECONDS + KILL_AFTER), *argv]
    return argv


async def connect(
    docker: Docker,
    box: Toolbox,
    host: str,
    port: int,
    *,
    address: str | None = None,
    tools: tuple[str, ...] = TCP_TOOLS,
) -> Connection:
    """Whether the container can open a TCP connection to host:port. wget is only given an address
    (`address`, or `host` when it is one), never a name it would have to resolve."""
    for tool in tools:
        if box.first((tool,)) is None:
            continue
        if tool == "nc":
            ran = await _run(docker, box, "nc", _nc_argv(box, host, port))
            if ran is not None:
                return parse_nc(host, port, *ran)
            continue
        target = address or (host if _is_address(host) else None)
        if target is None:
            continue
        url_host = f"[{target}]" if ":" in target else target
        argv = ["wget", "-q", "-T", str(CONNECT_SECONDS), "-O", "/dev/null", f"http://{url_host}:{port}/"]
        ran = await _run(docker, box, "wget", argv)
        if ran is not None:
            return parse_wget(target, port, *ran)
    return Connection(host, port, None, "unknown", None, "no TCP tool that works in the image (nc, wget)")


def _is_address(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", host)) and any(ch in host for ch in ".:")
