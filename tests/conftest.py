import os

import pytest

from bot.core import redact as redaction

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.erpgo",
    "tests.fixtures.bot",
    "tests.fixtures.network",
    "tests.fixtures.tls",
    "tests.fixtures.docker",
    "tests.fixtures.go_api",
    "tests.fixtures.outbox",
]

# The bot reads its configuration from the environment; tests configure it explicitly, so
# nothing from the caller's shell may leak in.
for _name in list(os.environ):
    if _name.startswith(("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_")) or _name in ("DOCKER_HOST", "PORT"):
        del os.environ[_name]


@pytest.fixture(autouse=True)
def _secrets_of_this_test():
    """The redactor's registry is process-wide and every bot a test starts registers its settings'
    secrets: each test starts from the session's own, so the registry (and its patterns) stay small."""
    saved = set(redaction._secrets.values)
    yield
    redaction._secrets.replace(saved)
