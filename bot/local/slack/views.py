"""Modals and events: views.open (with the trigger_id of a click or command, valid for 3 seconds) and
views.update, a person submitting a modal (view_submission, and what Slack does with the bot's answer), and
Events API callbacks such as app_home_opened."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from bot.local.slack.blocks import MAX_VIEW_BLOCKS, block_errors, view_error, with_ids
from bot.local.slack.protocol import ApiError, SlackHTTPResult, json_arg, required
from bot.local.slack.user import ActingUser

TRIGGER_TTL_S = 3.0  # Slack: "trigger_id expires in 3 seconds"
MAX_TITLE = 24  # a modal's title, submit and close labels


class Views(ActingUser):
    """views.open, view_submission and events; mixed into LocalSlack."""

    # view id → the modal as opened (with "user", and "state" once submitted); the open ones per user
    views: dict[str, dict]
    open_views: dict[str, list[str]]

    def _views_open(self, args: dict) -> dict:
        trigger = required(args, "trigger_id", "invalid_trigger_id")
        issued = self._triggers.get(trigger)
        if issued is None:
            raise ApiError("invalid_trigger_id")
        user, at = issued
        if time.monotonic() - at > TRIGGER_TTL_S:
            raise ApiError("expired_trigger_id")
        view = json_arg(args.get("view"))
        self._check_modal(view)
        opened = {
            **{k: view[k] for k in ("callback_id", "private_metadata", "external_id", "submit", "close") if k in view},
            "id": "V" + secrets.token_hex(5).upper(),
            "team_id": self.team_id,
            "type": "modal",
            "title": view["title"],
            "blocks": with_ids(view["blocks"]),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "user": user,
        }
        self.views[opened["id"]] = opened
        self.open_views.setdefault(user, []).append(opened["id"])
        return {"ok": True, "view": {k: v for k, v in opened.items() if k != "user"}}

    def _views_update(self, args: dict) -> dict:
        """Replace an open modal's content (by view_id or external_id); a stale `hash` is refused."""
        current = self._view_to_update(args)
        if args.get("hash") and args["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view = json_arg(args.get("view"))
        self._check_modal(view)
        for key in ("callback_id", "private_metadata", "external_id", "submit", "close"):
            current.pop(key, None)
        current.update(
            {k: view[k] for k in ("callback_id", "private_metadata", "external_id", "submit", "close") if k in view}
        )
        current.update(
            title=view["title"], blocks=with_ids(view["blocks"]), hash=f"{time.time():.6f}.{secrets.token_hex(4)}"
        )
        current.pop("errors", None)
        return {"ok": True, "view": {k: v for k, v in current.items() if k != "user"}}

    def _view_to_update(self, args: dict) -> dict:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            raise ApiError("invalid_arguments")
        for view in self.views.values():
            if (view_id and view["id"] == view_id) or (external_id and view.get("external_id") == external_id):
                return view
        raise ApiError("not_found")

    @staticmethod
    def _check_modal(view: Any) -> None:
        if not isinstance(view, dict) or view.get("type") != "modal" or not isinstance(view.get("blocks"), list):
            raise view_error("must provide a modal view with blocks [json-pointer:/view]")
        for key in ("title", "submit", "close"):
            label = view.get(key)
            if key == "title" and label is None:
                raise view_error("missing required field: title [json-pointer:/view/title]")
            if label is not None and (
                not isinstance(label, dict) or label.get("type") != "plain_text" or not label.get("text")
            ):
                raise view_error(f"must be a plain_text object [json-pointer:/view/{key}]")
            if label is not None and len(label["text"]) > MAX_TITLE:
                raise view_error(f"must be less than {MAX_TITLE + 1} characters [json-pointer:/view/{key}/text]")
        errors = block_errors(view["blocks"], max_blocks=MAX_VIEW_BLOCKS)
        if any(block.get("type") == "input" for block in view["blocks"]) and "submit" not in view:
            errors.append("a view with input blocks needs a submit label [json-pointer:/view/submit]")
        if errors:
            raise view_error(*errors)

    def modal_of(self, user_id: str) -> dict | None:
        """The modal open in front of `user_id` (the last one opened), if any."""
        open_ids = self.open_views.get(user_id) or []
        return self.views[open_ids[-1]] if open_ids else None

    async def submit_view(
        self, view: dict, values: dict[str, str], *, user_id: str | None = None, user_name: str | None = None
    ) -> SlackHTTPResult:
        """Fill the modal's inputs (`values`: action_id → typed text) and press its submit button.

        Slack closes the modal when the bot answers with an empty 200; `response_action: errors`
        keeps it open with the messages under the inputs (kept in view["errors"])."""
        user_id = user_id or view["user"]
        state = self._input_state(view, values)
        submitted = {**{k: v for k, v in view.items() if k not in ("user", "errors")}, "state": state}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user_id, "username": user_name or user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "trigger_id": self._new_trigger(user_id),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
        }
        body = urlencode({"payload": json.dumps(payload)})
        result = await self._post_to_bot(body, self.signed_headers(body))
        self._after_submission(view, user_id, state, result)
        return result

    @staticmethod
    def _input_state(view: dict, values: dict[str, str]) -> dict:
        state: dict[str, dict] = {}
        for block in view.get("blocks") or []:
            element = block.get("element") if block.get("type") == "input" else None
            if not isinstance(element, dict):
                continue
            action_id = element.get("action_id")
            typed = values.get(action_id) if action_id else None
            state.setdefault(block["block_id"], {})[action_id] = {"type": element.get("type"), "value": typed}
        return {"values": state}

    def _after_submission(self, view: dict, user_id: str, state: dict, result: SlackHTTPResult) -> None:
        view["state"] = state
        answer = result.json if isinstance(result.json, dict) else {}
        if result.status == 200 and answer.get("response_action") == "errors":
            view["errors"] = answer.get("errors") or {}
            return
        if result.status == 200:  # an empty answer (or "clear") closes it
            view.pop("errors", None)
            open_ids = self.open_views.get(user_id) or []
            if view["id"] in open_ids:
                open_ids.remove(view["id"])

    # ------------------------------------------------------------------ events

    def event_callback(self, event: dict) -> dict:
        """The Events API envelope around `event` (e.g. {"type": "app_home_opened", "user": …})."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True, "is_enterprise_install": False}
            ],
            "is_ext_shared_channel": False,
        }

    async def send_event(self, event: dict) -> SlackHTTPResult:
        """POST an Events API callback to the bot, signed, as JSON."""
        body = json.dumps(self.event_callback(event))
        headers = {**self.signed_headers(body), "Content-Type": "application/json"}
        return await self._post_to_bot(body, headers)

    async def open_home(self, user_id: str) -> SlackHTTPResult:
        """The person opens the bot's App Home tab: an app_home_opened event."""
        view = self.home_views.get(user_id)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id[1:],
            "tab": "home",
        }
        if view is not None:
            event["view"] = view
        return await self.send_event(event)
