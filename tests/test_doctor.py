"""`/erpgo doctor` and `erpgo-bot doctor` find the planted gaps — a database role without
pg_signal_backend, a policy whose two-approver action one person may approve, a wrong firewall
command, a Slack token without a scope, a Prometheus rule nobody triages — and change nothing."""

from __future__ import annotations

import secrets
import time
import urllib.parse

import asyncpg

from bot.app import build_registry
from bot.doctor.rules import rules_mapped
from bot.local.slack import LocalSlack
from bot.local.text import render_text
from bot.settings import load_settings
from bot.store.pool import migration_files
from tests.doctor_support import plain_role, prometheus
from tests.support import eventually, run_bot_async

POLICY = """
groups:
  oncall: [U0ALICE, U0BOB]
verbs:
  "*": [everyone]
actions:
  "db.terminate":
    approvers: [oncall]
  "db.restore":
    approvers: [S0DBA]
    approvals_required: 2
  "security.*":
    approvers: [oncall]
  "data.recalc_stock":
    approvers: [oncall]
"""


def database_of(dsn: str) -> str:
    return urllib.parse.urlsplit(dsn).path.lstrip("/")


def entry(text: str, capability: str) -> str:
    [line] = [line for line in text.splitlines() if f"*{capability}*" in line]
    return line


async def test_doctor_names_each_planted_gap(start_bot, fresh_database, postgres_server, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    erp = fresh_database("erp")
    with plain_role(postgres_server, database_of(erp)) as weak_dsn:
        bot = await start_bot(
            bot_database_url=fresh_database("bot"),
            erpgo_database_url=weak_dsn,
            chatops_policy_file=str(policy),
            erpgo_firewall="nftables",
            erpgo_firewall_command="nft-not-installed-here",
        )
        bot.slack.usergroups.update({"S0DBA": ["U0DBA"]})
        bot.slack.scopes.discard("files:write")
        started = time.monotonic()
        answer = await bot.command("doctor", user_id="U0ALICE")
        elapsed = time.monotonic() - started

    text = render_text(answer.json)
    assert elapsed < 3 and text.startswith("*Doctor: degraded"), text
    signal = entry(text, "db.terminate: signal other sessions (ERPGo database role)")
    assert "❌" in signal and "neither superuser nor a member of pg_signal_backend" in signal
    assert "GRANT pg_signal_backend TO doctor_" in text
    approvers = entry(text, "db.restore: approvers")
    assert "2 approvals needed, but only 1 person may approve" in approvers and "@U0DBA" in approvers
    assert "lacks CREATEDB and ownership of" in entry(
        text, "db.restore: create and own databases (ERPGo database role)"
    )
    firewall = entry(text, "security.ban_ip, security.unban_ip: firewall")
    assert "nft-not-installed-here is not installed" in firewall and "ERPGO_FIREWALL_COMMAND" in text
    assert "lacks the scopes files:write" in entry(text, "Slack")
    stock = entry(text, "data.recalc_stock: repair stock (ERPGo database role)")
    assert "may not UPDATE products" in stock and "GRANT UPDATE ON products TO doctor_" in text
    assert "✅ *db.terminate: approvers*" in text
    assert "✅ *bot database* — reachable, all" in text
    assert "⚪ *Prometheus alert rules* — PROMETHEUS_URL is not set" in text


async def test_a_prometheus_rule_nobody_triages_is_listed(tmp_path):
    rules = [
        {"alert": "HighFailedLoginRate", "expr": "vector(0) > 1", "labels": {"severity": "warning"}},
        {"alert": "NobodyTriagesThis", "expr": "vector(0) > 1", "labels": {"severity": "warning"}},
    ]
    with prometheus(tmp_path / "prometheus", rules) as url:
        settings = load_settings(prometheus_url=url)
        line = await eventually(lambda: _mapped(settings), timeout=20, what="Prometheus to load its rules")
    assert line.ready is False and line.detail == "1 of 2 alerting rules have no triage: NobodyTriagesThis"


async def _mapped(settings):
    line = await rules_mapped(settings, build_registry(), 5)
    return line if "of 2 alerting rules" in line.detail else None


async def test_erpgo_bot_doctor_exit_codes(fresh_database, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text('groups: {oncall: [U0ALICE, U0BOB]}\nactions: {"db.terminate": {approvers: [oncall]}}\n')
    bot_db = fresh_database("bot")
    async with LocalSlack(secrets.token_hex(8)) as slack:
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_API_URL": slack.api_url,
            "BOT_DATABASE_URL": bot_db,
            "ERPGO_DATABASE_URL": fresh_database("erp"),
            "CHATOPS_POLICY_FILE": str(policy),
        }
        unmigrated = await run_bot_async("doctor", env=env)
        assert unmigrated.returncode == 1, unmigrated.stdout + unmigrated.stderr
        assert (
            f"[NOT READY] bot database: reachable, {len(migration_files())} migration(s) not applied"
            in unmigrated.stdout
        )
        assert "erpgo-bot migrate" in unmigrated.stdout
        assert await _tables(bot_db) == [], "doctor changed nothing"

        assert (await run_bot_async("migrate", env=env)).returncode == 0
        ready = await run_bot_async("doctor", env=env)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        assert ready.stdout.startswith("Doctor: ready")
        assert "[ready] db.terminate: signal other sessions (ERPGo database role): role postgres may" in ready.stdout

        policy.write_text("actions: [not, a, mapping]\n")
        broken = await run_bot_async("doctor", env=env)
        assert broken.returncode == 2 and "CHATOPS_POLICY_FILE" in broken.stderr


async def _tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    finally:
        await conn.close()
