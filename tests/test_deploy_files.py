"""The deployment files agree with the bot as it is: every setting they set exists, every probe and
webhook points at a route the bot serves, secrets come by reference, the policy they mount loads, and
nothing collides with ERPGo's own containers."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import typing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from bot.app import build_bolt_app, build_runtime, build_web_app
from bot.approvals.policy import load_policy
from bot.settings import Settings, load_settings
from tests.fixtures.services import _in_ci

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
README = (ROOT / "README.md").read_text()
SETTINGS = {name.upper() for name in Settings.model_fields}
SECRET_SETTINGS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if SecretStr in (field.annotation, *typing.get_args(field.annotation))
}
# the containers of ERPGo's own compose project: the bot's must never take one of these names
ERPGO_CONTAINERS = {
    *("erpgo-api", "erpgo-postgres", "erpgo-redis", "erpgo-nats", "erpgo-worker", "erpgo-migrator"),
    *("erpgo-prometheus", "erpgo-grafana", "erpgo-alertmanager", "erpgo-node-exporter"),
    *("erpgo-postgres-exporter", "erpgo-redis-exporter", "erpgo-loki", "erpgo-promtail"),
}


@pytest.fixture(scope="module")
async def routes() -> set[tuple[str, str]]:
    """(method, path) of every route the bot's HTTP server has, as `erpgo-bot serve` builds it."""
    runtime = build_runtime(load_settings(slack_bot_token="xoxb-routes", slack_signing_secret="routes"))
    web_app = build_web_app(runtime, build_bolt_app(runtime))
    found = {(route.method, route.resource.canonical) for route in web_app.router.routes() if route.resource}
    await runtime.close()
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_bot() -> dict:
    return compose()["services"]["bot"]


def manifests() -> dict[str, dict]:
    """Every Kubernetes object in deploy/kubernetes, by kind."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    objects = [yaml.safe_load((KUBERNETES / name).read_text()) for name in kustomization["resources"]]
    return {obj["kind"]: obj for obj in objects}


def bot_container() -> dict:
    return manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def interpolation_default(value: str) -> str:
    """What `${NAME:-default}` gives when NAME is not set."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match.group(1) if match else value


def deploying_section() -> str:
    return README.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]


# ----------------------------------------------------------------------------- docker-compose.yml


def test_compose_sets_only_settings_the_bot_reads():
    assert set(compose_bot()["environment"]) - SETTINGS == set()


def test_every_compose_variable_is_a_setting_or_explained_in_deploying():
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    unexplained = {name for name in used - SETTINGS if f"`{name}`" not in deploying_section()}
    assert unexplained == set()


def test_compose_takes_no_name_of_erpgos_containers():
    project = compose()
    assert project["name"] != "erpgo"  # ERPGo's compose project: `down` there would take the bot along
    for service_name, service in project["services"].items():
        assert "container_name" not in service
        assert f"{project['name']}-{service_name}-1" not in ERPGO_CONTAINERS
    aliases = project["services"]["bot"]["networks"]["erpgo"]["aliases"]
    assert set(aliases) & ERPGO_CONTAINERS == set()


def test_compose_reaches_erpgo_on_its_network_named_by_a_variable():
    project, bot = compose(), compose_bot()
    erpgo = project["networks"]["erpgo"]
    assert erpgo["external"] is True
    assert interpolation_default(erpgo["name"]) == "erpgo_erpgo-network" and erpgo["name"].startswith("${")
    assert "erpgo" in bot["networks"]
    hosts = {name: urlsplit(bot["environment"][name]).hostname for name in ("ERPGO_API_URL", "ERPGO_REDIS_URL")}
    hosts["ERPGO_DATABASE_URL"] = bot["environment"]["ERPGO_DATABASE_URL"].rsplit("@", 1)[1].split(":")[0]
    assert set(hosts.values()) <= ERPGO_CONTAINERS


def test_compose_gives_the_bot_a_database_of_its_own():
    project, bot = compose(), compose_bot()
    url = bot["environment"]["BOT_DATABASE_URL"]
    credentials, location = url.removeprefix("postgresql://").rsplit("@", 1)
    host, database = location.split(":")[0], location.rsplit("/", 1)[1]
    own = project["services"][host]["environment"]
    assert (credentials.split(":")[0], database) == (own["POSTGRES_USER"], own["POSTGRES_DB"])
    assert host not in ERPGO_CONTAINERS
    assert bot["depends_on"][host]["condition"] == "service_healthy"


