"""The runbook registry: verbs, the checks that answer them, and the remediations they may propose.

Runbook modules register with the decorators below; handlers look verbs up here and never
know which module a check lives in.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from bot.findings import Finding


class UsageError(ValueError):
    """Bad arguments for a verb; the message is shown to the user with the verb's usage."""


CheckFunc = Callable[..., Awaitable["Finding | list[Finding]"]]
ArgParser = Callable[[list[str]], dict[str, Any]]


@dataclass
class Check:
    name: str
    func: CheckFunc
    component: str  # what a failure of the check itself is reported as
    section: str
    timeout: float | None  # None: the configured default


@dataclass
class Verb:
    name: str  # "health", "db locks"
    summary: str
    usage: str = ""
    parse: ArgParser | None = None
    checks: list[Check] = field(default_factory=list)
    ack: str = ""

    def parse_args(self, words: list[str]) -> dict[str, Any]:
        if self.parse is None:
            if words:
                raise UsageError(f"`{self.name}` takes no arguments")
            return {}
        return self.parse(words)


@dataclass
class Remediation:
    """A destructive step; runs only through the approval engine.

    Its function is `async def f(ctx: CheckContext, **args) -> str`: it re-checks the world,
    raises Refused("why") when acting would be wrong now, and returns one line saying what it did.
    """

    action: str
    func: Callable[..., Awaitable[str]]
    summary: str
    timeout: float = 30.0


@dataclass
class Triage:
    """Which checks an alert gets: by alert name, or by a label predicate."""

    alertnames: tuple[str, ...]
    checks: list[Check]
    match: Callable[[dict[str, str]], bool] | None = None


class Registry:
    def __init__(self) -> None:
        self.verbs: dict[str, Verb] = {}
        self.checks: dict[str, Check] = {}
        self.remediations: dict[str, Remediation] = {}
        self.triage: list[Triage] = []

    def verb(self, name: str, summary: str, *, usage: str = "", parse: ArgParser | None = None, ack: str = "") -> Verb:
        """Declare a verb; checks attach to it with @check(name, ...)."""
        if name in self.verbs:
            raise ValueError(f"verb {name!r} declared twice")
        verb = Verb(name, summary, usage, parse, ack=ack)
        self.verbs[name] = verb
        return verb

    def check(self, *verbs: str, component: str, section: str, timeout: float | None = None):
        def decorate(func: CheckFunc) -> CheckFunc:
            check = Check(func.__name__, func, component, section, timeout)
            self.checks[check.name] = check
            for name in verbs:
                self.verbs[name].checks.append(check)
            return func

        return decorate

    def remediation(self, action: str, summary: str, *, timeout: float = 30.0):
        def decorate(func):
            self.remediations[action] = Remediation(action, func, summary, timeout)
            return func

        return decorate

    def triage_for(self, *alertnames: str, checks: list[CheckFunc], match=None) -> None:
        self.triage.append(Triage(alertnames, [self.checks[f.__name__] for f in checks], match))

    def find_verb(self, words: list[str]) -> tuple[Verb | None, list[str]]:
        """Longest registered verb that prefixes the words; the rest are its arguments."""
        for size in range(min(len(words), 3), 0, -1):
            name = " ".join(words[:size]).lower()
            if name in self.verbs:
                return self.verbs[name], words[size:]
        return None, words

    def checks_for_alert(self, alertname: str, labels: dict[str, str]) -> list[Check]:
        for rule in self.triage:
            if alertname in rule.alertnames or (rule.match and rule.match(labels)):
                return rule.checks
        return []


registry = Registry()
_loaded = False


def load_runbooks() -> Registry:
    """Import every module of the runbooks package once so their decorators register."""
    global _loaded
    if not _loaded:
        import runbooks

        for module in sorted(pkgutil.iter_modules(runbooks.__path__), key=lambda m: m.name):
            importlib.import_module(f"runbooks.{module.name}")
        _loaded = True
    return registry


class Refused(Exception):
    """A remediation found the world changed since it was proposed and did nothing; says why."""


class Outcome(str):
    """A remediation's one-line result that also offers follow-up proposals (e.g. the revert);
    the approval engine posts those as new approvals in the same thread."""

    proposals: list

    def __new__(cls, text: str, proposals=()):
        outcome = super().__new__(cls, text)
        outcome.proposals = list(proposals)
        return outcome
