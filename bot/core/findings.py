"""What a check returns: Findings (a status and what was seen) and Proposals (a remediation to approve)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.series import Chart


class Status(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"  # not configured / not exposed: nothing to worry about, nothing checked
    WARN = "warn"
    ERROR = "error"  # the check itself could not finish (timeout, refused, bad data)
    CRIT = "crit"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def emoji(self) -> str:
        return _EMOJI[self]

    @property
    def label(self) -> str:
        return _LABEL[self]


_RANK = {Status.OK: 0, Status.SKIPPED: 0, Status.WARN: 1, Status.ERROR: 2, Status.CRIT: 3}
_EMOJI = {
    Status.OK: ":large_green_circle:",
    Status.SKIPPED: ":white_circle:",
    Status.WARN: ":large_yellow_circle:",
    Status.ERROR: ":red_circle:",
    Status.CRIT: ":red_circle:",
}
_LABEL = {
    Status.OK: "OK",
    Status.SKIPPED: "SKIPPED",
    Status.WARN: "WARNING",
    Status.ERROR: "ERROR",
    Status.CRIT: "CRITICAL",
}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status; OK when there is none. SKIPPED never outranks OK."""
    result = Status.OK
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


@dataclass
class Proposal:
    """A remediation a check suggests; it runs only after someone else approves it."""

    action: str  # registered remediation name, e.g. "db.terminate"
    args: dict[str, Any]
    summary: str  # what will happen, to what: "Terminate backend 4242 (app: billing)"
    reason: str = ""
    preview: str = ""  # the exact statement or command that will run
    # what it acts on, when several checks of one report may propose it (a container's id): one
    # approval per (action, target); by default the arguments themselves
    target: str = field(default="", compare=False)
    # the check that proposed it and with what (bot.core.scope), stamped when its check ran
    scope: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def target_key(self) -> str:
        return self.target or json.dumps(self.args, sort_keys=True, default=str)


@dataclass
class Finding:
    status: Status
    component: str  # "PostgreSQL", "Redis", "Docker erpgo-api", …
    title: str  # one line
    details: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # raw lines: rows, log lines
    section: str = ""  # the guide section it automates
    proposals: list[Proposal] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable figures for --json and tests
    once: str = ""  # said once per report: a later finding with the same key is dropped (a dead database)
    chart: Chart | None = None  # series worth a picture: shared as a PNG in the report's thread

    @classmethod
    def ok(cls, component: str, title: str, **kw: Any) -> Finding:
        return cls(Status.OK, component, title, **kw)

    @classmethod
    def warn(cls, component: str, title: str, **kw: Any) -> Finding:
        return cls(Status.WARN, component, title, **kw)

    @classmethod
    def crit(cls, component: str, title: str, **kw: Any) -> Finding:
        return cls(Status.CRIT, component, title, **kw)

    @classmethod
    def error(cls, component: str, title: str, **kw: Any) -> Finding:
        return cls(Status.ERROR, component, title, **kw)

    @classmethod
    def skipped(cls, component: str, title: str, **kw: Any) -> Finding:
        return cls(Status.SKIPPED, component, title, **kw)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("chart")  # the picture's series; `data` has the figures
        out["status"] = self.status.value
        del out["once"]
        for proposal in out["proposals"]:
            del proposal["target"], proposal["scope"]
        return out
