"""Slack user groups (S…) as policy members: their members read with usergroups.users.list, cached
for a while, read again on a miss, and never trusted when they could not be read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bot.core.errors import describe_error
from bot.core.logs import log

Fetch = Callable[[str], Awaitable[list[str]]]


@dataclass
class _Entry:
    members: frozenset[str]
    fetched_at: float  # time.monotonic()


class UserGroups:
    """The members of Slack user groups, for policy decisions.

    * an entry is trusted for `ttl` seconds after it was read;
    * someone not in a trusted entry is a miss: the group is read again (at most once every
      `miss_refresh` seconds), so a person just added to the group need not wait for the TTL;
    * a group that cannot be read (Slack down, unknown group, no usergroups:read scope) has no
      members as far as the policy knows once its last reading expired: a failure never grants
      anything. It is tried again after `miss_refresh` seconds, not on every decision.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl: float = 300.0,
        miss_refresh: float = 10.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.fetch = fetch
        self.ttl = ttl
        self.miss_refresh = miss_refresh
        self.timeout = timeout
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._failed_at: dict[str, float] = {}  # a group that could not be read is not asked again at once
        self._locks: dict[str, asyncio.Lock] = {}

    def members(self, group_id: str) -> frozenset[str]:
        """The group's members if a trusted reading of it exists, else nobody."""
        entry = self._entries.get(group_id)
        if entry is None or self.clock() - entry.fetched_at > self.ttl:
            return frozenset()
        return entry.members

    async def refresh(self, group_ids: Iterable[str], user: str) -> None:
        """Read again, concurrently, the groups whose entry is missing, expired, or a miss for `user`."""
        await asyncio.gather(*(self._refresh_one(group_id, user) for group_id in sorted(set(group_ids))))

    def _needs_reading(self, group_id: str, user: str) -> bool:
        failed = self._failed_at.get(group_id)
        if failed is not None and self.clock() - failed < self.miss_refresh:
            return False
        entry = self._entries.get(group_id)
        if entry is None:
            return True
        age = self.clock() - entry.fetched_at
        return age > self.ttl or (user not in entry.members and age >= self.miss_refresh)

    async def _refresh_one(self, group_id: str, user: str) -> None:
        if not self._needs_reading(group_id, user):
            return
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            if not self._needs_reading(group_id, user):  # read while we waited for the lock
                return
            try:
                members = await asyncio.wait_for(self.fetch(group_id), self.timeout)
            except Exception as exc:
                self._failed_at[group_id] = self.clock()
                self._forget_if_expired(group_id)
                log.warning("usergroup_not_resolved", usergroup=group_id, error=describe_error(exc))
                return
            self._entries[group_id] = _Entry(frozenset(str(m) for m in members), self.clock())
            self._failed_at.pop(group_id, None)

    def _forget_if_expired(self, group_id: str) -> None:
        """A failed reading leaves a still-trusted entry alone (its members were read moments ago), and
        drops an expired one: what cannot be confirmed is not granted."""
        entry = self._entries.get(group_id)
        if entry is not None and self.clock() - entry.fetched_at > self.ttl:
            del self._entries[group_id]