def test_compose_mounts_a_policy_file_that_exists_and_loads():
    bot = compose_bot()
    mounts = [volume.rsplit(":", 2) for volume in bot["volumes"]]
    source, _target, _mode = next(m for m in mounts if m[1] == bot["environment"]["CHATOPS_POLICY_FILE"])
    policy = ROOT / interpolation_default(source)
    assert policy.is_file()
    assert not load_policy(str(policy)).is_default


def test_compose_serves_on_the_port_the_bot_listens_on_and_lets_it_drain():
    bot = compose_bot()
    assert [port.rsplit(":", 1)[1] for port in bot["ports"]] == [bot["environment"]["PORT"]]
    assert int(bot["stop_grace_period"].removesuffix("s")) > Settings().erpgo_shutdown_grace


# ----------------------------------------------------------------------------- the image's build context


def ignored_by_dockerignore(name: str) -> bool:
    """Whether .dockerignore leaves the top-level entry `name` out of the build context (last rule wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        if fnmatch.fnmatch(name, rule.removeprefix("!").rstrip("/")):
            ignored = not negated
    return ignored


def test_the_build_context_leaves_out_everything_but_the_bot():
    for heavy in (".venv", ".git", "tests", "demo", "bench", ".ci", "scripts", "deploy"):
        assert ignored_by_dockerignore(heavy), heavy
    for needed in ("pyproject.toml", "README.md", "bot", "handlers", "runbooks"):
        assert not ignored_by_dockerignore(needed), needed


async def test_the_image_checks_its_health_on_a_route_the_bot_has(routes):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+\nFROM \$\{BASE_IMAGE\}", dockerfile, flags=re.M)
    probed = re.search(r"HEALTHCHECK .*?/(\w+)'", dockerfile, flags=re.S)
    assert probed and ("GET", f"/{probed.group(1)}") in routes


# ----------------------------------------------------------------------------- deploy/kubernetes


def test_kubernetes_runs_two_replicas_a_disruption_may_take_only_one_of():
    objects = manifests()
    deployment, budget = objects["Deployment"], objects["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] == 1
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()


async def test_kubernetes_probes_ask_the_routes_the_bot_has(routes):
    container = bot_container()
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/healthz" and probes["livenessProbe"]["path"] == "/livez"
    for probe in (*probes.values(), container["startupProbe"]["httpGet"]):
        assert ("GET", probe["path"]) in routes and probe["port"] in port_names
    assert port_names["http"] == int(manifests()["ConfigMap"]["data"]["PORT"])
    assert manifests()["Service"]["spec"]["ports"][0]["targetPort"] in port_names


def test_kubernetes_sets_only_settings_and_takes_every_secret_by_reference():
    container, settings = bot_container(), manifests()["ConfigMap"]["data"]
    referenced = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
    given = {env["name"] for env in container["env"] if "value" in env}
    assert (set(settings) | set(referenced) | given) - SETTINGS == set()
    assert (set(settings) | given) & SECRET_SETTINGS == set()
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "BOT_DATABASE_URL"} <= set(referenced)
    for ref in referenced.values():  # the README's `kubectl create secret` makes each of them
        assert ref["name"] == "erpgo-chatops" and f"--from-literal={ref['key']}=" in deploying_section()


def test_kubernetes_lets_a_stopping_pod_finish_its_work_as_the_images_user():
    grace = float(manifests()["ConfigMap"]["data"].get("ERPGO_SHUTDOWN_GRACE", Settings().erpgo_shutdown_grace))
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace
    assert pod["securityContext"]["runAsNonRoot"] is True
    image_user = re.search(r"useradd --uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert image_user and pod["securityContext"]["runAsUser"] == int(image_user.group(1))


async def test_the_alertmanager_receiver_posts_to_the_bots_webhook_through_its_service(routes):
    receiver_file = KUBERNETES / "alertmanager-receiver.yml"
    config = yaml.safe_load(receiver_file.read_text())
    webhook = config["receivers"][0]["webhook_configs"][0]
    url = urlsplit(webhook["url"])
    namespace = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["namespace"]
    service = manifests()["Service"]
    assert url.hostname == f"{service['metadata']['name']}.{namespace}.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert ("POST", url.path) in routes
    assert webhook["http_config"]["authorization"]["type"] == "Bearer" and webhook["send_resolved"] is True
    amtool = shutil.which("amtool")
    if amtool is None:
        assert not _in_ci(), "amtool (package prometheus-alertmanager) is missing"
        pytest.skip("amtool is not installed")
    checked = subprocess.run([amtool, "check-config", str(receiver_file)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
