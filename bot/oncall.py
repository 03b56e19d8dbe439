"""Who is on call: ERPGO_ONCALL names a Slack user group (S…, its members read through Slack like the
policy's groups), or `rotation`: the policy file's

    oncall: {rotation: [U0ALICE, U0BOB], handoff: "mon 09:00", tz: Europe/Berlin, secondary: S0SRE}

where the person on call changes at every handoff (weekly on the day named, daily without one), in
rotation order counted from a fixed Monday, so every replica computes the same person. Without
ERPGO_ONCALL the policy's rotation is used when it has one. `secondary` (a user or a user group) is who
a second escalation mentions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.approvals.usergroups import UserGroups
from bot.core.errors import NotConfigured

REFERENCE = date(2024, 1, 1)  # a Monday: rotations count their handoffs from it
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HANDOFF = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+)?([01]?\d|2[0-3]):([0-5]\d)$")
PERSON = re.compile(r"^[UW][A-Z0-9]{2,}$")
GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
ROTATION = "rotation"


class OncallRule(BaseModel):
    """The policy's `oncall` key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rotation: list[str] = Field(min_length=1)
    handoff: str = "mon 09:00"
    tz: str = "UTC"
    secondary: str | None = None

    @field_validator("rotation")
    @classmethod
    def _people(cls, value: list[str]) -> list[str]:
        for person in value:
            if not PERSON.match(str(person)):
                raise ValueError(f"{person!r} is not a Slack user id (like U0123ABCD)")
        return value

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, value: str) -> str:
        if not HANDOFF.match(value.strip().lower()):
            raise ValueError('must be a time, or a day and a time, such as "mon 09:00"')
        return value.strip().lower()

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value[:40]!r} is not a time zone such as Europe/Berlin") from None
        return value

    @field_validator("secondary")
    @classmethod
    def _secondary(cls, value: str | None) -> str | None:
        if value is not None and not (PERSON.match(value) or GROUP.match(value)):
            raise ValueError(f"{value!r} is not a Slack user id (U…) or user group id (S…)")
        return value


@dataclass(frozen=True)
class OnCall:
    """Who is on call now and next; mentions are Slack ids (U… people, S… user groups)."""

    now: tuple[str, ...]
    source: str  # what said so: "rotation (policy.yml)", "user group S0…"
    next: str | None = None
    next_at: datetime | None = None
    secondary: str | None = None


def mention(who: str) -> str:
    return f"<!subteam^{who}>" if GROUP.match(who) else f"<@{who}>"


def handoff_parts(handoff: str) -> tuple[int | None, int, int]:
    """(weekday or None for daily, hour, minute) of a validated handoff."""
    match = HANDOFF.match(handoff)
    assert match is not None
    day, hour, minute = match.groups()
    return (WEEKDAYS.index(day) if day else None), int(hour), int(minute)


def last_handoff(rule: OncallRule, now: datetime) -> tuple[datetime, int]:
    """The newest handoff at or before `now` (local to the rule's zone), and the rotation's period in days."""
    weekday, hour, minute = handoff_parts(rule.handoff)
    local = now.astimezone(ZoneInfo(rule.tz))
    period = 1 if weekday is None else 7
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if weekday is not None:
        start -= timedelta(days=(start.weekday() - weekday) % 7)
    if start > local:
        start -= timedelta(days=period)
    return start, period


def rotation_on_call(rule: OncallRule, now: datetime, source: str) -> OnCall:
    start, period = last_handoff(rule, now)
    index = (start.date() - REFERENCE).days // period
    people = rule.rotation
    return OnCall(
        now=(people[index % len(people)],),
        source=source,
        next=people[(index + 1) % len(people)],
        next_at=start + timedelta(days=period),  # wall-clock arithmetic: 09:00 stays 09:00 across DST
        secondary=rule.secondary,
    )


async def on_call(
    setting: str | None, rule: OncallRule | None, origin: str, usergroups: UserGroups, now: datetime
) -> OnCall:
    """Who ERPGO_ONCALL (`setting`) says is on call at `now`; NotConfigured when nothing names anyone."""
    if setting and GROUP.match(setting):
        await usergroups.refresh([setting], "")
        members = tuple(sorted(usergroups.members(setting)))
        return OnCall(
            now=members or (setting,), source=f"user group {setting}", secondary=rule.secondary if rule else None
        )
    if setting not in (None, "", ROTATION):
        raise NotConfigured(f"ERPGO_ONCALL (is neither a user group S… nor {ROTATION})")
    if rule is None:
        raise NotConfigured("ERPGO_ONCALL, or an oncall rotation in the policy file")
    return rotation_on_call(rule, now, f"rotation ({origin})")


async def on_call_now(runtime: Any, now: datetime) -> OnCall:
    """Who is on call for a runtime (its ERPGO_ONCALL, its policy's rotation, its user groups)."""
    policy = runtime.policy
    return await on_call(runtime.settings.erpgo_oncall, policy.document.oncall, policy.origin, runtime.usergroups, now)


def describe(oncall: OnCall) -> str:
    """`/erpgo oncall`'s answer."""
    lines = [f":pager: *On call now*: {' '.join(mention(p) for p in oncall.now)} — from the {oncall.source}"]
    if oncall.next and oncall.next_at:
        when = f"<!date^{int(oncall.next_at.timestamp())}^{{date_short_pretty}} {{time}}|{oncall.next_at:%Y-%m-%d %H:%M %Z}>"
        lines.append(f"*Next*: {mention(oncall.next)} from {when}")
    if oncall.secondary:
        lines.append(f"*Secondary*: {mention(oncall.secondary)}")
    return "\n".join(lines)
