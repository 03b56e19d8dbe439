"""The bot's resident memory: libraries that only a rarely used command needs are loaded by that command,
not at the bot's start (bench/alert_storm holds the bot under 100 MB of RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import CONTRACT_ENV

ROOT = Path(__file__).resolve().parent.parent

# what each costs the bot's RSS when loaded (measured on Python 3.11), and who loads it
ON_FIRST_USE = {
    "cryptography.hazmat.bindings._rust": "~9 MB with PyJWT: tls, tls-renewal and jwt",
    "jwt": "the jwt runbook",
    "redis": "~7 MB: a Redis target (ERPGO_REDIS_URL)",
    "pglast": "~3 MB: db explain",
    "pygal": "~2 MB with resvg: the first chart",
    "resvg_py": "the first chart",
}

START = """
import json, sys
from bot import app, cli, server
from bot.settings import load_settings
from bot.targets import Targets

app.build_registry()
Targets(load_settings())
print(json.dumps(sorted(sys.modules)))
"""


def test_the_bots_start_does_not_load_the_tls_jwt_redis_sql_parser_or_chart_libraries():
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_ENV)} | {"PYTHONPATH": str(ROOT)}
    started = subprocess.run(
        [sys.executable, "-c", START], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True
    )
    loaded = set(json.loads(started.stdout.splitlines()[-1]))
    assert {name: why for name, why in ON_FIRST_USE.items() if name in loaded} == {}
