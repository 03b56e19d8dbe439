"""The local Slack acting for a person: slash commands and button clicks sent to the bot, signed
with the v0 scheme, and the response_url hooks that apply what the bot answers the way Slack does."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientSession
from slack_sdk.signature import SignatureVerifier

from bot.local.slack.blocks import interactive_elements, iter_buttons, message_content
from bot.local.slack.protocol import ApiError, Call, Origin, SlackHTTPResult, maybe_json, public, trigger_id
from bot.local.slack.state import SlackState

MENU_TYPES = ("static_select", "overflow")


def menu_options(menu: dict) -> list[dict]:
    """A menu's options, those in option groups included."""
    groups = [group.get("options") or [] for group in menu.get("option_groups") or []]
    return [o for options in [menu.get("options") or [], *groups] for o in options if isinstance(o, dict)]


class ActingUser(SlackState):
    """What Slack sends the bot on a person's behalf; mixed into LocalSlack."""

    _session: ClientSession | None

    # ------------------------------------------------------------------ response_url and acks

    def response_url(self, *, channel: str = "C0OPS", user: str = "U0ALICE", message: dict | None = None) -> str:
        """A fresh response_url on this server; `message` is the one a button was clicked on."""
        return self._new_hook(Origin(channel, user, message))

    def _new_hook(self, origin: Origin) -> str:
        key = secrets.token_urlsafe(12)
        self._hooks[key] = origin
        kind = "actions" if origin.message is not None else "commands"
        return f"{self.base_url}/hooks/{kind}/{key}"

    def _hook_answer(self, key: str, payload: Any) -> dict:
        origin = self._hooks.get(key)
        if origin is None:
            raise ApiError("expired_url", status=404)
        if not isinstance(payload, dict):
            raise ApiError("invalid_payload", status=400)
        try:
            self._apply_response(origin, payload, via="response_url")
        except ApiError as error:  # like incoming webhooks, a rejected message is a 400
            raise ApiError(error.body["error"], status=400) from None
        return {"ok": True}

    def _apply_response(self, origin: Origin, payload: dict, via: str) -> None:
        """Do what Slack does with a message sent to a response_url (or in a slash command's ack)."""
        delete = bool(payload.get("delete_original"))
        replace = bool(payload.get("replace_original"))
        text, blocks = ("", None) if delete else message_content(payload)
        if via == "response_url":
            self.responses.append(
                {
                    "channel": origin.channel,
                    "user": origin.user,
                    "response_type": payload.get("response_type", "ephemeral"),
                    "replace_original": replace,
                    "delete_original": delete,
                    "text": payload.get("text"),
                    "blocks": blocks,
                    "thread_ts": payload.get("thread_ts"),
                }
            )
        if origin.message is not None and (delete or replace):
            self._change_original(origin, delete, text, blocks)
        elif payload.get("response_type") == "in_channel":
            message = self._new_message(origin.channel, text, blocks, payload)
            self._store(message, payload.get("thread_ts"))
        else:
            self._new_ephemeral(origin.channel, origin.user, text, blocks, payload.get("thread_ts"), via)

    def _change_original(self, origin: Origin, delete: bool, text: str, blocks: list | None) -> None:
        original = origin.message
        if original is None:
            return
        if original.get("is_ephemeral"):
            target = next((e for e in self.ephemerals if e["ts"] == original["ts"]), None)
            if target is not None and delete:
                self.ephemerals.remove(target)
            elif target is not None:
                target.update(text=text, blocks=blocks)
            return
        key = (origin.channel, original["ts"])
        if delete:
            self.messages.pop(key, None)
        elif key in self.messages:
            self._edit(self.messages[key], text, blocks if blocks is not None else [])

    async def _apply_ack(self, origin: Origin, result: SlackHTTPResult) -> None:
        """A slash command's HTTP answer, if it carries a message, is shown like a response_url post."""
        if result.status != 200 or not result.body_text.strip() or not result.within_ack_deadline:
            return
        payload = result.json if isinstance(result.json, dict) else {"text": result.body_text}
        arrived = time.monotonic()
        try:
            self._apply_response(origin, payload, via="ack")
            response: dict = {"ok": True}
        except ApiError as error:
            response = error.body
        await self._record(Call("ack", payload, arrived, response))

    # ------------------------------------------------------------------ sender (Slack → bot)

    def signed_headers(self, body: str | bytes, *, timestamp: int | None = None, secret: str | None = None) -> dict:
        """Headers Slack sends with a request body, signed with the v0 scheme."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(timestamp=ts, body=body)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }

    async def raw_post(self, body: bytes | str, headers: dict) -> SlackHTTPResult:
        """POST arbitrary bytes to the bot (e.g. a badly signed or replayed request)."""
        return await self._post_to_bot(body if isinstance(body, str) else body.decode(), headers)

    async def slash(
        self,
        text: str,
        *,
        command: str = "/erpgo",
        user_id: str = "U0ALICE",
        user_name: str = "alice",
        channel_id: str = "C0OPS",
        channel_name: str = "ops",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> SlackHTTPResult:
        """Send a slash command to the bot as Slack does, and show its ack like Slack would."""
        origin, fields = self._slash_fields(text, command, user_id, user_name, channel_id, channel_name)
        body = urlencode(fields)
        result = await self._post_to_bot(body, self.signed_headers(body, timestamp=timestamp, secret=secret))
        result.response_url = fields["response_url"]
        await self._apply_ack(origin, result)
        return result

    def _slash_fields(
        self, text: str, command: str, user_id: str, user_name: str, channel_id: str, channel_name: str
    ) -> tuple[Origin, dict]:
        """What Slack sends about a slash command (as form fields over HTTP, as JSON over a socket)."""
        self._remember(user_id, user_name, channel_id, channel_name)
        origin = Origin(channel_id, user_id)
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._new_hook(origin),
            "trigger_id": self._new_trigger(user_id),
        }
        return origin, fields

    def _new_trigger(self, user_id: str) -> str:
        """A trigger_id for views.open, valid for a few seconds and for this user, as Slack's are."""
        trigger = trigger_id()
        self._triggers[trigger] = (user_id, time.monotonic())
        return trigger

    async def click(
        self,
        message: dict,
        action_id: str,
        *,
        user_id: str = "U0BOB",
        user_name: str = "bob",
        channel_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        tamper: Callable[[dict], None] | None = None,
    ) -> SlackHTTPResult:
        """Click the button `action_id` of `message` (as the caller last saw it) and send block_actions;
        `tamper` edits the payload before it is signed (a forged click, another team's)."""
        payload = self._click_payload(message, action_id, user_id, user_name, channel_id)
        if tamper is not None:
            tamper(payload)
        response_url = payload["response_url"]
        body = urlencode({"payload": json.dumps(payload)})
        headers = self.signed_headers(body, timestamp=timestamp, secret=secret)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
        if retry_reason is not None:
            headers["X-Slack-Retry-Reason"] = retry_reason
        result = await self._post_to_bot(body, headers)
        result.response_url = response_url
        return result

    async def choose(
        self,
        message: dict,
        action_id: str,
        value: str,
        *,
        user_id: str = "U0BOB",
        user_name: str = "bob",
        channel_id: str | None = None,
    ) -> SlackHTTPResult:
        """Pick the option `value` of the menu `action_id` (static_select or overflow) of `message`."""
        block, menu = self._find_menu(message, action_id)
        option = next((o for o in menu_options(menu) if o.get("value") == value), None)
        if option is None:
            raise LookupError(f"menu {action_id!r} has no option {value!r}")
        payload = self._click_payload(message, action_id, user_id, user_name, channel_id, (block, menu))
        payload["actions"] = [
            {
                "action_id": action_id,
                "block_id": block["block_id"],
                "type": menu["type"],
                "selected_option": option,
                "action_ts": f"{time.time():.6f}",
            }
        ]
        body = urlencode({"payload": json.dumps(payload)})
        result = await self._post_to_bot(body, self.signed_headers(body))
        result.response_url = payload["response_url"]
        return result

    def _find_menu(self, message: dict, action_id: str) -> tuple[dict, dict]:
        for block in message.get("blocks") or []:
            for element in interactive_elements(block):
                if element.get("action_id") == action_id and element.get("type") in MENU_TYPES:
                    return block, element
        raise LookupError(f"no menu with action_id {action_id!r} in message")

    def _click_payload(
        self,
        message: dict,
        action_id: str,
        user_id: str,
        user_name: str,
        channel_id: str | None,
        found: tuple[dict, dict] | None = None,
    ) -> dict:
        block, button = found or self._find_button(message, action_id)
        channel_id = channel_id or message.get("channel") or self._channel_of(message["ts"])
        self._remember(user_id, user_name, channel_id, None)
        response_url = self.response_url(channel=channel_id, user=user_id, message=message)
        return self._block_actions_payload(message, block, button, user_id, user_name, channel_id, response_url)

    def _block_actions_payload(
        self, message: dict, block: dict, button: dict, user_id: str, user_name: str, channel_id: str, response_url: str
    ) -> dict:
        ephemeral = bool(message.get("is_ephemeral"))
        container = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": ephemeral,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        action = {"action_id": button["action_id"], "block_id": block["block_id"], "text": button.get("text")}
        action.update({k: button[k] for k in ("value", "style") if k in button})
        action.update(type="button", action_ts=f"{time.time():.6f}")
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self._new_trigger(user_id),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self.channel_names.get(channel_id, channel_id.lower())},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if not ephemeral:  # Slack does not send the content of ephemeral messages back
            payload["message"] = public(message)
        return payload

    def _find_button(self, message: dict, action_id: str) -> tuple[dict, dict]:
        for block, element in iter_buttons(message):
            if element.get("action_id") == action_id:
                return block, element
        available = [b["action_id"] for b in self.buttons(message)]
        raise LookupError(f"no button with action_id {action_id!r} in message; buttons: {available}")

    def _channel_of(self, ts: str) -> str:
        for channel, message_ts in self.messages:
            if message_ts == ts:
                return channel
        raise LookupError(f"unknown message ts {ts}; pass channel_id")

    def _remember(self, user_id: str, user_name: str, channel_id: str, channel_name: str | None) -> None:
        self.users.setdefault(user_id, {})["name"] = user_name
        if channel_name:
            self.channel_names[channel_id] = channel_name

    async def _post_to_bot(self, body: str, headers: dict) -> SlackHTTPResult:
        if not self.bot_url:
            raise RuntimeError("LocalSlack.bot_url is not set (the bot's /slack/events URL)")
        if self._session is None:
            raise RuntimeError("LocalSlack is not started")
        started = time.monotonic()
        async with self._session.post(self.bot_url, data=body.encode(), headers=headers) as response:
            text = await response.text()
        return SlackHTTPResult(response.status, text, maybe_json(text), time.monotonic() - started, None, body)
