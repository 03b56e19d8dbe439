"""Who may do what: the ChatOps policy, a YAML file named by CHATOPS_POLICY_FILE.

    groups:   {oncall: [U0YOU, U0BOB, S0SRE]}        named groups of Slack user ids and user groups
    channels: [C0OPS]                                 where /erpgo may be used (absent: anywhere)
    verbs:    {"*": [everyone], "db *": [oncall]}     who may run which verbs (glob patterns)
    actions:  {"db.*": {approvers: [oncall], self_approval: false, expiry_minutes: 15},
               "alerts.silence": {allowed: [oncall], second_approver: false},
               "db.restore": {approvers: [dba], approvals_required: 2}}
    oncall:   {rotation: [U0YOU, U0BOB], handoff: "mon 09:00", tz: Europe/Berlin, secondary: S0SRE}

Members are Slack user ids (U…, W…), Slack user groups (S…: their members, read with
usergroups.users.list and cached for ERPGO_USERGROUP_TTL seconds; a group that cannot be read has
no members, so it never grants anything) or names of groups defined here.

Actions are of two kinds: remediations, which run once one of `approvers` approves them, and the
alert thread's buttons (alerts.ack, alerts.silence), which whoever is `allowed` takes directly —
without `allowed`, anyone who may run `/erpgo alerts` in that channel. With `second_approver: true`
a silence waits for one of its `approvers` like a remediation does.

`approvals_required` (default 1) is how many distinct people, none of them the requester, must
approve a remediation before it runs; it runs once, when the last of them approves.

When several patterns match, the most specific one decides: an exact name beats any pattern,
and among patterns the one with the most literal characters wins ("db *" beats "*").
`everyone` is a built-in group. Without a file the bot runs with a safe default: every verb
(they only read) for everyone, anywhere, and no destructive action can be approved.

A malformed file is a configuration error naming the file and the problem; the bot does not
start with a policy it cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.approvals.usergroups import UserGroups
from bot.core.units import parse_duration
from bot.oncall import OncallRule
from bot.settings import ConfigError

EVERYONE = "everyone"
DEFAULT_EXPIRY_MINUTES = 15.0
MAX_APPROVALS_REQUIRED = 5
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
DIRECT_ACTIONS_VERB = "alerts"  # who may run it in a channel may use the alert buttons there, by default
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
ALWAYS_ALLOWED = ("help",)  # answering "what can I do here" is never refused
DIRECT_ACTIONS = ("alerts.ack", "alerts.silence", "alerts.escalate")  # alert thread buttons, taken without an approval
# what some arguments of a verb need beyond the verb itself; refused unless a rule's `allowed` names the person
PERMISSIONS = ("tls.any_endpoint",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakGlass(_Strict):
    """`break_glass: {after: 10m, veto: 2m, review_within: 24h}`: when no approver has acted `after`
    the request, the requester may run it after a `veto` countdown; an approver reviews it afterwards."""

    after: int  # s
    veto: int  # s
    review_within: int | None = None  # s; required (a policy without it stops the start)
    several_approvers: bool = False  # also for an action with approvals_required above 1

    @field_validator("after", "veto", "review_within", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class ActionRule(_Strict):
    approvers: list[str] = Field(default_factory=list)
    self_approval: bool = False
    expiry_minutes: float = Field(DEFAULT_EXPIRY_MINUTES, gt=0, le=7 * 24 * 60)
    allowed: list[str] | None = None  # who may take a direct action (alerts.ack, alerts.silence)
    second_approver: bool = False  # a direct action waits for one of `approvers` first
    approvals_required: int = Field(1, ge=1, le=MAX_APPROVALS_REQUIRED)
    break_glass: BreakGlass | None = None  # off by default

    @field_validator("approvers", "allowed", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PolicyDocument(_Strict):
    groups: dict[str, list[str]] = Field(default_factory=dict)
    channels: list[str] | None = None
    verbs: dict[str, list[str]] = Field(default_factory=lambda: {"*": [EVERYONE]})
    actions: dict[str, ActionRule] = Field(default_factory=dict)
    oncall: OncallRule | None = None  # who is on call (bot/oncall.py)

    @field_validator("verbs", "groups", mode="before")
    @classmethod
    def _members_one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: [item] if isinstance(item, str) else item for key, item in value.items()}
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        if value in ("*", "any", EVERYONE) or value == ["*"]:
            return None
        return [value] if isinstance(value, str) else value


def _most_specific(patterns: Iterable[str], name: str) -> str | None:
    """The pattern that decides for `name`: exact beats glob, then the most literal characters."""
    name = name.lower()
    best, best_rank = None, None
    for pattern in patterns:
        lowered = pattern.lower()
        if not fnmatchcase(name, lowered):
            continue
        literal = len(re.sub(r"[*?\[\]]", "", lowered))
        rank = (lowered == name, literal)
        if best_rank is None or rank > best_rank:
            best, best_rank = pattern, rank
    return best


@dataclass(frozen=True)
class Policy:
    document: PolicyDocument = field(default_factory=lambda: PolicyDocument(verbs={"*": [EVERYONE]}))
    source: str | None = None  # the file it came from; None for the built-in default
    # resolves S… ids; without it a user group has no members
    usergroups: UserGroups | None = field(default=None, compare=False, repr=False)

    def with_usergroups(self, usergroups: UserGroups | None) -> Policy:
        return replace(self, usergroups=usergroups)

    @property
    def usergroup_ids(self) -> frozenset[str]:
        """Every Slack user group the policy names, anywhere."""
        doc = self.document
        names = [n for members in doc.groups.values() for n in members]
        names += [n for members in doc.verbs.values() for n in members]
        for rule in doc.actions.values():
            names += rule.approvers + (rule.allowed or [])
        if doc.oncall and doc.oncall.secondary:
            names.append(doc.oncall.secondary)
        return frozenset(n for n in names if USERGROUP_ID.match(str(n)))

    async def resolve(self, user: str) -> None:
        """Bring the user groups the policy names up to date for a decision about `user` (a miss or
        an expired entry is read again from Slack); call before the checks below."""
        ids = self.usergroup_ids
        if ids and self.usergroups is not None:
            await self.usergroups.refresh(ids, user)

    @classmethod
    def default(cls) -> Policy:
        return cls()

    @property
    def is_default(self) -> bool:
        return self.source is None

    @property
    def origin(self) -> str:
        return (
            f"the policy ({Path(self.source).name})"
            if self.source
            else "the default policy (CHATOPS_POLICY_FILE is not set)"
        )

    # ---- membership

    def _members(self, names: list[str]) -> set[str] | None:
        """The user ids named (directly, through groups or Slack user groups); None means everyone."""
        users: set[str] = set()
        for name in names:
            if name in (EVERYONE, "*"):
                return None
            if name in self.document.groups:
                users |= self._members(self.document.groups[name]) or set()
            elif USERGROUP_ID.match(name):
                users |= self.usergroups.members(name) if self.usergroups is not None else set()
            else:
                users.add(name)
        return users

    def _names_usergroup(self, names: list[str]) -> bool:
        return any(
            USERGROUP_ID.match(name)
            or (name in self.document.groups and self._names_usergroup(self.document.groups[name]))
            for name in names
        )

    def _allows(self, names: list[str], user: str) -> bool:
        members = self._members(names)
        return members is None or user in members

    @staticmethod
    def _who(names: list[str]) -> str:
        shown = [f"<!subteam^{name}>" if USERGROUP_ID.match(name) else name for name in names]
        return ", ".join(shown) if shown else "nobody"

    # ---- verbs and channels

    def channel_refusal(self, channel: str) -> str | None:
        allowed = self.document.channels
        if allowed is None or channel in allowed:
            return None
        where = ", ".join(f"<#{c}>" for c in allowed)
        return f"`/erpgo` is not used in this channel: {self.origin} allows it in {where} only."

    def verb_refusal(self, user: str, verb: str) -> str | None:
        if verb in ALWAYS_ALLOWED:
            return None
        pattern = _most_specific(self.document.verbs, verb)
        if pattern is None:
            return f"You may not run `/erpgo {verb}`: {self.origin} names no one for it."
        names = self.document.verbs[pattern]
        if self._allows(names, user):
            return None
        return f"You may not run `/erpgo {verb}`: {self.origin} allows it for {self._who(names)} only."

    def command_refusal(self, user: str, channel: str, verb: str) -> str | None:
        """Why `user` may not run `verb` in `channel`, or None when they may."""
        if verb in ALWAYS_ALLOWED:
            return None
        return self.channel_refusal(channel) or self.verb_refusal(user, verb)

    # ---- actions

    def action_rule(self, action: str) -> ActionRule | None:
        pattern = _most_specific(self.document.actions, action)
        return self.document.actions[pattern] if pattern is not None else None

    def approvable(self, action: str) -> bool:
        """Whether anyone at all may approve `action`."""
        rule = self.action_rule(action)
        if not rule or not rule.approvers:
            return False
        # a user group may have members (they are only known when someone clicks)
        return self._members(rule.approvers) != set() or self._names_usergroup(rule.approvers)

    def approvers(self, action: str) -> str:
        rule = self.action_rule(action)
        return self._who(rule.approvers if rule else [])

    def expiry(self, action: str) -> timedelta:
        rule = self.action_rule(action)
        return timedelta(minutes=rule.expiry_minutes if rule else DEFAULT_EXPIRY_MINUTES)

    def self_approval(self, action: str) -> bool:
        rule = self.action_rule(action)
        return bool(rule and rule.self_approval)

    def approvals_required(self, action: str) -> int:
        """How many distinct people (never the requester when more than one) must approve `action`."""
        rule = self.action_rule(action)
        return rule.approvals_required if rule else 1

    def may_decide(self, user: str, action: str) -> bool:
        """Whether `user` is one of the approvers of `action` (the four-eyes rule aside)."""
        rule = self.action_rule(action)
        return bool(rule and rule.approvers and self._allows(rule.approvers, user))

    def approval_refusal(self, user: str, action: str, requester: str) -> str | None:
        """Why `user` may not approve `action` requested by `requester`, or None when they may."""
        if not self.approvable(action):
            return f"No one may approve `{action}`: {self.origin} names no approvers for it."
        if not self.may_decide(user, action):
            return f"You may not approve `{action}`: {self.origin} allows {self.approvers(action)} only."
        if user == requester and self.approvals_required(action) > 1:
            return (
                f"You requested this yourself; `{action}` needs {self.approvals_required(action)} approvals "
                f"from other people under {self.origin}."
            )
        if user == requester and not self.self_approval(action):
            return (
                f"You requested this yourself; someone else has to approve it "
                f"(`{action}` needs a second person under {self.origin})."
            )
        return None

    # ---- direct actions (the alert thread's buttons)

    def action_refusal(self, user: str, channel: str, action: str) -> str | None:
        """Why `user` may not take `action` (alerts.ack, alerts.silence) in `channel`, or None."""
        rule = self.action_rule(action)
        if rule is not None and rule.allowed is not None:
            if self._allows(rule.allowed, user):
                return None
            return f"You may not use `{action}`: {self.origin} allows {self._who(rule.allowed)} only."
        if self.channel_refusal(channel) is not None:
            where = ", ".join(f"<#{c}>" for c in self.document.channels or [])
            return f"`{action}` is for those who may run `/erpgo` here, and {self.origin} allows it in {where} only."
        if self.verb_refusal(user, DIRECT_ACTIONS_VERB) is not None:
            return f"You may not use `{action}`: {self.origin} lets only those who may run `/erpgo {DIRECT_ACTIONS_VERB}` do it."
        return None

    def permission_refusal(self, user: str, permission: str) -> str | None:
        """Why `user` lacks `permission` (tls.any_endpoint), or None: refused unless `allowed` names them."""
        rule = self.action_rule(permission)
        if rule is None or rule.allowed is None:
            return f"You may not use `{permission}`: {self.origin} allows it for no one."
        if self._allows(rule.allowed, user):
            return None
        return f"You may not use `{permission}`: {self.origin} allows {self._who(rule.allowed)} only."

    def needs_second_approver(self, action: str) -> bool:
        rule = self.action_rule(action)
        return bool(rule and rule.second_approver)

    def refuse_unmatched(self, verbs: Iterable[str], actions: Iterable[str]) -> None:
        """ConfigError naming the first verb or action pattern that matches none of `verbs` / `actions`:
        a typo ("audti", "db.terminat") would otherwise let the intended restriction fall through to "*"."""
        for kind, patterns, names in (
            ("verbs", self.document.verbs, [*verbs, *ALWAYS_ALLOWED]),
            ("actions", self.document.actions, [*actions, *DIRECT_ACTIONS, *PERMISSIONS]),
        ):
            lowered = [name.lower() for name in names]
            for pattern in patterns:
                if not any(fnmatchcase(name, pattern.lower()) for name in lowered):
                    raise ConfigError(
                        f"configuration error: CHATOPS_POLICY_FILE {self.source}: {kind} › {pattern!r} "
                        f"matches no {kind[:-1]} of this bot"
                    )

    def break_glass(self, action: str) -> BreakGlass | None:
        """The break-glass rule of `action` when it may be used (approvals_required 1, or allowed above)."""
        rule = self.action_rule(action)
        if rule is None or rule.break_glass is None:
            return None
        if rule.approvals_required > 1 and not rule.break_glass.several_approvers:
            return None
        return rule.break_glass

    # ---- who, resolved (for `/erpgo actions` and `doctor`)

    def verb_members(self, verb: str) -> set[str] | None:
        """The people who may run `verb`, user groups resolved; None: everyone."""
        pattern = _most_specific(self.document.verbs, verb)
        return self._members(self.document.verbs[pattern]) if pattern is not None else set()

    def approver_members(self, action: str) -> set[str] | None:
        """The people who may approve `action`, user groups resolved; None: everyone."""
        rule = self.action_rule(action)
        return self._members(rule.approvers) if rule and rule.approvers else set()

    async def resolve_all(self) -> None:
        """Read every Slack user group the policy names that is not known now."""
        if self.usergroup_ids and self.usergroups is not None:
            await self.usergroups.refresh(self.usergroup_ids, "")

    def describe(self) -> str:
        """One line for the start-up log."""
        doc = self.document
        return (
            f"{len(doc.groups)} groups, {len(doc.verbs)} verb rules, {len(doc.actions)} action rules, "
            f"channels: {', '.join(doc.channels) if doc.channels else 'any'}"
        )


# ---- loading


def _where(loc: tuple) -> str:
    return " › ".join(str(part) for part in loc) or "top level"


def _check_names(doc: PolicyDocument) -> None:
    for group, members in doc.groups.items():
        if not GROUP_NAME.match(group) or group == EVERYONE:
            raise ValueError(
                f"groups › {group}: a group name is lower case letters, digits, '-', '_' or '.' (and not '{EVERYONE}')"
            )
        for member in members:
            if not USER_ID.match(str(member)) and not USERGROUP_ID.match(str(member)):
                raise ValueError(
                    f"groups › {group}: {member!r} is not a Slack user id (like U0123ABCD) or user group id (S0123ABCD)"
                )

    def check_members(where: str, names: list[str]) -> None:
        for name in names:
            if (
                name in (EVERYONE, "*")
                or name in doc.groups
                or USER_ID.match(str(name))
                or USERGROUP_ID.match(str(name))
            ):
                continue
            known = ", ".join(sorted(doc.groups)) or "none defined"
            raise ValueError(f"{where}: {name!r} is neither a group nor a Slack user id (groups: {known})")

    for verb, names in doc.verbs.items():
        check_members(f"verbs › {verb}", names)
    for action, rule in doc.actions.items():
        check_members(f"actions › {action} › approvers", rule.approvers)
        _check_approvals_required(doc, action, rule)
        _check_break_glass(action, rule)
        check_members(f"actions › {action} › allowed", rule.allowed or [])
    for channel in doc.channels or []:
        if not re.match(r"^[CGD][A-Z0-9]{2,}$", str(channel)):
            raise ValueError(f"channels: {channel!r} is not a Slack channel id (like C0123ABCD)")


def _check_break_glass(action: str, rule: ActionRule) -> None:
    """Break glass without a review is no safeguard: the start stops."""
    glass = rule.break_glass
    if glass is not None and not glass.review_within:
        raise ValueError(
            f"actions › {action} › break_glass: review_within is required (how soon an approver reviews "
            "what ran without one, e.g. 24h)"
        )


def _check_approvals_required(doc: PolicyDocument, action: str, rule: ActionRule) -> None:
    """Several approvals: other people than the requester, and enough of them named to reach the count."""
    required = rule.approvals_required
    if required == 1:
        return
    where = f"actions › {action}"
    if rule.self_approval:
        raise ValueError(
            f"{where}: self_approval cannot be combined with approvals_required {required} "
            "(the approvers of such an action are people other than the requester)"
        )
    people: set[str] = set()
    for name in rule.approvers:
        if name in (EVERYONE, "*"):
            return  # everyone: always enough people
        people |= set(doc.groups[name]) if name in doc.groups else {name}
    if any(USERGROUP_ID.match(str(person)) for person in people):
        return  # a Slack user group's members are only known at run time
    if len(people) < required:
        raise ValueError(
            f"{where}: approvals_required is {required} but its approvers name only {len(people)} "
            f"{'person' if len(people) == 1 else 'people'}"
        )


def parse_policy(text: str, source: str) -> Policy:
    """A Policy from YAML text; ConfigError naming `source` and the problem when it is malformed."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"configuration error: CHATOPS_POLICY_FILE {source}: {problem}")

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise fail(f"not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail("must be a mapping with groups, channels, verbs and actions")
    try:
        doc = PolicyDocument.model_validate(raw)
        _check_names(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise fail(f"{_where(error['loc'])}: {error['msg']}") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    return Policy(doc, source)


def load_policy(path: str | None) -> Policy:
    """The policy in `path`; the safe default when no path is configured."""
    if not path:
        return Policy.default()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration error: CHATOPS_POLICY_FILE {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"configuration error: CHATOPS_POLICY_FILE {path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration error: CHATOPS_POLICY_FILE {path}: is not UTF-8 text") from None
    return parse_policy(text, path)
