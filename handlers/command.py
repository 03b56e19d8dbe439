"""The /erpgo slash command: parse, ack within Slack's 3 s, run the verb's checks, post one report."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
import uuid
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot.approvals.publish import expire_and_update, queue_proposals
from bot.context import Actor, CheckContext
from bot.core.engine import run_checks
from bot.core.errors import describe_error, is_unreachable
from bot.core.findings import Finding, worst
from bot.core.logs import log
from bot.core.metrics import COMMANDS
from bot.core.parse import control_character
from bot.core.registry import Args, ContainerArgs, UsageError, Verb
from bot.incidents.commands import record_command_run
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.charts import chart_uploads
from bot.slack.interaction import Invocation
from bot.slack.outbox import Receipt
from bot.store.commands import record_command

MAX_ECHO = 60  # how much of an unknown verb we quote back
REPORT_WAIT = 120.0  # s: how long a report's task waits to see it in Slack (it is queued either way)
NOT_A_MEMBER = ("not_in_channel", "channel_not_found")  # answered through the response_url instead
MAX_TEXT = 4000  # Slack's own limit on a slash command's text; checked before any splitting
WATCHED_LOOKUP_S = 1.0  # s of the 3 s ack the compose project's containers may take to list


def split_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes: fall back to plain words
        return text.split()


def verb_usage(name: str, usage: str) -> str:
    return render.escape(f"`/erpgo {name}{' ' + usage if usage else ''}`")


def help_text(runtime: Runtime) -> str:
    lines = ["*ERPGo on-call bot* — usage: `/erpgo &lt;verb&gt; [args]`"]
    # the runbooks' verbs, then the bot's own (approvals, audit, alerts)
    for verb in sorted(runtime.registry.verbs.values(), key=lambda v: (v.answer is not None, v.name)):
        lines.append(f"• {verb_usage(verb.name, verb.usage)} — {render.escape(verb.summary)}")
    lines.append(f"• {verb_usage('help', '')} — this list")
    return "\n".join(lines)


def usage_reply(runtime: Runtime, problem: str, words: list[str] | None = None) -> render.Message:
    """The problem and the help: of the verb the words most likely meant, else of every verb."""
    meant = runtime.registry.suggest(words) if words else None
    if meant is None:
        return render.text_message(f":grey_question: {problem}\n\n{help_text(runtime)}")
    did_you_mean = f"Did you mean `{render.escape(meant.name)}`?"
    short_help = f"{verb_usage(meant.name, meant.usage)} — {render.escape(meant.summary)}"
    return render.text_message(f":grey_question: {problem} {did_you_mean}\n{short_help}")


def quote(text: str) -> str:
    shown = text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…"
    return "`" + render.escape(shown.replace("`", "'")) + "`"


def register(app: AsyncApp, runtime: Runtime) -> None:
    @app.command("/erpgo")
    async def erpgo(ack: AsyncAck, command: dict[str, Any], context: dict[str, Any]) -> None:
        invocation = Invocation.of(command, str(context.get("request_id") or uuid.uuid4().hex[:12]))
        await dispatch(runtime, invocation, ack)


def text_problem(text: str) -> str | None:
    """What makes a slash text unreadable before it is even split into words, or None."""
    if len(text) > MAX_TEXT:
        return f"That is {len(text):,} characters long; a command is at most {MAX_TEXT:,}."
    char = control_character(text)
    if char is not None:
        return f"The text contains a control character (U+{ord(char):04X}); type the command again without it."
    return None


async def dispatch(runtime: Runtime, inv: Invocation, ack: AsyncAck) -> None:
    """The router: read the text, find the verb, apply the policy, then run it (a usage message
    for anything it cannot read)."""
    problem = text_problem(inv.text)
    if problem is not None:
        await usage(ack, "unreadable", usage_reply(runtime, problem))
        return
    words = split_words(inv.text.strip())
    if not words or words[0].lower() == "help":
        COMMANDS.labels("help", "ok").inc()
        await ack(**render.text_message(help_text(runtime)))
        return
    verb, args = runtime.registry.find_verb(words)
    if verb is None:
        await usage(ack, "unknown", usage_reply(runtime, f"Unknown verb {quote(' '.join(words[:2]))}.", words))
        return
    if await refused(runtime, inv, ack, verb.name):
        return
    remember(runtime, inv, verb.name, args)
    if verb.answer is not None:
        await run_bot_verb(runtime, inv, ack, verb, args)
    else:
        await start_verb(runtime, inv, ack, verb, words, args)


async def usage(ack: AsyncAck, verb_name: str, reply: render.Message) -> None:
    COMMANDS.labels(verb_name, "usage").inc()
    log.info("command", verb=verb_name, outcome="usage")
    await ack(**reply)


def verb_usage_reply(verb: Verb, problem: str) -> render.Message:
    return render.text_message(f":grey_question: {render.escape(problem)}\nUsage: {verb_usage(verb.name, verb.usage)}")


async def start_verb(
    runtime: Runtime, inv: Invocation, ack: AsyncAck, verb: Verb, words: list[str], args: list[str]
) -> None:
    """Parse the verb's arguments (a bad one is its usage, or the verb a mistyped sub-verb meant), ack,
    and run its checks in the background."""
    try:
        parsed = verb.parse_args(args)
        if isinstance(parsed, ContainerArgs) and parsed.container is not None:
            await watched_or_later(runtime, parsed.container)  # a verb reads only watched containers
    except UsageError as exc:
        if runtime.registry.suggest(words, instead_of=verb):  # a mistyped sub-verb: `db lcoks`
            await usage(ack, "unknown", usage_reply(runtime, f"Unknown verb {quote(' '.join(words[:2]))}.", words))
        else:
            await usage(ack, verb.name, verb_usage_reply(verb, str(exc)))
        return
    needed = parsed.needs_permission(runtime.settings)
    reason = runtime.policy.permission_refusal(inv.user_id, needed) if needed else None
    if reason is not None:
        await refuse(runtime, inv, ack, verb.name, reason)
        return
    await ack(**render.text_message(verb.ack or f"Running `{verb.name}`…"))
    runtime.tasks.spawn(run_verb(runtime, inv, verb, parsed), name=f"verb:{verb.name}:{inv.request_id}")


def remember(runtime: Runtime, inv: Invocation, verb_name: str, args: list[str]) -> None:
    """Keep the command for the person's App Home (in the background: the ack does not wait)."""
    if not runtime.store.configured:
        return

    async def record() -> None:
        try:
            await record_command(runtime.store, inv.user_id, inv.channel_id, verb_name, " ".join(args))
        except Exception as exc:
            log.info("command_not_remembered", error=type(exc).__name__)

    runtime.tasks.spawn(record(), name=f"remember:{inv.request_id}")


