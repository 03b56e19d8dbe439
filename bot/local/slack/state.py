"""What the local Slack remembers: recorded calls (and waiting for them), messages, threads and
ephemerals, stored the way Slack stores them (a reply to a reply goes under the thread's parent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bot.local.slack.blocks import iter_buttons
from bot.local.slack.protocol import Call, Origin, json_arg


class SlackState:
    """The attributes every part of LocalSlack shares (set by LocalSlack.__init__), and the message store."""

    signing_secret: str
    bot_token: str
    team_id: str
    team_domain: str
    bot_user_id: str
    bot_id: str
    app_id: str
    verification_token: str
    api_url: str
    base_url: str
    bot_url: str | None

    calls: list[Call]
    messages: dict[tuple[str, str], dict]
    ephemerals: list[dict]
    responses: list[dict]
    files: dict[str, dict]
    home_views: dict[str, dict]
    users: dict[str, dict]
    channel_names: dict[str, str]
    usergroups: dict[str, list[str]]

    _hooks: dict[str, Origin]
    _triggers: dict[str, tuple[str, float]]  # trigger_id -> (user, time.monotonic() it was issued)
    _listeners: list[Callable[[Call], Any]]
    _changed: asyncio.Condition
    _last_ts_us: int

    # ------------------------------------------------------------------ observing

    def on_call(self, callback: Callable[[Call], Any]) -> None:
        """Call `callback(call)` for every recorded call (e.g. the shell prints new messages)."""
        self._listeners.append(callback)

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """Return the first call, past or future, matching `predicate`."""

        async def first_match() -> Call:
            async with self._changed:
                checked = 0
                while True:
                    for call in self.calls[checked:]:
                        if predicate(call):
                            return call
                    checked = len(self.calls)
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(first_match(), timeout)
        except TimeoutError:
            seen = ", ".join(f"{c.method}→{c.status}/{c.response.get('error', 'ok')}" for c in self.calls)
            raise TimeoutError(f"no matching Slack call within {timeout}s; calls seen: [{seen}]") from None

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        for listener in self._listeners:
            listener(call)
        async with self._changed:
            self._changed.notify_all()

    def thread(self, channel: str, ts: str) -> list[dict]:
        """Replies in the thread of message `ts`, oldest first (the parent itself excluded)."""
        replies = [
            m for (ch, mts), m in self.messages.items() if ch == channel and m.get("thread_ts") == ts and mts != ts
        ]
        return sorted(replies, key=lambda m: m["ts"])

    def channel_messages(self, channel: str) -> list[dict]:
        """Top-level messages of `channel`, oldest first."""
        top = [m for (ch, ts), m in self.messages.items() if ch == channel and m.get("thread_ts", ts) == ts]
        return sorted(top, key=lambda m: m["ts"])

    def buttons(self, message: dict) -> list[dict]:
        """All buttons of a message: action_id, block_id, text, value, style, confirm, url."""
        return [
            {
                "action_id": element.get("action_id"),
                "block_id": block.get("block_id"),
                "text": (element.get("text") or {}).get("text"),
                "value": element.get("value"),
                "style": element.get("style"),
                "confirm": element.get("confirm"),
                "url": element.get("url"),
            }
            for block, element in iter_buttons(message)
        ]

    # ------------------------------------------------------------------ message store

    def _next_ts(self) -> str:
        now_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = now_us
        return f"{now_us // 1_000_000}.{now_us % 1_000_000:06d}"

    def _new_message(self, channel: str, text: str, blocks: list | None, args: dict) -> dict:
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text,
            "ts": self._next_ts(),
            "channel": channel,
            "history": [],
        }
        if blocks is not None:
            message["blocks"] = blocks
        for key in ("attachments", "metadata"):
            if args.get(key):
                message[key] = json_arg(args[key])
        return message

    def _store(self, message: dict, thread_ts: str | None = None) -> None:
        channel = message["channel"]
        if thread_ts:
            parent = self.messages.get((channel, str(thread_ts)))
            # Slack files a reply to a reply under the thread's original parent.
            root = parent.get("thread_ts", parent["ts"]) if parent else str(thread_ts)
            self._attach_reply(channel, root, message)
        self.messages[channel, message["ts"]] = message

    def _attach_reply(self, channel: str, root: str, reply: dict) -> None:
        reply["thread_ts"] = root
        reply["parent_user_id"] = self.bot_user_id
        parent = self.messages.get((channel, root))
        if parent is not None:
            parent.update(thread_ts=root, latest_reply=reply["ts"], reply_count=parent.get("reply_count", 0) + 1)

    def _edit(self, message: dict, text: str | None, blocks: list | None) -> None:
        message["history"].append({"text": message["text"], "blocks": message.get("blocks"), "at": time.time()})
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}

    def _new_ephemeral(
        self, channel: str, user: str, text: str, blocks: list | None, thread_ts: str | None, source: str
    ) -> dict:
        # `user` is the one person who sees it, as in chat.postEphemeral.
        ephemeral = {
            "type": "message",
            "is_ephemeral": True,
            "source": source,
            "channel": channel,
            "user": user,
            "text": text,
            "ts": self._next_ts(),
        }
        if blocks is not None:
            ephemeral["blocks"] = blocks
        if thread_ts:
            ephemeral["thread_ts"] = str(thread_ts)
        self.ephemerals.append(ephemeral)
        return ephemeral
