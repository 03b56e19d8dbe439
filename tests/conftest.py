import os

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.erpgo",
    "tests.fixtures.bot",
    "tests.fixtures.network",
    "tests.fixtures.tls",
    "tests.fixtures.docker",
]

# The bot reads its configuration from the environment; tests configure it explicitly, so
# nothing from the caller's shell may leak in.
for _name in list(os.environ):
    if _name.startswith(("ERPGO_", "SLACK_", "BOT_", "ALERT_", "CHATOPS_")) or _name in ("DOCKER_HOST", "PORT"):
        del os.environ[_name]