async def watched_or_later(runtime: Runtime, container: str) -> None:
    """NotWatched (a UsageError) for a container the bot does not watch. When the engine cannot say in
    time (ERPGO_COMPOSE_PROJECT), the verb's own check asks again and refuses it there."""
    try:
        await asyncio.wait_for(runtime.targets.ensure_watched(container), WATCHED_LOOKUP_S)
    except UsageError:
        raise
    except Exception as exc:
        log.info("watched_lookup_deferred", error=type(exc).__name__)


async def refused(runtime: Runtime, inv: Invocation, ack: AsyncAck, verb_name: str) -> bool:
    """The policy check, before anything runs: a refusal is told to the asker alone and audited."""
    reason = runtime.policy.command_refusal(inv.user_id, inv.channel_id, verb_name)
    if reason is None:
        return False
    await refuse(runtime, inv, ack, verb_name, reason)
    return True


async def refuse(runtime: Runtime, inv: Invocation, ack: AsyncAck, verb_name: str, reason: str) -> None:
    """A refusal told to the asker alone and audited."""
    COMMANDS.labels(verb_name, "refused").inc()
    log.info("command", verb=verb_name, outcome="refused")
    await ack(**render.text_message(f":no_entry: {reason}"))
    if runtime.approvals.configured:
        runtime.tasks.spawn(
            runtime.approvals.audit_quietly(
                inv.user_id, "refused", reason, action=f"/erpgo {verb_name}", channel=inv.channel_id
            ),
            name=f"audit:{inv.request_id}",
        )


