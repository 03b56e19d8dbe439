"""The runbook registry: verbs, the checks that answer them, the remediations they may propose, and
which checks an alert gets.

Each runbook module declares what it has on a `Runbook` of its own; the composition root
(bot/app.py) installs an explicit list of them into one `Registry`, adds the bot's own verbs, then
resolves the triage rules — a rule naming a check nobody registered stops the bot at start.
Handlers look verbs up in the registry and never know which module a check lives in.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.findings import Finding, Proposal

SUGGEST_CUTOFF = 0.7  # difflib's similarity a typo must reach to be offered as "did you mean"


class UsageError(ValueError):
    """Bad arguments for a verb; the message is shown to the user with the verb's usage."""


class RegistryError(Exception):
    """The runbooks do not fit together (a duplicate verb, an unknown check name in triage…)."""


CheckFunc = Callable[..., Awaitable["Finding | list[Finding]"]]
ArgParser = Callable[[list[str]], dict[str, Any]]
# a verb of the bot itself (approvals, audit, alerts): async (runtime, invocation, args) -> message
BotAnswer = Callable[..., Awaitable[Any]]


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
    answer: BotAnswer | None = None  # set for the bot's own verbs, which answer with a message, not checks
    private: bool = False  # the report is shown to the asker alone (a pasted token, someone's permissions)

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


@dataclass
class TriageRule:
    """A triage rule as a runbook declares it: check names, resolved when installed."""

    alertnames: tuple[str, ...]
    check_names: tuple[str, ...]
    match: Callable[[dict[str, str]], bool] | None = None


