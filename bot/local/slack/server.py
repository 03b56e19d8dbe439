"""LocalSlack: the HTTP server that answers the bot's Web API calls, upload URLs and response_url
posts, recording every call and applying injected faults and the rate limit on the way."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from bot.local.slack.files import Files, upload_content
from bot.local.slack.limits import Faults, RateLimit
from bot.local.slack.protocol import METHOD_SCOPES, SCOPES, ApiError, Call, bearer_token, read_args
from bot.local.slack.socket import SocketMode
from bot.local.slack.webapi import WebApi


class LocalSlack(Faults, WebApi, Files, SocketMode):
    def __init__(
        self,
        signing_secret: str,
        bot_token: str = "xoxb-local-token",
        app_token: str = "xapp-local-token",
        team_id: str = "T0LOCAL",
        bot_user_id: str = "U0BOT",
        *,
        team_domain: str = "local",
        bot_id: str = "B0BOT",
        app_id: str = "A0LOCAL",
        rate_limit: RateLimit | None = None,
    ):
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.app_token = app_token  # the app-level token Socket Mode connects with
        self.scopes = set(SCOPES.split(","))  # the bot token's; take one away to see missing_scope
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.verification_token = "local-verification-token"  # the deprecated `token` field
        self.api_url = ""
        self.base_url = ""
        self.bot_url = None

        self.calls = []
        self.messages = {}
        self.ephemerals = []
        self.responses = []
        # file id → Slack's file object plus the upload's content (bytes), channel, thread_ts, message_ts.
        self.files = {}
        # user id → the App Home view last published with views.publish.
        self.home_views = {}
        # Known users and channel names; slash() and click() add theirs, tests may add more.
        self.users = {bot_user_id: {"name": "erpgo", "is_bot": True}}
        self.channel_names = {}
        # User group id (S…) → member user ids, for usergroups.users.list; tests fill it.
        self.usergroups = {}
        self._init_faults(rate_limit)

        self._hooks = {}
        self._triggers = {}
        # view id → a modal opened with views.open; user id → the ids of the modals open in front of them
        self.views = {}
        self.open_views = {}
        self._tickets = set()
        self._sockets = []
        self._acks = {}
        self._listeners = []
        self._changed = asyncio.Condition()
        self._last_ts_us = 0
        self._runner: web.AppRunner | None = None
        self._session = None
        self._methods: dict[str, Callable[[dict], dict]] = self._web_api()

    def _web_api(self) -> dict[str, Callable[[dict], dict]]:
        """The Web API methods this Slack answers, by name."""
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "usergroups.users.list": self._usergroups_users_list,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "apps.connections.open": self._apps_connections_open,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/hooks/{kind}/{key}", self._handle_hook)
        app.router.add_get("/link/", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        # slack_sdk joins base_url and the method with urljoin, so the trailing slash matters.
        self.api_url = f"{self.base_url}/api/"
        self._session = ClientSession(timeout=ClientTimeout(total=60))

    async def close(self) -> None:
        await self.drop_sockets()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def reset(self) -> None:
        """Forget recorded traffic, messages and faults (for a server shared by several tests)."""
        self.calls.clear()
        self.messages.clear()
        self.ephemerals.clear()
        self.responses.clear()
        self.files.clear()
        self.home_views.clear()
        self.views.clear()
        self.open_views.clear()
        self._hooks.clear()
        self._buckets.clear()
        self.ratelimited = 0
        self.recover()

    # ------------------------------------------------------------------ HTTP plumbing

    async def _serve(
        self,
        method: str,
        args: dict,
        answer: Callable[[], dict],
        as_text: Callable[[dict], str] | None = None,
        headers: dict | None = None,
        peer: tuple | None = None,
    ) -> web.Response:
        """Delay, inject a fault or compute the answer, record the call, and reply."""
        arrived = time.monotonic()
        seconds = self._delay_of(method)
        if seconds:
            await asyncio.sleep(seconds)
        fault = self._take_fault(method)
        if fault is not None:
            status, body, headers = fault
        else:
            try:
                status, body = 200, answer()
            except ApiError as error:
                status, body = error.status, error.body
                if error.headers:
                    headers = {**(headers or {}), **error.headers}
        if status == 429:
            self.ratelimited += 1
        await self._record(Call(method, args, arrived, body, status, peer))
        if as_text is not None and status == 200:
            return web.Response(text=as_text(body), status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, parse_error = await read_args(request)
        form_token = args.pop("token", None)  # Slack also takes the token as a form/query field
        token = bearer_token(request) or form_token

        def answer() -> dict:
            if parse_error:
                raise ApiError(parse_error)
            handler = self._methods.get(method)
            if handler is None:
                raise ApiError("unknown_method", req_method=method)
            self._check_token(method, token)
            needed = METHOD_SCOPES.get(method)
            if needed and needed not in self.scopes:
                raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
            self._take_token(method, args)
            return handler(args)

        scopes = {"X-OAuth-Scopes": ",".join(sorted(self.scopes))}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return await self._serve(method, args, answer, headers=scopes, peer=peer)

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        # Slack takes the bytes raw (as slack_sdk sends them) or as a multipart form's file part.
        content = await upload_content(request)
        # The real upload URL answers text/plain "OK - <bytes>", which slack_sdk reads as text.
        args = {"file_id": file_id, "size": len(content or b"")}
        return await self._serve(
            "upload", args, lambda: self._upload(file_id, content), as_text=lambda body: f"OK - {body['size']}"
        )

    async def _handle_hook(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        raw = await request.text()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        args = payload if isinstance(payload, dict) else {"raw": raw}
        return await self._serve("response_url", args, lambda: self._hook_answer(key, payload))