async def run_bot_verb(runtime: Runtime, inv: Invocation, ack: AsyncAck, verb: Verb, args: list[str]) -> None:
    """The bot's own verbs answer in the ack itself."""
    assert verb.answer is not None
    try:
        reply = await verb.answer(runtime, inv, args)
    except UsageError as exc:
        await usage(ack, verb.name, verb_usage_reply(verb, str(exc)))
        return
    COMMANDS.labels(verb.name, "ok").inc()
    await ack(**(reply or render.text_message("Done.")))


async def run_verb(runtime: Runtime, inv: Invocation, verb: Verb, args: Args) -> None:
    structlog.contextvars.bind_contextvars(verb=verb.name)  # request and user: bound by the middleware
    started = time.perf_counter()
    ctx = CheckContext(runtime.targets, runtime.settings, args, Actor(requester=inv.user_id))
    try:
        findings = await run_checks(verb.checks, ctx)
    except asyncio.CancelledError:  # the bot is stopping and the grace ran out: say so in the channel
        with contextlib.suppress(Exception):
            await asyncio.wait_for(note_interrupted(runtime, inv, verb.name), 5)
        raise
    elapsed = time.perf_counter() - started
    outcome = worst(f.status for f in findings).value
    report_ts = None
    try:
        post = post_private_report if verb.private else post_report
        report_ts = await post(runtime, inv, f"ERPGo {verb.name}", findings, elapsed)
    except Exception as exc:
        outcome = "post_failed"
        log.error("report_not_posted", error=describe_error(exc))
    await remember_run(runtime, inv, verb, report_ts, findings, elapsed)
    COMMANDS.labels(verb.name, outcome).inc()
    log.info("command", outcome=outcome, duration_ms=round(elapsed * 1000, 1), findings=len(findings))


async def remember_run(
    runtime: Runtime, inv: Invocation, verb: Verb, report_ts: str | None, findings: list[Finding], elapsed: float
) -> None:
    """The command, where its report is and what it found, for the incident timeline (quietly); of a
    private verb only who ran it."""
    if not runtime.store.configured:
        return
    try:
        await record_command_run(
            runtime.store,
            user_id=inv.user_id,
            channel=inv.channel_id,
            verb=verb.name,
            text=inv.text.strip(),
            report_ts=report_ts,
            findings=findings,
            seconds=elapsed,
            private=verb.private,
        )
    except Exception as exc:
        log.info("command_run_not_recorded", error=type(exc).__name__)


async def post_report(
    runtime: Runtime, inv: Invocation, title: str, findings: list[Finding], elapsed: float
) -> str | None:
    """The headline in the channel, the details threaded under it, then each proposal as an
    approval message of its own in the thread — queued together in the outbox, delivered in that
    order. Without the bot's database (down right now), through the command's response_url. Returns
    the headline's ts once Slack has it (None when it is not known yet, or answered elsewhere)."""
    footer = f"requested by {render.mention(inv.user_id, missing='?')} · {elapsed:.2f} s"
    head = render.headline(title, findings, footer)
    body = render.details(title, findings)
    if any(f.proposals for f in findings):
        await expire_and_update(runtime, wait=0)  # overdue approvals lose their buttons first
    try:
        receipt = await queue_report(runtime, inv, head, title, findings)
    except Exception as exc:
        if not inv.response_url:
            raise
        level = log.warning if is_unreachable(exc) else log.error
        level("report_via_response_url", reason="the outbox is unavailable", error=describe_error(exc))
        await respond_in_channel(runtime, inv, head, body)
        return None
    delivered = await receipt.wait(REPORT_WAIT)
    if delivered and not delivered[0].ok and delivered[0].error in NOT_A_MEMBER and inv.response_url:
        # the bot is not a member of this channel: answer through the command's response_url
        await respond_in_channel(runtime, inv, head, body)
        return None
    return delivered[0].ts if delivered and delivered[0].ok else None


