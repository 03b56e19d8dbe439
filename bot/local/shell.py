"""The shell: the real bot behind a local Slack, driven from a terminal.

Each line you type is sent to the bot as Slack would send it (signed, over HTTP); what the bot
posts back is rendered as text — on a terminal with Slack's formatting as styles, buttons as
buttons and shared files as files. Buttons work too: `approve 42`, `press alert.ack`, or
`/as U123 approve 42` to click as another user. The bot's own log lines go to a file (or stderr),
never between the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from bot.app import RUNTIME, Runtime
from bot.core.errors import describe_error
from bot.local.alerting import AlertLineError, AlertSender
from bot.local.slack import LocalSlack
from bot.local.terminal import styled
from bot.local.text import render_text
from bot.settings import Settings
from bot.targets import NotConfigured

PROMPT = "erpgo> "
NOTIFY_WAIT = 30.0  # s: Alertmanager's group wait and interval, then the webhook, the triage and its delivery
SHELL_HELP = """Type a slash command as in Slack, e.g. `/erpgo health` or `/erpgo help`.
  approve N | reject N        click the button of approval N as yourself
  press ACTION_ID             click that button on the newest message showing it (e.g. press alert.ack)
  /as USER <line>             do <line> as another Slack user (e.g. /as U0BOB approve 3)
  /user USER                  switch who you are
  fire ALERT [label=value…]   send an alert through Alertmanager (ALERTMANAGER_URL): its thread opens, triaged
  resolve ALERT               resolve an alert fired before
  quit                        leave"""


class Shell:
    def __init__(self, slack: LocalSlack, runtime: Runtime, user: str, out: Any = None, styles: bool | None = None):
        self.slack = slack
        self.runtime = runtime
        self.user = user
        self.out = out or sys.stdout
        self.seen_calls = 0
        self.seen_responses = 0
        self.alerts: AlertSender | None = None  # fire/resolve, once ALERTMANAGER_URL is there
        # terminal styles on a terminal (NO_COLOR respected by rich), plain text into pipes and files
        self.styles = styles if styles is not None else bool(getattr(self.out, "isatty", lambda: False)())
        self.console = Console(file=self.out, force_terminal=self.styles, highlight=False, soft_wrap=True)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def show_text(self, text: str) -> None:
        """A message's text as Slack would show it: styled on a terminal, plain otherwise."""
        if self.styles:
            self.console.print(styled(text))
            self.out.flush()
        else:
            self.say(text)

    async def handle(self, line: str, user: str | None = None) -> bool:
        """Run one line; False when the user wants to leave."""
        line = line.strip()
        user = user or self.user
        if not line:
            return True
        if line in ("quit", "exit", "/quit"):
            return False
        if line in ("help", "?"):
            self.say(SHELL_HELP)
            return True
        word, _, rest = line.partition(" ")
        if word == "/as":
            other, _, inner = rest.strip().partition(" ")
            return await self.handle(inner, user=other) if other and inner else self._usage("/as USER <line>")
        if word == "/user":
            self.user = rest.strip() or self.user
            self.say(f"you are now {self.user}")
            return True
        if word in ("approve", "reject"):
            await self.click(word, rest.strip(), user)
            return True
        if word == "press":
            await self.press(rest.strip(), user)
            return True
        if word in ("fire", "resolve"):
            await self.alert(word, rest.split())
            return True
        if word.startswith("/"):
            result = await self.slack.slash(rest, command=word, user_id=user, user_name=user.lower())
            await self.show(result)
            return True
        return self._usage("a slash command such as /erpgo health")

    def _usage(self, what: str) -> bool:
        self.say(f"expected {what}; type `help`")
        return True

    async def alert(self, verb: str, words: list[str]) -> None:
        """Send the alert through Alertmanager, then show what its notification brought (the thread,
        its triage; an update and a reply on resolve)."""
        try:
            sender = self.alerts or AlertSender(self.runtime.targets.alertmanager)
        except NotConfigured:
            self.say("no Alertmanager to send alerts through: set ALERTMANAGER_URL (scripts/demo does)")
            return
        self.alerts = sender
        seen = len(self.slack.calls)
        try:
            labels = await (sender.fire(words) if verb == "fire" else sender.resolve(words))
        except AlertLineError as exc:
            self._usage(str(exc))
            return
        except Exception as exc:  # Alertmanager down or refusing: said, the shell goes on
            self.say(f"Alertmanager did not take the alert: {describe_error(exc)}")
            return
        shown = " ".join(f"{k}={v}" for k, v in labels.items())
        self.say(f"── sent to Alertmanager ({'firing' if verb == 'fire' else 'resolved'}): {shown} ──")
        await self.notified(labels["alertname"], seen)

    async def notified(self, alertname: str, since: int) -> None:
        """Wait for the bot to post about `alertname` (Alertmanager's group wait, then the webhook),
        for its triage to finish and for the outbox to deliver it; then print it."""

        def about_alert(call: Any) -> bool:
            posted = call.method in ("chat.postMessage", "chat.update") and call.response.get("ok")
            return bool(posted) and call in self.slack.calls[since:] and alertname in json.dumps(call.args)

        try:
            await self.slack.wait_for(about_alert, timeout=NOTIFY_WAIT)
            await self.runtime.tasks.idle(timeout=120)
            await self.delivered()
        except TimeoutError:
            self.say(f"(nothing about {alertname} from the bot within {NOTIFY_WAIT:g} s; see its log)")
        self.print_new_activity()

    async def delivered(self) -> None:
        """Until the outbox has nothing left to post (it has no event for that: asked every 0.1 s)."""
        async with asyncio.timeout(NOTIFY_WAIT):
            while self.runtime.outbox is not None and (await self.runtime.outbox.health())["pending"]:
                await asyncio.sleep(0.1)

    async def click(self, action: str, approval_id: str, user: str) -> None:
        found = self.find_button(action, approval_id)
        if found is None:
            self.say(f"no message with a {action} button for approval {approval_id!r}")
            return
        message, action_id = found
        await self.show(await self.slack.click(message, action_id, user_id=user, user_name=user.lower()))

    async def press(self, action_id: str, user: str) -> None:
        message = next(
            (m for m in reversed(list(self.slack.messages.values())) if action_id in _action_ids(self.slack, m)), None
        )
        if message is None:
            self.say(f"no message shows a button {action_id!r}")
            return
        await self.show(await self.slack.click(message, action_id, user_id=user, user_name=user.lower()))

    def find_button(self, action: str, value: str) -> tuple[dict, str] | None:
        for message in reversed(list(self.slack.messages.values())):
            for button in self.slack.buttons(message):
                if button.get("value") == value and action in button.get("action_id", ""):
                    return message, button["action_id"]
        return None

    async def show(self, result: Any) -> None:
        """Print the HTTP answer (the ephemeral ack) and everything the bot posted since."""
        if result.status != 200:
            self.say(f"[slack got HTTP {result.status}] {result.body_text[:200]}")
        elif result.json and (result.json.get("text") or result.json.get("blocks")):
            self.show_text("(only you) " + render_text(result.json))
        await self.runtime.tasks.idle(timeout=120)
        with contextlib.suppress(TimeoutError):
            await self.delivered()
        self.print_new_activity()

    def print_new_activity(self) -> None:
        for call in self.slack.calls[self.seen_calls :]:
            if call.response.get("ok") is False:
                self.say(f"[{call.method} failed: {call.response.get('error')}]")
            elif call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
                self.show_text(self.describe(call))
            elif call.method == "files.completeUploadExternal":
                self.show_text(self.describe_share(call))
            elif call.method == "views.open":
                title = ((call.response.get("view") or {}).get("title") or {}).get("text", "")
                self.say(f"── a form opened: {title} (fill it in in Slack; the shell cannot) ──")
        self.seen_calls = len(self.slack.calls)
        for response in self.slack.responses[self.seen_responses :]:
            self.show_text("── response ──\n" + render_text(response))
        self.seen_responses = len(self.slack.responses)

    def describe_share(self, call: Any) -> str:
        """A file shared in a thread: the message Slack posted for it, with the file."""
        for file in call.response.get("files") or []:
            recorded = self.slack.files.get(file.get("id"), {})
            message = self.slack.messages.get((str(recorded.get("channel")), str(recorded.get("message_ts"))))
            if message is not None:
                where = f"thread reply under {message['thread_ts']}" if message.get("thread_ts") else "file shared"
                return f"── {where} ──\n" + render_text(message)
        return "── file shared ──"

    def describe(self, call: Any) -> str:
        args = call.args
        message = call.response.get("message") or args
        if call.method == "chat.update":
            header = f"── message {args.get('ts')} updated ──"
        elif call.method == "chat.postEphemeral":
            header = f"── only {args.get('user')} sees ──"
        elif args.get("thread_ts"):
            header = f"── thread reply under {args.get('thread_ts')} ──"
        else:
            header = f"── #{args.get('channel')} · message {call.response.get('ts')} ──"
        return header + "\n" + render_text(message)


