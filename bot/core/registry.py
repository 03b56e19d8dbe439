"""The runbook registry: verbs, the checks that answer them, the remediations they may propose, and
which checks an alert gets.

Each runbook module declares what it has on a `Runbook` of its own; the composition root
(bot/app.py) installs an explicit list of them into one `Registry`, adds the bot's own verbs, then
resolves the triage rules — a rule naming a check nobody registered stops the bot at start.
Handlers look verbs up in the registry and never know which module a check lives in.
"""

from __future__ import annotations

import difflib
import inspect
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
# a verb of the bot itself (approvals, audit, alerts): async (runtime, invocation, args) -> message
BotAnswer = Callable[..., Awaitable[Any]]


class Args:
    """A verb's parsed arguments: one small frozen dataclass per verb, declared next to its checks and
    made by its parser, which the router runs before any check (a bad argument is the usage message)."""

    def needs_permission(self, settings: Any) -> str | None:
        """The policy permission these arguments need beyond the verb itself (e.g. tls.any_endpoint), or None."""
        return None


@dataclass(frozen=True)
class NoArgs(Args):
    """The arguments of a verb that takes none (and of a triage or an approval's re-check)."""


NO_ARGS = NoArgs()


@dataclass(frozen=True)
class ContainerArgs(Args):
    """`[container]`: the verbs that read one container (default: the API, or the one an alert names);
    the router refuses a container the bot does not watch before any check runs."""

    container: str | None = None


ArgParser = Callable[[list[str]], Args]


@dataclass
class Check:
    name: str
    func: CheckFunc
    component: str  # what a failure of the check itself is reported as
    section: str
    timeout: float | None  # None: the configured default
    proposes: tuple[str, ...] = ()  # the actions its findings may propose (declared remediations)


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

    def parse_args(self, words: list[str]) -> Args:
        if self.parse is None:
            if words:
                raise UsageError(f"`{self.name}` takes no arguments")
            return NO_ARGS
        return self.parse(words)


PROPOSAL_WORDS = {"summary", "why", "preview", "target"}  # propose()'s own keywords


@dataclass(frozen=True)
class Settle:
    """How long the world gets before an action is judged: the first look after `at_least` seconds
    (a started container must stay up), then looks again while the verification cannot tell yet,
    until `at_most` has passed (a restart: until healthy)."""

    at_least: float = 0.0
    at_most: float = 5.0  # a termination: a few seconds


@dataclass(frozen=True)
class Verdict:
    """What a verification found: fixed (True), not fixed (False) or could not tell (None); what is
    seen now ("no blocked sessions"), and for not fixed what to try next."""

    fixed: bool | None
    after: str
    next_step: str = ""


# async (ctx, **the remediation's arguments) -> Verdict; by default the proposing check, run again
VerifyFunc = Callable[..., Awaitable[Verdict]]


