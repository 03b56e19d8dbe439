import os
import shutil
import tempfile
from pathlib import Path

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
    "tests.fixtures.prometheus",
    "tests.container_support",
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


# Tests leave nothing in /tmp. Everything this process tree makes there goes into one directory of the
# session's own ($TMPDIR; the services and the bot ask tempfile for it), so what others running at the
# same time create never counts; pytest's own tmp_path stays where it was, under its own retention.
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
SESSION_TMP = Path(tempfile.mkdtemp(prefix="erpgo-tests-", dir="/tmp"))
SESSION_TMP.chmod(0o1777)  # as /tmp: the postgres user makes its cluster directories in it too
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = None  # re-read TMPDIR


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run when the tests left anything in their temporary directory, naming what."""
    left = sorted(entry.name for entry in SESSION_TMP.iterdir())
    shutil.rmtree(SESSION_TMP, ignore_errors=True)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests left {len(left)} entr{'y' if len(left) == 1 else 'ies'} in /tmp: {', '.join(left)}"
        if reporter is not None:
            reporter.write(f"\n{message}\n", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
