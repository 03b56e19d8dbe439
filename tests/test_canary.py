"""Canary secrets planted in every place a secret lives — the target's DSN, the SQL text of a session
holding a lock (`ALTER ROLE … PASSWORD '…'`), a container's environment, container log lines in many
token formats, alert labels, annotations and URLs, the bot's own tokens — and none of them comes out:
not in anything posted to Slack, not in the log, not stored in the bot's database (every text column
of every table), not printed by `erpgo-bot check … --json`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from bot.core.logs import configure_logging
from bot.local.slack import LocalSlack
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]
OPS, ALERTS = "C0OPS", "C0ALERTS"
CONTRACT_ENV = ("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_", "DOCKER_HOST", "PORT")
POLICY = 'groups:\n  oncall: [U0ALICE, U0BOB]\nverbs:\n  "*": [everyone]\nactions:\n  "*":\n    approvers: [oncall]\n'


def tag(name: str, length: int = 12) -> str:
    """A canary: a recognisable name and random letters, so that it is found wherever it lands."""
    return f"cnry{name}{secrets.token_hex(length)[:length]}"


def alnum(prefix: str, marker: str, length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
    body = (marker + "".join(secrets.choice(alphabet) for _ in range(length)))[:length]
    return prefix + body


# ---- what is planted, and the marker that must never come out ----------------------------------

DSN_PASSWORD = tag("DsnPw")
SQL_PASSWORD, SQL_PASSWORD_2 = tag("SqlPw"), tag("SqlPwTwo")
ENV_JWT, ENV_DB_PASSWORD = tag("EnvJwtSecret", 40), tag("EnvDbPw")
BOT_TOKEN = "xoxb-4242-4242-" + tag("BotTok", 20)
SIGNING_SECRET = tag("Signing", 32)
WEBHOOK_TOKEN = tag("Webhook", 24)
LABEL_PASSWORD, ANNOTATION_TOKEN, ANNOTATION_KEY = tag("LabelPw"), tag("AnnTok"), tag("AnnKey")
URL_PASSWORD, EXTERNAL_PASSWORD = tag("UrlPw"), tag("ExtPw")
GITHUB = alnum("ghp_", "cnryGh", 36, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
GITLAB = alnum("glpat-", "cnryGl", 20)
AWS_KEY_ID = alnum("AKIA", "CNRYAWS", 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
AWS_SECRET = alnum("", "cnryAwsSecret", 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
STRIPE = alnum("sk_live_", "cnryStripe", 24)
GOOGLE = alnum("AIza", "cnryGcp", 35, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
SLACK_IN_LOG = "xoxp-1111-2222-" + tag("SlackLog", 16)
JWT_SIGNATURE = tag("JwtSig", 24)
JWT = "eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(b'{"sub":"cnry"}').decode().rstrip("=") + "." + JWT_SIGNATURE
KEY_VALUE, SECRET_SPACE, TOKEN_COLON = tag("KeyEq"), tag("SecretSp"), tag("TokColon")
BEARER = tag("Bearer", 24)
LOG_DSN_PASSWORD = tag("LogDsnPw")
PEM_BODY = tag("PemBody", 12)
# the forms that used to leak (issue 18), planted below as their secret part: what follows a kept prefix
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SAS_SIG, BARE_SIG = alnum("", "cnrySasSig", 43, ALNUM), tag("BareSig", 24)
GOOGLE_REFRESH, GOCSPX, YA29 = alnum("", "cnryGr", 40, ALNUM), alnum("", "cnryGo", 28, ALNUM), alnum("", "cnryYa", 40)
NPM, PYPI = alnum("", "cnryNpm", 36, ALNUM), alnum("", "cnryPypi", 60, ALNUM)
SENDGRID, OPENAI, ANTHROPIC = alnum("", "cnrySg", 43, ALNUM), alnum("", "cnryOai1", 40), alnum("", "cnryAnt", 40)
TWILIO_TOKEN = secrets.token_hex(16)
DB_PASS, PLAIN_PASS, MYSQL_P, CURL_U = tag("DbPass"), tag("PlainPass"), tag("MysqlP"), tag("CurlU")
COOKIE, SET_COOKIE, QUERY_PW = tag("Cookie", 24), tag("SetCookie", 24), tag("QueryPw")
HTPASSWD = alnum("", "cnryHt", 22, ALNUM)
AT_PASSWORD, SLASH_PASSWORD, JSON_URL_PASSWORD = tag("AtPw"), tag("SlashPw"), tag("JsonUrlPw")
ARGV_P, ARGV_U, ARGV_DB_PASS = tag("ArgvP"), tag("ArgvU"), tag("ArgvDbPass")
NEW_FORMS = [
    f"SAS https://b.blob.core.windows.net/d/x.dump?sv=2022-11-02&sig={SAS_SIG}&se=2025 bare sig={BARE_SIG}",
    f"google 1//0{GOOGLE_REFRESH} GOCSPX-{GOCSPX} ya29.{YA29} npm_{NPM} pypi-AgEIcHlwaS5vcmc{PYPI}",
    f"vendors SG.cnrySendGridKeyId0001.{SENDGRID} sk-proj-{OPENAI} sk-ant-api03-{ANTHROPIC}"
    f" AC0123456789abcdef0123456789abcdef:{TWILIO_TOKEN}",
    f"env DB_PASS={DB_PASS} PASS={PLAIN_PASS} ran mysql -uroot -p{MYSQL_P} erp; curl -u admin:{CURL_U} http://es:9200",
    f"http Cookie: sid={COOKIE}; theme=dark Set-Cookie: session={SET_COOKIE}; Path=/ GET /x?pw={QUERY_PW}&a=1"
    f" htpasswd admin:$apr1$r31.....${HTPASSWD}",
    f"urls postgres://app:x@{AT_PASSWORD}@db:5432/erp postgres://app:pa/{SLASH_PASSWORD}@db/erp"
    f' {{"dsn":"postgres:\\/\\/app:{JSON_URL_PASSWORD}@db\\/erp"}}',
]

CANARIES = {
    "DSN_PASSWORD": DSN_PASSWORD,
    "SQL_PASSWORD": SQL_PASSWORD,
    "SQL_PASSWORD_2": SQL_PASSWORD_2,
    "ENV_JWT": ENV_JWT,
    "ENV_DB_PASSWORD": ENV_DB_PASSWORD,
    "BOT_TOKEN": BOT_TOKEN,
    "SIGNING_SECRET": SIGNING_SECRET,
    "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "LABEL_PASSWORD": LABEL_PASSWORD,
    "ANNOTATION_TOKEN": ANNOTATION_TOKEN,
    "ANNOTATION_KEY": ANNOTATION_KEY,
    "URL_PASSWORD": URL_PASSWORD,
    "EXTERNAL_PASSWORD": EXTERNAL_PASSWORD,
    "GITHUB": GITHUB,
    "GITLAB": GITLAB,
    "AWS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET": AWS_SECRET,
    "STRIPE": STRIPE,
    "GOOGLE": GOOGLE,
    "SLACK_IN_LOG": SLACK_IN_LOG,
    "JWT": JWT,
    "KEY_VALUE": KEY_VALUE,
    "SECRET_SPACE": SECRET_SPACE,
    "TOKEN_COLON": TOKEN_COLON,
    "BEARER": BEARER,
    "LOG_DSN_PASSWORD": LOG_DSN_PASSWORD,
    "PEM_BODY": PEM_BODY,
    "SAS_SIG": SAS_SIG,
    "BARE_SIG": BARE_SIG,
    "GOOGLE_REFRESH": GOOGLE_REFRESH,
    "GOCSPX": GOCSPX,
    "YA29": YA29,
    "NPM": NPM,
    "PYPI": PYPI,
    "SENDGRID": SENDGRID,
    "OPENAI": OPENAI,
    "ANTHROPIC": ANTHROPIC,
    "TWILIO_TOKEN": TWILIO_TOKEN,
    "DB_PASS": DB_PASS,
    "PLAIN_PASS": PLAIN_PASS,
    "MYSQL_P": MYSQL_P,
    "CURL_U": CURL_U,
    "COOKIE": COOKIE,
    "SET_COOKIE": SET_COOKIE,
    "QUERY_PW": QUERY_PW,
    "HTPASSWD": HTPASSWD,
    "AT_PASSWORD": AT_PASSWORD,
    "SLASH_PASSWORD": SLASH_PASSWORD,
    "JSON_URL_PASSWORD": JSON_URL_PASSWORD,
    "ARGV_P": ARGV_P,
    "ARGV_U": ARGV_U,
    "ARGV_DB_PASS": ARGV_DB_PASS,
}
# what proves a leak: the secret part of each canary (a prefix like ghp_ alone proves nothing)
MARKERS = {name: value.split("-")[-1] if value.startswith("xox") else value for name, value in CANARIES.items()}
CONFIGURED = ("DSN_PASSWORD", "BOT_TOKEN", "SIGNING_SECRET", "WEBHOOK_TOKEN")  # the bot's own: in any encoding


def forms(name: str, marker: str) -> list[str]:
    found = [marker, quote(marker, safe="")]
    if name in CONFIGURED:
        found += [
            base64.b64encode(marker.encode()).decode().rstrip("="),
            base64.urlsafe_b64encode(marker.encode()).decode().rstrip("="),
        ]
    return found


def leaks(where: str, text: str) -> list[str]:
    return [
        f"{name} in {where}" for name, marker in MARKERS.items() if any(form in text for form in forms(name, marker))
    ]


# ---- the container: its environment and its log ----------------------------------------------

BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
PEM_LINES = [alnum("", PEM_BODY, 64, BASE64) for _ in range(3)]  # a key's body: 64 base64 characters a line
LOG_LINES = [
    "-----BEGIN RSA PRIVATE KEY-----",
    *PEM_LINES,
    "-----END RSA PRIVATE KEY-----",
    "ERROR failed to load signing key",  # the evidence window starts inside the key, after its BEGIN line
    f"GET /api/v1/orders 500 12ms Authorization: Bearer {BEARER}",
    f"error: github push failed token {GITHUB} gitlab {GITLAB}",
    f"error: s3 upload failed AWS_ACCESS_KEY_ID={AWS_KEY_ID} aws_secret_access_key={AWS_SECRET}",
    f"error: stripe {STRIPE} google {GOOGLE} slack {SLACK_IN_LOG}",
    f"panic: runtime error: key={KEY_VALUE} secret {SECRET_SPACE} token: {TOKEN_COLON}",
    *(f"error: canary line {number}: {form}" for number, form in enumerate(NEW_FORMS)),  # in the panic's context
    f"error connecting to postgres://app:{LOG_DSN_PASSWORD}@db:5432/erp jwt={JWT}",
]


def container_script() -> str:
    """The log lines every 2 s, and a worker whose command line holds passwords (for `/erpgo cpu`)."""
    printed = "; ".join(f"echo '{line}'" for line in LOG_LINES)
    worker = f"sh -c 'while :; do sleep 1; done' worker -p{ARGV_P} -u admin:{ARGV_U} DB_PASS={ARGV_DB_PASS} &"
    return f"{worker} while true; do {printed}; sleep 2; done"


# ---- the suite -----------------------------------------------------------------------------------


@pytest.fixture
async def planted(postgres_server, fresh_database, docker_engine, simulator, tmp_path):
    """A deployment full of canaries: (settings for the bot, the LocalSlack)."""
    erp_dsn = fresh_database("canary_erp")
    role = f"victim_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(erp_dsn)
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    holder = await asyncpg.connect(erp_dsn, server_settings={"application_name": "ops-console"})
    waiter = await asyncpg.connect(erp_dsn, server_settings={"application_name": "erpgo-api"})
    await holder.execute("BEGIN")
    await holder.execute(f"ALTER ROLE {role} PASSWORD '{SQL_PASSWORD}'")  # holds the role's row until it ends
    second = asyncio.create_task(waiter.execute(f"ALTER ROLE {role} PASSWORD '{SQL_PASSWORD_2}'"))
    await eventually(
        lambda: admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"),
        what="the second ALTER ROLE to wait",
    )
    env_args = ["-e", f"JWT_SECRET={ENV_JWT}", "-e", f"DATABASE_URL=postgres://app:{ENV_DB_PASSWORD}@db:5432/erp"]
    await asyncio.to_thread(docker_engine.run, "canary-api", container_script(), run_args=env_args)
    slack = LocalSlack(SIGNING_SECRET, bot_token=BOT_TOKEN)
    await slack.start()
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    settings = {
        "erpgo_database_url": postgres_server.dsn(erp_dsn.rsplit("/", 1)[1], password=DSN_PASSWORD),
        "erpgo_api_url": simulator.url,
        "docker_host": docker_engine.host,
        "erpgo_containers": "canary-api",
        "bot_database_url": fresh_database("canary_bot"),
        "alert_webhook_token": WEBHOOK_TOKEN,
        "erpgo_alert_channel": ALERTS,
        "erpgo_slack_channel_interval": 0.0,
        "chatops_policy_file": str(policy),
    }
    try:
        yield settings, slack
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        for conn in (holder, waiter):
            conn.terminate()
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
        await asyncio.to_thread(docker_engine.remove, "canary-api")
        await slack.close()


def alert(alertname: str) -> dict:
    labels = {
        "alertname": alertname,
        "severity": "critical",
        "dsn": f"postgres://app:{LABEL_PASSWORD}@db:5432/erp",
        "instance": "postgres:5432",
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}", dsn="{labels["dsn"]}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "erpgo-bot",
        "groupLabels": {"alertname": alertname, "dsn": labels["dsn"]},
        "commonLabels": labels,
        "commonAnnotations": {
            "summary": f"{alertname} on the API",
            "description": f"token={ANNOTATION_TOKEN} api_key: {ANNOTATION_KEY} " + " ".join(NEW_FORMS),
        },
        "externalURL": f"http://admin:{EXTERNAL_PASSWORD}@alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"description": f"token={ANNOTATION_TOKEN}"},
                "startsAt": "2025-11-30T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.example/graph?g0.expr=up&password={URL_PASSWORD}",
                "fingerprint": f"{alertname}-canary",
            }
        ],
    }


async def stored_text(dsn: str) -> str:
    """Every text, varchar and JSON column of every table of the bot's database, as one text."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'character')"
        )
        parts = []
        for column in columns:
            table, name = column["table_name"], column["column_name"]
            values = await conn.fetch(f'SELECT "{name}"::text AS v FROM "{table}"')
            parts += [f"{table}.{name}: {r['v']}" for r in values if r["v"]]
        return "\n".join(parts)
    finally:
        await conn.close()


