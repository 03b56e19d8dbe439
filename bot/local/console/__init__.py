"""The console: the local Slack and the real bot (as in the shell) as a web page in a browser.

`erpgo-bot console [--host H] [--port P]` serves channels, messages and threads drawn as Slack draws
Block Kit, shared files, modals, the App Home tab, a composer for `/erpgo …` and a switch to act as
another person. What you do there reaches the bot as Slack would send it: signed, over HTTP.
"""

from __future__ import annotations

import sys

from bot.local.console.server import Console, Verb, start_console
from bot.settings import Settings

__all__ = ["Console", "Verb", "run_console", "start_console"]


async def run_console(settings: Settings, host: str, port: int, *, bot_port: int = 0) -> int:
    """Serve the console until Ctrl-C or SIGTERM."""
    from bot.local.shell import local_bot
    from bot.server import StopSignals

    async with local_bot(settings, bot_port) as (slack, runtime):
        verbs = [Verb(f"/erpgo {v.name}", v.usage, v.summary) for v in runtime.registry.verbs.values()]
        channels = [(settings.erpgo_alert_channel, "alerts")] if settings.erpgo_alert_channel else []
        console = Console(slack, verbs, channels)
        runner, bound = await start_console(console, host, port)
        print(f"ERPGo console: http://{host}:{bound}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
        signals = StopSignals()
        try:
            await signals.first.wait()
        finally:
            signals.restore()
            await runner.cleanup()
    return 0
