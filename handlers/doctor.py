"""`/erpgo doctor`: whether the bot is ready for the night it is needed (bot/doctor) — one line per
capability, the ones not ready first with why and the fix. Only the asker sees it."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.core.registry import Runbook, UsageError
from bot.doctor import Readiness, summary
from bot.doctor.checkup import diagnose
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.render import Message, escape

PROBE_TIMEOUT = 2.0  # s per probe: the answer goes in the ack, inside Slack's 3 s
MARKS = {True: ":white_check_mark:", False: ":x:", None: ":white_circle:"}

bot_verbs = Runbook("doctor")


@bot_verbs.bot_verb(
    "doctor", "whether every capability is ready: Slack scopes, the bot database, approvers and privileges"
)
async def doctor_verb(runtime: Runtime, inv: object, args: list[str]) -> Message:
    if args:
        raise UsageError("`doctor` takes no arguments")
    return doctor_message(await diagnose(runtime, PROBE_TIMEOUT))


def doctor_message(lines: list[Readiness]) -> Message:
    ordered = sorted(lines, key=lambda line: (line.ready is not False, line.capability))
    shown = [f"*{escape(summary(lines))}*"]
    for line in ordered:
        fix = f"\n      _fix:_ {escape(line.fix)}" if line.fix and line.ready is False else ""
        shown.append(f"{MARKS[line.ready]} *{escape(line.capability)}* — {escape(line.detail)}{fix}")
    blocks: list[Block] = []
    chunk = ""
    for text in shown:
        if len(chunk) + len(text) > render.MAX_SECTION - 100:
            blocks.append(render.section(chunk))
            chunk = ""
        chunk += text + "\n"
    blocks.append(render.section(chunk))
    return render.message(summary(lines), blocks)