@dataclass
class Remediation:
    """A destructive step, declared once by its runbook; runs only through the approval engine.

    Its function is `async def f(ctx, *, arg: type, ...) -> str`: the keyword arguments are the
    remediation's typed arguments (stored with the approval as JSON), it re-checks the world, raises
    Refused("why") when acting would be wrong now, and returns one line saying what it did. Checks
    propose it through `propose(...)`, which refuses arguments the function does not take."""

    action: str
    func: Callable[..., Awaitable[str]]
    summary: str
    timeout: float = 30.0
    verify: VerifyFunc | None = None  # None: the check that proposed it, run again on the same target
    settle: Settle = Settle()

    def __post_init__(self) -> None:
        self._signature = inspect.signature(self.func)
        _context, *arguments = self._signature.parameters.values()
        self.arguments = {p.name: p for p in arguments}
        loose = [p.name for p in arguments if p.annotation is p.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if loose:
            raise RegistryError(f"remediation {self.action!r}: every argument must be named and typed ({loose})")
        if taken := PROPOSAL_WORDS & set(self.arguments):
            raise RegistryError(f"remediation {self.action!r}: {sorted(taken)} name the proposal itself")

    async def __call__(self, ctx: Any, **args: Any) -> str:
        return await self.func(ctx, **args)

    def check_args(self, args: dict[str, Any]) -> None:
        """RegistryError unless `args` are exactly what the remediation takes (every required one)."""
        try:
            self._signature.bind(None, **args)
        except TypeError as exc:
            raise RegistryError(f"remediation {self.action!r} proposed with wrong arguments: {exc}") from None

    def propose(self, *, summary: str, why: str = "", preview: str = "", target: str = "", **args: Any) -> Proposal:
        """A proposal of this remediation; wrong arguments are a RegistryError (a bug, found by tests).
        `why`: the reason shown with it; `target`: what it acts on, when several checks of a report may
        propose it (one approval per action and target)."""
        self.check_args(args)
        return Proposal(self.action, args, summary, why, preview, target=target)


@dataclass
class Triage:
    """Which checks an alert gets: by alert name, or by a label predicate."""

    alertnames: tuple[str, ...]
    checks: list[Check]
    match: Callable[[dict[str, str]], bool] | None = None
    precedence: int = 50


# Triage precedence, declared where a rule is: the lowest number wins when several rules take an alert.
FIRST = 10  # takes an alert before the section rules (an outage before a single container's start)
SECTION = 50  # the default: the runbook of the guide section the alert is about
FALLBACK = 90  # the generic rules, for alerts no section claims


@dataclass
class TriageRule:
    """A triage rule as a runbook declares it: check names, resolved when installed."""

    alertnames: tuple[str, ...]
    check_names: tuple[str, ...]
    match: Callable[[dict[str, str]], bool] | None = None
    precedence: int = SECTION


class Runbook:
    """What one runbook module declares, before it is installed."""

    def __init__(self, name: str, *, precedence: int = SECTION) -> None:
        self.name = name
        self.precedence = precedence  # of its triage rules, unless a rule says otherwise
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
        self,
        *verbs: str,
        component: str,
        section: str,
        timeout: float | None = None,
        proposes: tuple[str, ...] = (),
    ) -> Callable[[CheckFunc], CheckFunc]:
        """Declare a check answering `verbs`; `proposes` names the remediations its findings may
        propose — a name no runbook declares stops the start; a finding proposing anything else is an
        error finding."""

        def decorate(func: CheckFunc) -> CheckFunc:
            self.checks.append((verbs, Check(func.__name__, func, component, section, timeout, tuple(proposes))))
            return func

        return decorate

    def remediation(
        self,
        action: str,
        summary: str,
        *,
        timeout: float = 30.0,
        verify: VerifyFunc | None = None,
        settle: Settle = Settle(),
    ) -> Callable[[Callable[..., Awaitable[str]]], Remediation]:
        """Declare a remediation; the decorated function becomes its handle (`handle.propose(...)`).
        After it ran, `verify` judges whether it worked (by default the check that proposed it, run
        again on the same target), once the world had `settle` to change."""

        def decorate(func: Callable[..., Awaitable[str]]) -> Remediation:
            remediation = Remediation(action, func, summary, timeout, verify, settle)
            self.remediations.append(remediation)
            return remediation

        return decorate

    def triage_for(
        self,
        *alertnames: str,
        checks: list[str] | tuple[str, ...],
        match: Callable[[dict[str, str]], bool] | None = None,
        precedence: int | None = None,
    ) -> None:
        """Alerts with one of these names (or whose labels `match`) get the checks named `checks`;
        when several rules take an alert, the lowest `precedence` wins (two equal ones are an error).
        By default the runbook's own precedence."""
        self.triage.append(TriageRule(alertnames, tuple(checks), match, precedence or self.precedence))


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
        self._check_proposals()
        return self

    def _check_proposals(self) -> None:
        """Every remediation a check may propose is one a runbook declared: a RegistryError naming it."""
        for check in self.checks.values():
            for action in check.proposes:
                if action not in self.remediations:
                    raise RegistryError(f"check {check.name!r} proposes {action!r}, which no runbook declares")

    def resolve_triage(self) -> Registry:
        """Turn every triage rule's check names into checks; an unknown name is a RegistryError."""
        for runbook, rule in self._rules:
            unknown = [name for name in rule.check_names if name not in self.checks]
            if unknown:
                what = ", ".join(rule.alertnames) or "a label rule"
                raise RegistryError(
                    f"triage of {what} (runbook {runbook}) names unknown check(s): {', '.join(unknown)}"
                )
            checks = [self.checks[name] for name in rule.check_names]
            self.triage.append(Triage(rule.alertnames, checks, rule.match, rule.precedence))
        self._rules = []
        self.triage.sort(key=lambda rule: rule.precedence)  # stable: one precedence keeps declaration order
        self._refuse_ambiguous_triage()
        return self

    def _refuse_ambiguous_triage(self) -> None:
        """An alert name taken by two rules of the same precedence would be triaged by whichever was
        installed first: that must be declared, so it is a RegistryError."""
        claimed: dict[tuple[str, int], int] = {}
        for index, rule in enumerate(self.triage):
            for name in rule.alertnames:
                if (name, rule.precedence) in claimed:
                    raise RegistryError(
                        f"alert {name} is triaged by two rules of precedence {rule.precedence}: declare which comes first"
                    )
                claimed[(name, rule.precedence)] = index

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