async def queue_report(
    runtime: Runtime, inv: Invocation, head: render.Message, title: str, findings: list[Finding]
) -> Receipt:
    """Headline, details, the file of evidence too long for a message, then the proposals."""
    upload = render.evidence_upload(title, findings)
    charts = await chart_uploads(findings)  # drawn before the thread's lock is taken
    async with runtime.outbox.thread(f"report:{uuid.uuid4().hex}", inv.channel_id) as rows:
        rows.post(head)
        rows.reply(render.details(title, findings, attached=upload is not None))
        if upload is not None:
            rows.upload(upload, kind="report.file")
        for message, png in charts:
            rows.upload_bytes(message, png, kind="report.chart")
        await queue_proposals(runtime, rows, findings, requester=inv.user_id)
    return rows.receipt


async def respond_in_channel(runtime: Runtime, inv: Invocation, head: render.Message, body: render.Message) -> None:
    assert inv.response_url
    await runtime.slack.respond(inv.response_url, head, in_channel=True)
    await runtime.slack.respond(inv.response_url, body, in_channel=True)


async def note_interrupted(runtime: Runtime, inv: Invocation, verb: str) -> None:
    """A command acked but never answered because the bot stopped: the channel hears it, durably."""
    text = (
        f":warning: `/erpgo {render.escape(verb)}` was interrupted: the bot restarted before its checks "
        "finished. Run it again."
    )
    try:
        async with runtime.outbox.thread(f"report:{uuid.uuid4().hex}", inv.channel_id) as rows:
            rows.post(render.text_message(text))
    except Exception as exc:
        log.warning("interruption_not_posted", error=describe_error(exc))
        if inv.response_url:
            await runtime.slack.respond(inv.response_url, render.text_message(text))
    log.warning("command_interrupted", verb=verb)


async def post_private_report(
    runtime: Runtime, inv: Invocation, title: str, findings: list[Finding], elapsed: float
) -> str | None:
    """Seen by the asker alone: the headline and the details as two ephemeral messages (through the
    command's response_url where the bot is not a channel member). A proposal still needs a second
    person, so each one is posted for approval in the channel under a line naming who asked — the
    report itself stays private. The ts of that line, when there is one."""
    messages = [
        render.headline(title, findings, f"only you can see this · {elapsed:.2f} s"),
        render.details(title, findings),
    ]
    try:
        for message in messages:
            await runtime.slack.ephemeral(inv.channel_id, inv.user_id, message)
    except SlackApiError as exc:
        if not inv.response_url or exc.response.get("error") not in ("not_in_channel", "channel_not_found"):
            raise
        for message in messages:
            await runtime.slack.respond(inv.response_url, message)
        return None
    if any(finding.proposals for finding in findings):
        return await queue_private_proposals(runtime, inv, findings)
    return None


async def queue_private_proposals(runtime: Runtime, inv: Invocation, findings: list[Finding]) -> str | None:
    """The proposals of a private report, for approval in the channel under a line naming who asked."""
    await expire_and_update(runtime, wait=0)
    root = render.text_message(f"{render.mention(inv.user_id, missing='?')} proposes a change that needs approval:")
    async with runtime.outbox.thread(f"report:{uuid.uuid4().hex}", inv.channel_id) as rows:
        rows.post(root)
        await queue_proposals(runtime, rows, findings, requester=inv.user_id)
    delivered = await rows.receipt.wait(REPORT_WAIT)
    return delivered[0].ts if delivered and delivered[0].ok else None
