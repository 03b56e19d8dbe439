"""What the emergency-procedure tests share: a shop database with the guide's critical tables, its
rows, the bot's database, Slack approval clicks and the policy with two-approver actions."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from urllib.parse import urlencode

import aiohttp
import asyncpg

from bot.local.text import render_text

CHANNEL = "C0OPS"
POLICY = """
groups:
  oncall: [U0ALICE, U0BOB, U0CAROL, U0DAVE]
verbs:
  "*": [everyone]
actions:
  "backup.now":
    approvers: [oncall]
    approvals_required: 2
  "db.restore*":
    approvers: [oncall]
    approvals_required: 2
    expiry_minutes: 30
  "docker.restart_all":
    approvers: [oncall]
    approvals_required: 2
"""

SHOP_SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users,
                     product_id int NOT NULL REFERENCES products, quantity int NOT NULL);
"""


async def make_shop(dsn: str, *, users: int = 3, products: int = 2, orders: int = 4) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SHOP_SCHEMA)
        await add_rows(conn, users=users, products=products, orders=orders)
    finally:
        await conn.close()


async def add_rows(conn: asyncpg.Connection, *, users: int = 0, products: int = 0, orders: int = 0) -> None:
    tag = uuid.uuid4().hex[:6]
    await conn.executemany(
        "INSERT INTO users (email) VALUES ($1)", [(f"u{i}-{tag}@example.com",) for i in range(users)]
    )
    await conn.executemany(
        "INSERT INTO products (name, price) VALUES ($1, $2)", [(f"product {i} {tag}", 9.5 + i) for i in range(products)]
    )
    await conn.execute(
        "INSERT INTO orders (user_id, product_id, quantity)"
        " SELECT (SELECT min(id) FROM users), (SELECT max(id) FROM products), g FROM generate_series(1, $1) g",
        orders,
    )


async def snapshot(dsn: str) -> dict[str, list[tuple]]:
    """Every row of the critical tables, in id order."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY id")]
            for table in ("users", "products", "orders")
        }
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def audit(dsn: str) -> list[tuple]:
    rows = await fetch(dsn, "SELECT actor, event, approval_id, outcome FROM audit_log ORDER BY id")
    return [tuple(r) for r in rows]


def approval_messages(slack, head_ts: str) -> list[dict]:
    return [copy.deepcopy(m) for m in slack.thread(CHANNEL, head_ts) if slack.buttons(m)]


def current(slack, message: dict) -> dict:
    return slack.messages[CHANNEL, message["ts"]]


def told(slack, user: str) -> list[str]:
    return [render_text(e) for e in slack.ephemerals if e["user"] == user]


async def click(bot, message: dict, user: str, action: str = "approve", **kw):
    result = await bot.slack.click(message, f"approval.{action}", user_id=user, **kw)
    assert result.status == 200 and result.within_ack_deadline
    await bot.settle(timeout=120)
    return result


def click_body(slack, message: dict, user: str) -> str:
    """The block_actions payload Slack sends when `user` clicks Approve on `message`."""
    button = next(b for b in slack.buttons(message) if b["action_id"] == "approval.approve")
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": slack.team_id},
        "api_app_id": slack.app_id,
        "token": slack.verification_token,
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": CHANNEL,
            "is_ephemeral": False,
            "thread_ts": message["thread_ts"],
        },
        "trigger_id": f"{time.time()}.1.abc",
        "team": {"id": slack.team_id, "domain": slack.team_domain},
        "channel": {"id": CHANNEL, "name": "ops"},
        "response_url": slack.response_url(channel=CHANNEL, user=user, message=message),
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": button["block_id"],
                "type": "button",
                "text": {"type": "plain_text", "text": button["text"]},
                "value": button["value"],
                "style": button["style"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


async def concurrent_clicks(slack, message: dict, clicks: list[tuple[str, str]]) -> list[tuple[int, float]]:
    """POST every (bot url, user) click at once; (HTTP status, seconds to answer) of each."""
    async with aiohttp.ClientSession() as http:

        async def send(url: str, user: str) -> tuple[int, float]:
            body = click_body(slack, message, user)
            started = time.monotonic()
            async with http.post(url, data=body.encode(), headers=slack.signed_headers(body)) as response:
                return response.status, time.monotonic() - started

        return list(await asyncio.gather(*(send(url, user) for url, user in clicks)))


async def remediate(action: str, dsn: str | None, args: dict, **settings) -> str:
    """Run a remediation as the approval engine does once it is approved (settings as keyword arguments)."""
    from tests import harness
    from tests.db_support import settings_for

    return await harness.remediate(action, settings_for(dsn, **settings), **args)


def database_of(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]
