"""A local Slack: the Web API the bot calls, and the signed requests Slack sends to the bot.

Slack is the one component that cannot be reached from a test machine, so this package stands in
for it, speaking Slack's real HTTP protocol both ways so that the bot's unmodified Bolt and
slack_sdk code talks to it:

* **Web API** (an aiohttp server, server.py; methods in webapi.py and files.py): ``auth.test``,
  ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``, ``chat.getPermalink``,
  ``conversations.info``, ``users.info``, ``usergroups.users.list``, ``views.publish``,
  ``views.open``, ``views.update``, ``apps.connections.open`` and the three steps of ``files_upload_v2``
  (``files.getUploadURLExternal``, the POST to the upload URL, ``files.completeUploadExternal``). Point the bot's ``AsyncWebClient(base_url=...)`` at
  :attr:`LocalSlack.api_url`. Every call is recorded in :attr:`LocalSlack.calls`, messages are kept
  in :attr:`LocalSlack.messages` (state.py), uploaded files in :attr:`LocalSlack.files`, App Home
  views in :attr:`LocalSlack.home_views`.
* **Faults and rate limits** (limits.py): 429, 5xx and slowness can be injected; :class:`RateLimit`
  (off unless asked for) gives each channel a token bucket for ``chat.postMessage`` the way Slack
  documents its limit (about one message a second per channel, short bursts allowed); over it the
  answer is HTTP 429 with ``Retry-After``.
* **Acting as a person** (user.py): :meth:`LocalSlack.slash` and :meth:`LocalSlack.click` POST
  slash commands and ``block_actions`` payloads to :attr:`LocalSlack.bot_url`, signed with the v0
  scheme; :meth:`LocalSlack.response_url` makes a URL whose POSTs are applied the way Slack applies
  them (ephemeral, in_channel, replace_original, delete_original).
* **Modals and events** (views.py): :meth:`LocalSlack.submit_view` fills and submits a modal the
  bot opened (view_submission), :meth:`LocalSlack.send_event` / :meth:`LocalSlack.open_home` send
  Events API callbacks (app_home_opened).
* **Socket Mode** (socket.py): the WebSocket apps.connections.open points to; ``socket_slash``,
  ``socket_click``, ``socket_event`` deliver envelopes and wait for their acks; ``drop_sockets``.
* **Block Kit validation** (blocks.py): :func:`block_errors`, the limits Slack enforces.

Usage::

    async with LocalSlack(signing_secret="s3cr3t") as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.bot_url = "http://127.0.0.1:3000/slack/events"
        await slack.slash("status")
        call = await slack.wait_for(lambda c: c.method == "chat.postMessage")
        print(render_text(slack.messages[call.args["channel"], call.response["ts"]]))
"""

from __future__ import annotations

from bot.local.slack.blocks import MAX_BLOCKS, MAX_VIEW_BLOCKS, block_errors
from bot.local.slack.files import FILE_PREVIEW_LINES
from bot.local.slack.limits import RateLimit
from bot.local.slack.protocol import ACK_DEADLINE_S, Call, SlackHTTPResult
from bot.local.slack.server import LocalSlack
from bot.local.text import render_text

__all__ = [
    "ACK_DEADLINE_S",
    "FILE_PREVIEW_LINES",
    "MAX_BLOCKS",
    "MAX_VIEW_BLOCKS",
    "Call",
    "LocalSlack",
    "RateLimit",
    "SlackHTTPResult",
    "block_errors",
    "render_text",
]