class Runbook:
    """What one runbook module declares, before it is installed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.verbs: list[Verb] = []
        self.checks: list[tuple[tuple[str, ...], Check]] = []  # (verbs it answers, check)
        self.remediations: list[Remediation] = []
        self.triage: list[TriageRule] = []

    def verb(
        self,
        name: str,
        summary: str,
        *,
        usage: str = "",
        parse: ArgParser | None = None,
        ack: str = "",
        private: bool = False,
    ) -> Verb:
        """Declare a verb; checks attach to it with @check(name, ...). A `private` verb's report is
        seen by the asker alone, never posted in the channel."""
        verb = Verb(name, summary, usage, parse, ack=ack, private=private)
        self.verbs.append(verb)
        return verb

    def bot_verb(self, name: str, summary: str, *, usage: str = "") -> Callable[[BotAnswer], BotAnswer]:
        """Declare a verb of the bot itself, answered by the decorated function with a message."""

        def decorate(func: BotAnswer) -> BotAnswer:
            self.verbs.append(Verb(name, summary, usage, answer=func))
            return func

        return decorate

    def check(
        self, *verbs: str, component: str, section: str, timeout: float | None = None
    ) -> Callable[[CheckFunc], CheckFunc]:
        def decorate(func: CheckFunc) -> CheckFunc:
            self.checks.append((verbs, Check(func.__name__, func, component, section, timeout)))
            return func

        return decorate

    def remediation(
        self, action: str, summary: str, *, timeout: float = 30.0
    ) -> Callable[[Callable[..., Awaitable[str]]], Callable[..., Awaitable[str]]]:
        def decorate(func: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
            self.remediations.append(Remediation(action, func, summary, timeout))
            return func

        return decorate

    def triage_for(
        self,
        *alertnames: str,
        checks: list[str] | tuple[str, ...],
        match: Callable[[dict[str, str]], bool] | None = None,
    ) -> None:
        """Alerts with one of these names (or whose labels `match`) get the checks named `checks`."""
        self.triage.append(TriageRule(alertnames, tuple(checks), match))


class Registry:
    def __init__(self) -> None:
        self.verbs: dict[str, Verb] = {}
        self.checks: dict[str, Check] = {}
        self.remediations: dict[str, Remediation] = {}
        self.triage: list[Triage] = []
        self._rules: list[tuple[str, TriageRule]] = []  # (runbook, rule) until resolve_triage()

    def install(self, *runbooks: Runbook) -> Registry:
        """Add the runbooks' verbs first, then attach their checks (so a check may answer a verb of
        another runbook), their remediations and their triage rules (resolved later)."""
        for runbook in runbooks:
            for verb in runbook.verbs:
                if verb.name in self.verbs:
                    raise RegistryError(f"verb {verb.name!r} declared twice (again by runbook {runbook.name})")
                self.verbs[verb.name] = replace(verb, checks=[])  # a registry of its own: built anew each time
        for runbook in runbooks:
            for verbs, check in runbook.checks:
                if check.name in self.checks:
                    raise RegistryError(f"check {check.name!r} registered twice (again by runbook {runbook.name})")
                self.checks[check.name] = check
                for name in verbs:
                    if name not in self.verbs:
                        raise RegistryError(
                            f"check {check.name!r} of runbook {runbook.name} answers unknown verb {name!r}"
                        )
                    self.verbs[name].checks.append(check)
            for remediation in runbook.remediations:
                if remediation.action in self.remediations:
                    raise RegistryError(f"remediation {remediation.action!r} registered twice")
                self.remediations[remediation.action] = remediation
            self._rules += [(runbook.name, rule) for rule in runbook.triage]
        return self

    def resolve_triage(self) -> Registry:
        """Turn every triage rule's check names into checks; an unknown name is a RegistryError."""
        for runbook, rule in self._rules:
            unknown = [name for name in rule.check_names if name not in self.checks]
            if unknown:
                what = ", ".join(rule.alertnames) or "a label rule"
                raise RegistryError(
                    f"triage of {what} (runbook {runbook}) names unknown check(s): {', '.join(unknown)}"
                )
            self.triage.append(Triage(rule.alertnames, [self.checks[name] for name in rule.check_names], rule.match))
        self._rules = []
        return self

    def find_verb(self, words: list[str]) -> tuple[Verb | None, list[str]]:
        """Longest registered verb that prefixes the words; the rest are its arguments."""
        for size in range(min(len(words), 3), 0, -1):
            name = " ".join(words[:size]).lower()
            if name in self.verbs:
                return self.verbs[name], words[size:]
        return None, words

    def suggest(self, words: list[str], instead_of: Verb | None = None) -> Verb | None:
        """The verb a mistyped command most likely meant (`helth` → health, `db lcoks` → db locks), or
        None. Longer verbs first, so that a mistyped sub-verb is not taken for its parent verb; with
        `instead_of` (the verb found, whose arguments did not parse) only a longer verb counts."""
        shortest = instead_of.name.count(" ") + 2 if instead_of else 1
        for size in range(min(len(words), 3), shortest - 1, -1):
            typed = " ".join(words[:size]).lower()
            names = [name for name in self.verbs if name.count(" ") == size - 1 and name != typed]
            close = difflib.get_close_matches(typed, names, n=1, cutoff=SUGGEST_CUTOFF)
            if close:
                return self.verbs[close[0]]
        return None

    def checks_for_alert(self, alertname: str, labels: dict[str, str]) -> list[Check]:
        for rule in self.triage:
            if alertname in rule.alertnames or (rule.match and rule.match(labels)):
                return rule.checks
        return []


class Refused(Exception):
    """A remediation found the world changed since it was proposed and did nothing; says why."""


class Failed(Exception):
    """A remediation acted but could not finish; its message (several lines) says what was done and
    where things are now, and is recorded as the result of a failed approval; it may offer follow-up
    proposals like an Outcome."""

    def __init__(self, text: str, proposals: tuple[Proposal, ...] | list[Proposal] = ()) -> None:
        super().__init__(text)
        self.proposals = list(proposals)


class Outcome(str):
    """A remediation's one-line result that also offers follow-up proposals (e.g. the revert);
    the approval engine posts those as new approvals in the same thread."""

    proposals: list[Proposal]

    def __new__(cls, text: str, proposals: tuple[Proposal, ...] | list[Proposal] = ()) -> Outcome:
        outcome = super().__new__(cls, text)
        outcome.proposals = list(proposals)
        return outcome
