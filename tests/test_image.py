"""The image a deployment runs: this checkout's Dockerfile built on a Debian base made here (see
tests/image_support.py), started as an orchestrator starts it, answering as the bot and stopping
cleanly."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.local.slack import LocalSlack
from demo.services import DockerEngine, ServiceUnavailable, free_port
from tests.fixtures.services import _unavailable
from tests.image_support import BASE_IMAGE, BOT_IMAGE, build_bot_image, remove_images
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]
POLICY_IN_IMAGE = "/etc/erpgo-chatops/policy.yml"

# a cold cache debootstraps Debian and fetches every dependency (about 2 minutes); warm, about 20 s
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def bot_image(docker_engine: DockerEngine) -> Iterator[str]:
    try:
        image = build_bot_image(docker_engine)
    except ServiceUnavailable as exc:
        _unavailable(exc)
        raise
    yield image
    remove_images(docker_engine, BOT_IMAGE, BASE_IMAGE)  # the engine is the whole suite's


@pytest.fixture
async def slack():
    local = LocalSlack(secrets.token_hex(16))
    await local.start()
    yield local
    await local.close()


def run_bot_container(engine: DockerEngine, image: str, name: str, slack: LocalSlack, bot_db: str, port: int) -> None:
    """As a deployment runs it: read-only root, the example policy mounted, the bot's own database."""
    settings = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "BOT_DATABASE_URL": bot_db,
        "CHATOPS_POLICY_FILE": POLICY_IN_IMAGE,
        "PORT": str(port),
    }
    environment = [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
    engine.docker(
        *("run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp"),
        *("--volume", f"{ROOT / 'policy.example.yml'}:{POLICY_IN_IMAGE}:ro", *environment, image),
    )


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict] | None:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            return response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def test_the_image_serves_the_bot_as_a_non_root_user_and_stops_cleanly(
    docker_engine, bot_image, names, slack, fresh_database
):
    name, port = names("bot"), free_port()
    run_bot_container(docker_engine, bot_image, name, slack, fresh_database("image"), port)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        ready = await eventually(lambda: get_json(http, f"{base}/healthz"), timeout=60, what=f"/healthz of {name}")
        status, body = ready
        assert status == 200 and body["bot_database"] == {"ok": True}, docker_engine.docker("logs", name)
        assert await get_json(http, f"{base}/livez") == (200, {"status": "alive"})

    slack.bot_url = f"{base}/slack/events"
    answer = await slack.slash("help")
    assert answer.status == 200 and "health" in answer.body_text

    assert docker_engine.docker("exec", name, "id", "-u").strip() not in ("", "0")
    healthcheck = json.loads(docker_engine.docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", name))
    assert healthcheck[0] == "CMD-SHELL"
    docker_engine.docker("exec", name, "sh", "-c", healthcheck[1])  # Docker would mark it healthy

    docker_engine.docker("stop", "--time", "30", name)
    assert docker_engine.docker("inspect", "--format", "{{.State.ExitCode}}", name).strip() == "0"


def test_the_image_holds_the_bot_and_nothing_of_the_checkout_besides(docker_engine, bot_image):
    probe = (
        "import importlib.util, json, os;"
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
        "('bot', 'handlers', 'runbooks', 'tests.harness', 'demo', 'bench')} | {'src': os.listdir('/src') if os.path.isdir('/src') else []}))"
    )
    found = json.loads(docker_engine.docker("run", "--rm", "--network", "none", bot_image, "python", "-c", probe))
    assert found == {
        "bot": True,
        "handlers": True,
        "runbooks": True,
        "tests.harness": False,  # the project's tests (a dependency, iteround, ships a `tests` package of its own)
        "demo": False,
        "bench": False,
        "src": [],
    }