@contextlib.asynccontextmanager
async def local_bot(settings: Settings, port: int = 0) -> AsyncIterator[tuple[LocalSlack, Runtime]]:
    """A local Slack and the real bot over HTTP on `port` (0: any free one), wired to each other with a
    fresh signing secret."""
    from bot.server import start_http

    signing_secret = secrets.token_hex(16)
    slack = LocalSlack(signing_secret)
    await slack.start()
    local_settings = settings.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.bot_token),
            "slack_signing_secret": SecretStr(signing_secret),
            "slack_api_url": slack.api_url,
        }
    )
    try:
        runner, port = await start_http(local_settings, "127.0.0.1", port)
    except BaseException:
        await slack.close()
        raise
    slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
    try:
        yield slack, runner.app[RUNTIME]
    finally:
        await runner.cleanup()
        await slack.close()


async def run_shell(settings: Settings, user: str, log_note: str | None = None, *, port: int = 0) -> int:
    async with local_bot(settings, port) as (slack, runtime):
        shell = Shell(slack, runtime, user)
        if log_note:
            shell.say(log_note)
        if sys.stdin.isatty():
            await interactive(shell)
        else:
            lines = [line for line in sys.stdin.read().splitlines() if line.strip()] or ["/erpgo health"]
            for line in lines:
                shell.say(f"{PROMPT}{line}")
                if not await shell.handle(line):
                    break
    return 0


async def interactive(shell: Shell) -> None:
    shell.say("ERPGo bot shell — what you type goes to the bot as a Slack slash command. `help` for more.")
    loop = asyncio.get_running_loop()
    while True:
        try:
            shell.out.write(PROMPT)  # on the shell's own output: input() would put it on stderr, among the logs
            shell.out.flush()
            line = await loop.run_in_executor(None, input)
        except EOFError:
            return
        if not await shell.handle(line):
            return


def _action_ids(slack: LocalSlack, message: dict) -> list[str]:
    return [str(button.get("action_id")) for button in slack.buttons(message)]
