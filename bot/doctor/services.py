"""The services the bot itself needs: Slack (the token's scopes) and its own database (reachable and
migrated). Read-only: auth.test, and a SELECT of the migrations applied."""

from __future__ import annotations

import aiohttp
import asyncpg

from bot.doctor import Readiness
from bot.settings import Settings
from bot.store.pool import migration_files

SLACK = "Slack"
BOT_DATABASE = "bot database"
NEEDED_SCOPES = ("chat:write", "commands", "files:write", "usergroups:read")  # what the features use
SCOPE_FIX = "add the missing scopes under OAuth & Permissions (slack-manifest.yml lists them) and reinstall the app"


async def slack_scopes(settings: Settings, timeout: float) -> Readiness:
    """auth.test with the bot token: Slack lists the token's scopes in its `x-oauth-scopes` header."""
    token = settings.secret("slack_bot_token")
    if not token:
        return Readiness(SLACK, False, "SLACK_BOT_TOKEN is not set", "set SLACK_BOT_TOKEN to the app's bot token")
    url = settings.slack_api_url.rstrip("/") + "/auth.test"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.post(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        body = await response.json(content_type=None)
        scopes = {s.strip() for s in response.headers.get("x-oauth-scopes", "").split(",") if s.strip()}
    if not body.get("ok"):
        return Readiness(SLACK, False, f"auth.test refused the token: {body.get('error')}", "install a valid bot token")
    missing = [scope for scope in NEEDED_SCOPES if scope not in scopes]
    who = f"token of {body.get('user') or body.get('user_id')} in {body.get('team') or body.get('team_id')}"
    if missing:
        return Readiness(SLACK, False, f"{who} lacks the scopes {', '.join(missing)}", SCOPE_FIX)
    return Readiness(SLACK, True, f"{who}: scopes {', '.join(NEEDED_SCOPES)} granted")


async def bot_database(settings: Settings, timeout: float) -> Readiness:
    """Reachable, and every migration the bot ships applied (never applies them: doctor changes nothing)."""
    dsn = settings.secret("bot_database_url")
    if not dsn:
        return Readiness(
            BOT_DATABASE, False, "BOT_DATABASE_URL is not set: nothing can be approved", "set BOT_DATABASE_URL"
        )
    conn = await asyncpg.connect(dsn, timeout=timeout, server_settings={"application_name": "erpgo-chatops-doctor"})
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")} if exists else set()
    finally:
        await conn.close()
    missing = [m.name for m in migration_files() if m.version not in applied]
    if missing:
        return Readiness(
            BOT_DATABASE,
            False,
            f"reachable, {len(missing)} migration(s) not applied: {', '.join(missing)}",
            "run `erpgo-bot migrate` (the bot also migrates when it starts)",
        )
    return Readiness(BOT_DATABASE, True, f"reachable, all {len(applied)} migrations applied")
