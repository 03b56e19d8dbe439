"""erpgo-bot: serve (HTTP), socket (Socket Mode), check (one-shot, no Slack), shell and console (local Slack)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

from bot.core.findings import Finding
from bot.core.registry import Registry, Verb
from bot.settings import ConfigError, Settings, load_settings

EXIT_OK, EXIT_WARN, EXIT_CONFIG = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="erpgo-bot", description="ERPGo on-call ChatOps bot")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot over HTTP (Slack events, /healthz, /metrics)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    socket = commands.add_parser(
        "socket", help="run the bot over Slack Socket Mode (webhook, /healthz, /metrics on PORT)"
    )
    socket.add_argument("--host", default="0.0.0.0")
    socket.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    check = commands.add_parser("check", help="run one verb's checks and print the report (no Slack needed)")
    check.add_argument("verb", nargs="+", help="e.g. health, or: db locks")
    check.add_argument("--json", action="store_true", help="print findings as JSON")
    commands.add_parser("migrate", help="apply the bot database's migrations (BOT_DATABASE_URL) and exit")
    commands.add_parser(
        "doctor", help="is every capability ready? exit 0 ready, 1 degraded, 2 configuration error (changes nothing)"
    )
    shell = commands.add_parser("shell", help="type /erpgo commands and see what Slack would show")
    shell.add_argument("--user", default="U0YOU", help="the Slack user id you act as")
    shell.add_argument(
        "--port",
        type=int,
        default=0,
        help="the bot's HTTP port on 127.0.0.1, e.g. for Alertmanager's webhook (default: any)",
    )
    shell.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default: $LOG_LEVEL")
    shell.add_argument(
        "--log-file",
        help="where the bot's logs go (default on a terminal: a file in ~/.local/state/erpgo-bot; '-': stderr, "
        "warnings and up unless --log-level says otherwise)",
    )
    console = commands.add_parser(
        "console", help="the local Slack and the bot as a web page (a browser instead of Slack)"
    )
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=3300, help="the page's port (default 3300)")
    console.add_argument(
        "--bot-port",
        type=int,
        default=0,
        help="the bot's own HTTP port on 127.0.0.1, e.g. for Alertmanager (default: any)",
    )
    console.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="the bot's logs, on stderr",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
        from bot.core.logs import configure_logging

        log_note = None
        if args.command == "shell":
            log_note = shell_logging(settings, args.log_level, args.log_file, interactive=sys.stdin.isatty())
        elif args.command == "console":  # the page shows the conversation; the terminal only what goes wrong
            configure_logging(args.log_level, stream=sys.stderr)
        else:
            to_stderr = args.command in ("check", "doctor")  # their report is stdout
            configure_logging(settings.log_level, stream=sys.stderr if to_stderr else sys.stdout)
        preflight(settings, args.command)
        if args.command == "check":
            return asyncio.run(run_check(settings, args.verb, args.json))
        if args.command == "serve":
            from bot.server import serve

            return asyncio.run(serve(settings, args.host, args.port or settings.port))
        if args.command == "socket":
            from bot.server import socket_mode

            return asyncio.run(socket_mode(settings, args.host, args.port or settings.port))
        if args.command == "migrate":
            return asyncio.run(run_migrate(settings))
        if args.command == "console":
            from bot.local.console import run_console

            return asyncio.run(run_console(settings, args.host, args.port, bot_port=args.bot_port))
        if args.command == "doctor":
            return asyncio.run(run_doctor(settings))
        if args.command == "shell":
            from bot.local.shell import run_shell

            return asyncio.run(run_shell(settings, args.user, log_note, port=args.port))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


# what a long-running mode cannot start without, checked before the bot is imported or anything contacted
REQUIRED = {
    "serve": (("slack_bot_token", ""), ("slack_signing_secret", " in HTTP mode")),
    "socket": (("slack_bot_token", ""), ("slack_app_token", " in Socket Mode")),
}


def preflight(settings: Settings, command: str) -> None:
    """A ConfigError in well under a second for what serve and socket would refuse anyway: a required
    setting unset, a policy file that does not load."""
    if command not in REQUIRED:
        return
    for name, mode in REQUIRED[command]:
        if not settings.secret(name):
            raise ConfigError(f"configuration error: {name.upper()} is required{mode}")
    from bot.approvals.policy import load_policy

    load_policy(settings.chatops_policy_file)


def shell_logging(settings: Settings, level: str | None, log_file: str | None, *, interactive: bool) -> str | None:
    """Keep the bot's log lines out of the conversation: on a terminal they go to a file (whose path
    is returned, to be shown at start) or, with --log-file -, to stderr at warning level; without
    a terminal (commands piped in) to stderr as before."""
    import os
    from pathlib import Path

    from bot.core.logs import configure_logging

    if log_file == "-" or (not interactive and log_file is None):
        configure_logging(level or ("warning" if interactive else settings.log_level), stream=sys.stderr)
        return None
    if log_file is None:
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "erpgo-bot"
        state.mkdir(parents=True, exist_ok=True)
        log_file = str(state / "shell.log")
    try:
        stream = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the process's life
    except OSError as exc:
        raise ConfigError(f"configuration error: --log-file {log_file}: {exc.strerror}") from None
    configure_logging(level or settings.log_level, stream=stream)
    return f"(the bot's logs go to {log_file})"


async def run_check(settings: Settings, words: list[str], as_json: bool) -> int:
    from bot.app import build_registry
    from bot.context import Actor, CheckContext
    from bot.core.engine import run_checks
    from bot.core.findings import Status, worst
    from bot.core.redact import redact, redact_any
    from bot.core.registry import UsageError
    from bot.slack import render
    from bot.targets import Targets

    registry = build_registry()
    verb, rest = registry.find_verb(words)
    if verb is None:
        raise unknown_verb(registry, words)
    if verb.answer is not None:
        return await run_bot_verb(settings, registry, verb, rest, as_json)
    try:
        args = verb.parse_args(rest)
    except UsageError as exc:
        if registry.suggest(words, instead_of=verb):  # a mistyped sub-verb
            raise unknown_verb(registry, words) from None
        raise ConfigError(f"{exc} — usage: {verb.name} {verb.usage}".rstrip()) from None
    targets = Targets(settings)
    try:
        findings = await run_checks(verb.checks, CheckContext(targets, settings, args, Actor(requester="cli")))
    finally:
        await targets.close()
    missing = settings_to_set(findings)
    if missing:
        raise ConfigError(f"configuration error: nothing to check for {verb.name}; set {', '.join(missing)}")
    status = worst(f.status for f in findings)
    if as_json:
        doc = {"verb": verb.name, "status": status.value, "findings": [json_finding(f.to_dict()) for f in findings]}
        print(json.dumps(redact_any(doc), indent=2, default=str, ensure_ascii=False))
    else:
        print(redact(render.report_text(f"ERPGo {verb.name}", findings)))
    return EXIT_OK if status.rank <= Status.OK.rank else EXIT_WARN


def unknown_verb(registry: Registry, words: list[str]) -> ConfigError:
    meant = registry.suggest(words)
    hint = (
        f"did you mean: {meant.name} {meant.usage}".rstrip() if meant else f"try: {', '.join(sorted(registry.verbs))}"
    )
    return ConfigError(f"unknown verb: {' '.join(words)[:60]} ({hint})")


NOT_CONFIGURED = re.compile(r"^not configured \(set (?P<names>[^)]+)\)")


def settings_to_set(findings: list[Finding]) -> list[str]:
    """When every finding says its target is not configured, the settings they name (in order); else
    nothing — a check run from cron with a misspelled setting must not look green."""
    named = [NOT_CONFIGURED.match(f.title) for f in findings]
    if not findings or not all(named):
        return []
    return list(dict.fromkeys(match.group("names") for match in named if match))


def json_finding(finding: dict) -> dict:
    """A finding for --json, its evidence redacted as the block of lines it is (as Slack shows it): a
    private key cut by the evidence window is told by the lines around it, which one line alone lacks."""
    from bot.core.redact import redact

    if finding.get("evidence"):
        finding = {**finding, "evidence": redact("\n".join(finding["evidence"])).split("\n")}
    return finding


async def run_bot_verb(settings: Settings, registry: Registry, verb: Verb, args: list[str], as_json: bool) -> int:
    """The bot's own verbs (approvals, audit, alerts) read the bot's database; no Slack needed."""
    from bot.app import build_runtime
    from bot.core.redact import redact
    from bot.core.registry import UsageError
    from bot.local.text import render_text

    assert verb.answer is not None  # the bot's own verbs answer with a message
    runtime = build_runtime(settings, offline=True)
    runtime.load_policy()
    try:
        message = await verb.answer(runtime, None, args)
    except UsageError as exc:
        raise ConfigError(f"{exc} — usage: {verb.name} {verb.usage}".rstrip()) from None
    finally:
        await runtime.close()
    text = redact(render_text(message or {"text": "Done."}))
    print(json.dumps({"verb": verb.name, "text": text}, ensure_ascii=False) if as_json else text)
    return EXIT_OK


async def run_migrate(settings: Settings) -> int:
    from bot.store.pool import Store

    dsn = settings.secret("bot_database_url")
    if not dsn:
        raise ConfigError("configuration error: BOT_DATABASE_URL is required for migrate")
    store = Store(dsn)
    try:
        applied = await store.migrate()
    except Exception as exc:
        from bot.core.errors import describe_error

        print(f"migrate failed: {describe_error(exc)}", file=sys.stderr)
        return EXIT_WARN
    finally:
        await store.close()
    print(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "; database is up to date")
    )
    return EXIT_OK


DOCTOR_PROBE_TIMEOUT = 5.0


async def run_doctor(settings: Settings) -> int:
    """One line per capability on stdout; 0 when all are ready, 1 when any is not."""
    from bot.app import build_runtime
    from bot.core.redact import redact
    from bot.doctor import as_text, degraded
    from bot.doctor.checkup import diagnose

    runtime = build_runtime(settings, offline=not settings.secret("slack_bot_token"))
    runtime.load_policy()
    try:
        lines = await diagnose(runtime, DOCTOR_PROBE_TIMEOUT)
    finally:
        await runtime.close()
    print(redact(as_text(lines)))
    return EXIT_WARN if degraded(lines) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