async def check_json(settings: dict, *verb: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)}
    env |= {name.upper(): str(value) for name, value in settings.items()} | {"PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "check", *verb, "--json",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode() + err.decode()


def slack_text(slack: LocalSlack) -> str:
    calls = [{"method": c.method, "args": c.args, "response": c.response} for c in slack.calls]
    return json.dumps(
        [calls, list(slack.messages.values()), slack.ephemerals, slack.responses], default=str, ensure_ascii=False
    )


async def test_no_canary_reaches_slack_the_log_the_database_or_check_json(planted, start_bot, capsys):
    settings, slack = planted
    configure_logging("debug")
    bot = await start_bot(slack=slack, **settings)
    for verb in (
        "health",
        "db locks",
        "db long-queries 1",
        "db connect",
        "logs canary-api 5",
        "security 5",
        "cpu canary-api",
    ):
        await bot.command(verb, user_id="U0ALICE")
    printed = await asyncio.gather(
        *(check_json(settings, *verb.split()) for verb in ("health", "db locks", "db connect", "logs canary-api 5"))
    )
    assert "ALTER ROLE" in printed[1], printed[1][-2000:]
    assert "panic: runtime error" in printed[3], printed[3][-2000:]
    head = next(m for m in slack.channel_messages(OPS) if "db locks" in m["text"])
    approvals = [m for m in slack.thread(OPS, head["ts"]) if slack.buttons(m)]
    assert approvals, "db locks proposes ending the session holding the lock"
    await slack.click(approvals[0], "approval.approve", user_id="U0BOB")
    await bot.settle()

    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for name in ("HighErrorRate", "DatabaseConnectionPool"):
            async with http.post(bot.base_url + "/alerts/alertmanager", json=alert(name), headers=headers) as answer:
                assert answer.status == 200, await answer.text()
    dsn = settings["bot_database_url"]

    async def drained() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(
                "SELECT (SELECT count(*) FROM slack_outbox WHERE state = 'pending') = 0"
                " AND (SELECT bool_and(triage_state = 'done') FROM alert_groups)"
            )
        finally:
            await conn.close()

    await eventually(drained, timeout=30, what="the alerts triaged and posted")
    await bot.settle()
    assert slack.channel_messages(ALERTS), "the alerts were posted"
    posted = slack_text(slack)
    # the planted sources were read: the session's statement, the log lines, the alert's labels
    assert "ALTER ROLE" in posted and "panic: runtime error" in posted and "DatabaseConnectionPool" in posted
    assert all(f"canary line {number}" in posted for number in range(len(NEW_FORMS))), "the new forms were read"
    assert " worker -p" in posted, "the worker's command line was shown"
    found = leaks("Slack", posted)
    found += leaks("the log", "".join(capsys.readouterr()))
    found += leaks("the bot's database", await stored_text(dsn))
    found += leaks("check --json", "\n".join(printed))
    assert not found, "canaries came out:\n" + "\n".join(sorted(found))
