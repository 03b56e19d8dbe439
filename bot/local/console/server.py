"""The console's web server: one page that shows the local Slack's state and acts in it as a person.

It reads what the local Slack keeps (messages, threads, ephemerals, files, modals, App Home views)
and sends the bot what Slack would, through the local Slack's own signed requests (slash commands,
block_actions, view_submission, app_home_opened). Every call the local Slack records is announced to
the page over server-sent events; the page then reads the state again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.local.slack import LocalSlack, SlackHTTPResult
from bot.local.text import EMOJI

STATIC = Path(str(files("bot.local.console") / "static"))
KEEPALIVE_S = 15.0  # a comment line on the event stream, so proxies and browsers keep it open
# People the console knows from the start: you, and two colleagues to approve as.
PEOPLE = {"U0YOU": "you", "U0ALICE": "alice", "U0BOB": "bob"}
DEFAULT_CHANNEL = ("C0OPS", "ops")
# The browser draws these pictures too (the shell's terminal keeps their shortcodes).
PICTURES = {
    **EMOJI,
    "no_bell": "🔕",
    "eyes": "👀",
    "paperclip": "📎",
    "memo": "📝",
    "hourglass": "⌛",
    "repeat": "🔁",
    "no_entry_sign": "🚫",
    "leftwards_arrow_with_hook": "↩️",
    "heavy_plus_sign": "➕",
    "heavy_minus_sign": "➖",
    "chart_with_upwards_trend": "📈",
    "busts_in_silhouette": "👥",
    "book": "📖",
    "ballot_box_with_check": "☑️",
}
PICTURE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# Keys of a stored message the page has no use for.
HIDDEN_KEYS = ("history", "bot_id", "app_id", "team")


@dataclass
class Verb:
    name: str
    usage: str
    summary: str


class Console:
    """The state the page reads and the actions it sends, over one local Slack."""

    def __init__(self, slack: LocalSlack, verbs: Iterable[Verb], channels: Iterable[tuple[str, str]] = ()):
        self.slack = slack
        self.verbs = sorted(verbs, key=lambda v: v.name)
        self.version = 0
        self.closing = False
        self._tick = asyncio.Event()
        for user_id, name in PEOPLE.items():
            slack.users.setdefault(user_id, {"name": name})
        for channel_id, name in (DEFAULT_CHANNEL, *channels):
            slack.channel_names.setdefault(channel_id, name)
        slack.on_call(lambda _call: self.touch())

    def touch(self) -> None:
        """Something changed: wake every event stream."""
        self.version += 1
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def next_change(self, timeout: float) -> bool:
        """Wait until something changes (True) or `timeout` seconds pass (False)."""
        tick = self._tick
        try:
            await asyncio.wait_for(tick.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.closing = True
        self.touch()

    # ------------------------------------------------------------------ reading

    def state(self, user: str, channel: str) -> dict:
        """What `user` sees with `channel` open: channels, people, messages with threads, home, modal."""
        modal = self.slack.modal_of(user)
        return {
            "version": self.version,
            "me": user,
            "bot_user": self.slack.bot_user_id,
            "channel": channel,
            "channels": self.channels(),
            "people": self.people(),
            "verbs": [vars(v) for v in self.verbs],
            "emoji": PICTURES,
            "messages": self.messages(user, channel),
            "home": self.slack.home_views.get(user),
            "modal": _visible(modal) if modal else None,
        }

    def channels(self) -> list[dict]:
        ids = dict.fromkeys([*self.slack.channel_names, *(channel for channel, _ in self.slack.messages)])
        return [{"id": c, "name": self.slack.channel_names.get(c, c.lower())} for c in ids if not c.startswith("D")]

    def people(self) -> list[dict]:
        return [
            {"id": user_id, "name": known.get("name", user_id.lower())}
            for user_id, known in self.slack.users.items()
            if not known.get("is_bot")
        ]

    def messages(self, user: str, channel: str) -> list[dict]:
        """Top-level messages of `channel` (and `user`'s ephemerals), each with its replies."""
        shown = [_visible(m) for m in self.slack.channel_messages(channel)]
        mine = [_visible(e) for e in self.slack.ephemerals if e["user"] == user and e["channel"] == channel]
        by_ts = {m["ts"]: m for m in shown}
        for message in shown:
            message["replies"] = [_visible(r) for r in self.slack.thread(channel, message["ts"])]
        for ephemeral in mine:
            parent = by_ts.get(ephemeral.get("thread_ts", ""))
            if parent is not None:
                parent["replies"].append(ephemeral)
                parent["replies"].sort(key=lambda m: m["ts"])
            else:
                shown.append(ephemeral)
        return sorted(shown, key=lambda m: m["ts"])

    def find_message(self, channel: str, ts: str, user: str) -> dict | None:
        """The live message (or `user`'s ephemeral) a person clicked on."""
        found = self.slack.messages.get((channel, ts))
        if found is None:
            found = next((e for e in self.slack.ephemerals if e["ts"] == ts and e["user"] == user), None)
        return found

    def name_of(self, user: str) -> str:
        return str(self.slack.users.get(user, {}).get("name") or user.lower())

    # ------------------------------------------------------------------ acting

    async def command(self, user: str, channel: str, line: str) -> SlackHTTPResult:
        command, _, text = line.strip().partition(" ")
        return await self.slack.slash(
            text.strip(),
            command=command,
            user_id=user,
            user_name=self.name_of(user),
            channel_id=channel,
            channel_name=self.slack.channel_names.get(channel, channel.lower()),
        )

    async def act(self, user: str, message: dict, action_id: str, option: str | None) -> SlackHTTPResult:
        """A click on a button, or a choice in a menu when `option` is given."""
        who: dict[str, Any] = {"user_id": user, "user_name": self.name_of(user), "channel_id": message.get("channel")}
        if option is None:
            return await self.slack.click(message, action_id, **who)
        return await self.slack.choose(message, action_id, option, **who)

    async def submit(self, user: str, view_id: str, values: dict[str, str]) -> SlackHTTPResult | None:
        view = self.slack.views.get(view_id)
        if view is None or view.get("user") != user:
            return None
        result = await self.slack.submit_view(view, values, user_id=user, user_name=self.name_of(user))
        self.touch()  # an answer with errors changes the modal without a call the local Slack records
        return result

    def dismiss(self, user: str, view_id: str) -> None:
        open_ids = self.slack.open_views.get(user) or []
        if view_id in open_ids:
            open_ids.remove(view_id)
        self.touch()


def _visible(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in HIDDEN_KEYS}


# ---------------------------------------------------------------------- HTTP


CONSOLE = web.AppKey("console", Console)


def build_app(console: Console) -> web.Application:
    app = web.Application()
    app[CONSOLE] = console
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/events", events)
    app.router.add_get("/files/{file_id}", get_file)
    app.router.add_post("/api/command", post_command)
    app.router.add_post("/api/action", post_action)
    app.router.add_post("/api/view/submit", post_view_submit)
    app.router.add_post("/api/view/close", post_view_close)
    app.router.add_post("/api/home", post_home)
    app.router.add_post("/api/people", post_person)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[CONSOLE].close()


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def get_state(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    user = request.query.get("user") or next(iter(PEOPLE))
    channel = request.query.get("channel") or DEFAULT_CHANNEL[0]
    return web.json_response(console.state(user, channel), dumps=_dumps)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the state's version each time it changes."""
    console = request.app[CONSOLE]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    sent = -1
    try:
        while not console.closing:
            if sent != console.version:
                sent = console.version
                await response.write(f"data: {sent}\n\n".encode())
            if not await console.next_change(KEEPALIVE_S):
                await response.write(b": keepalive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def get_file(request: web.Request) -> web.Response:
    file = request.app[CONSOLE].slack.files.get(request.match_info["file_id"])
    if file is None or file.get("content") is None:
        raise web.HTTPNotFound(text="no such file")
    headers = {"X-Content-Type-Options": "nosniff"}
    if "download" in request.query:
        headers["Content-Disposition"] = f'attachment; filename="{_safe_name(file["name"])}"'
    return web.Response(body=file["content"], content_type=_shown_as(file), headers=headers)


def _shown_as(file: dict) -> str:
    """Pictures as pictures, text as plain text, anything else as bytes: nothing uploaded runs as a page."""
    mimetype = str(file.get("mimetype") or "")
    if mimetype in PICTURE_TYPES:
        return mimetype
    if mimetype.startswith("text/") or file.get("mode") == "snippet":
        return "text/plain"
    return "application/octet-stream"


async def post_command(request: web.Request) -> web.Response:
    console, form = request.app[CONSOLE], await _json(request)
    line = str(form.get("text") or "").strip()
    if not line.startswith("/") or len(line.split()[0]) < 2:
        return _answer(400, "type a slash command, such as /erpgo health")
    result = await console.command(str(form.get("user")), str(form.get("channel")), line)
    return _result(result)


async def post_action(request: web.Request) -> web.Response:
    console, form = request.app[CONSOLE], await _json(request)
    user = str(form.get("user"))
    message = console.find_message(str(form.get("channel")), str(form.get("ts")), user)
    if message is None:
        return _answer(404, "that message is gone")
    option = form.get("option")
    try:
        result = await console.act(user, message, str(form.get("action_id")), None if option is None else str(option))
    except LookupError as exc:
        return _answer(404, str(exc))
    return _result(result)


async def post_view_submit(request: web.Request) -> web.Response:
    console, form = request.app[CONSOLE], await _json(request)
    typed = form.get("values")
    values = {str(k): str(v) for k, v in typed.items()} if isinstance(typed, dict) else {}
    result = await console.submit(str(form.get("user")), str(form.get("view_id")), values)
    return _answer(404, "that form is closed") if result is None else _result(result)


async def post_view_close(request: web.Request) -> web.Response:
    console, form = request.app[CONSOLE], await _json(request)
    console.dismiss(str(form.get("user")), str(form.get("view_id")))
    return _answer(200, "")


async def post_home(request: web.Request) -> web.Response:
    console, form = request.app[CONSOLE], await _json(request)
    return _result(await console.slack.open_home(str(form.get("user"))))


async def post_person(request: web.Request) -> web.Response:
    """Someone new to act as (a Slack user id and a name)."""
    console, form = request.app[CONSOLE], await _json(request)
    user_id, name = str(form.get("id") or "").strip().upper(), str(form.get("name") or "").strip()
    if not (user_id[:1] in ("U", "W") and user_id.isalnum() and 2 < len(user_id) <= 20):
        return _answer(400, "a Slack user id looks like U0CAROL")
    console.slack.users.setdefault(user_id, {})["name"] = name[:40] or user_id.lower()
    console.touch()
    return _answer(200, "")


async def _json(request: web.Request) -> dict:
    # JSON only: another site's page cannot send that without the browser asking this server first
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="expected application/json")
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    raise web.HTTPBadRequest(text="expected a JSON object")


def _result(result: SlackHTTPResult) -> web.Response:
    """How the bot answered the request the local Slack sent it."""
    if result.status == 200:
        return _answer(200, "")
    return _answer(502, f"the bot answered HTTP {result.status}: {result.body_text[:200]}")


def _answer(status: int, error: str) -> web.Response:
    return web.json_response({"ok": status == 200, "error": error}, status=200 if status == 200 else status)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "file"


async def start_console(console: Console, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the console; returns the runner and the bound port (0 picks a free one)."""
    runner = web.AppRunner(build_app(console), access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
