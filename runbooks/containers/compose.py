"""Guide: "Application Won't Start" steps 1 and 5, as far as the Docker engine knows the compose project.

Step 1 (configuration): the container's compose labels name the files it was made from
(`com.docker.compose.project.config_files`) and where (`…working_dir`); when the bot can read that file, the
service's declared environment names (`environment:`, list or mapping) are compared with the container's —
a name declared but absent means the container was made before the file changed, and `docker-compose up -d`
recreates it. Only names are compared; no value is read.

Step 5 (rebuild): the bot does not build images. It says whether the image tag the container was made from
now names another image (someone rebuilt or pulled it), why a restart does not pick that up (a restart
reuses the container, and so its image), and the exact commands that do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.context import CheckContext
from bot.core.findings import Finding
from bot.core.registry import Runbook
from bot.targets.docker_models import ContainerInfo
from runbooks.containers.common import chosen_container, docker_check, inspect_or_none, short_id

runbook = Runbook("containers.compose")

SECTION = "Application Issues › Application Won't Start"
CONFIG_FILES = "com.docker.compose.project.config_files"
WORKING_DIR = "com.docker.compose.project.working_dir"
MAX_COMPOSE_BYTES = 1024 * 1024


# --- step 1: the service's declared environment against the container's ---------------------------------


def compose_files(info: ContainerInfo) -> list[Path]:
    """The compose files the container was made from, as the engine's labels name them."""
    listed = [part.strip() for part in info.labels.get(CONFIG_FILES, "").split(",") if part.strip()]
    base = Path(info.labels.get(WORKING_DIR) or "/")
    return [base / path for path in listed]


def read_compose(path: Path) -> dict[str, Any] | None:
    """The compose file when this process can read it (the bot on the Docker host, the directory mounted)."""
    try:
        if path.stat().st_size > MAX_COMPOSE_BYTES:
            return None
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def declared_names(document: dict[str, Any], service: str) -> set[str] | None:
    """The environment names a service declares (`environment:` as a list or a mapping); None: no such service."""
    services = document.get("services")
    spec = services.get(service) if isinstance(services, dict) else None
    if not isinstance(spec, dict):
        return None
    environment = spec.get("environment") or {}
    if isinstance(environment, dict):
        return {str(name) for name in environment}
    return {str(item).split("=", 1)[0] for item in environment if str(item)}


def environment_finding(component: str, info: ContainerInfo, path: Path, declared: set[str]) -> Finding:
    missing = sorted(declared - set(info.env))
    empty = sorted(name for name in declared & set(info.env) if info.env[name] == "empty")
    where = f"{path} (service {info.service})"
    details = [f"declared: {', '.join(sorted(declared)) or 'none'} — names only, no value is read"]
    if missing:
        details.append(
            f"the container was made before {path.name} declared them: `docker-compose up -d {info.service}` "
            "recreates it with the file's environment (a restart keeps the old one)"
        )
    if empty:
        details.append("empty in the container: a `${VARIABLE}` the shell or .env did not set when it was made")
    data = {"file": str(path), "declared": sorted(declared), "missing": missing, "empty": empty}
    if missing or empty:
        problems = [f"{', '.join(missing)} missing" if missing else "", f"{', '.join(empty)} empty" if empty else ""]
        title = f"{'; '.join(p for p in problems if p)} in the container, though {where} declares them"
        return Finding.warn(component, title, details=details, section=SECTION, data=data)
    title = f"every name {where} declares is in the container"
    return Finding.ok(component, title, details=details, section=SECTION, data=data)


@docker_check(runbook, "app", component="Compose", section=SECTION)
async def compose_environment(ctx: CheckContext) -> Finding | list[Finding]:
    """Step 1: the compose project's configuration the engine knows, and the service's declared environment."""
    name = await chosen_container(ctx)
    info = await inspect_or_none(ctx.targets.docker, name)
    component = f"Compose {name}"
    if info is None:
        return []
    files = compose_files(info)
    if not info.service or not files:
        return Finding.skipped(component, "not made by docker-compose (no compose labels): nothing to compare")
    for path in files:
        document = read_compose(path)
        declared = declared_names(document, info.service) if document else None
        if declared is not None:
            return environment_finding(component, info, path, declared)
    shown = ", ".join(str(path) for path in files)
    return Finding.skipped(
        component,
        f"made from {shown}, which this bot cannot read: compare its `environment:` with `docker inspect {name}`",
        details=["mount the project directory read-only into the bot to have it compared"],
        data={"files": [str(path) for path in files]},
    )


# --- step 5: a rebuilt image --------------------------------------------------------------------------------


def rebuild_commands(info: ContainerInfo) -> str:
    service = info.service or info.name
    return f"`docker-compose build {service} && docker-compose up -d {service}` (or `docker-compose up -d --build {service}`)"


@docker_check(runbook, "app", component="Image", section=SECTION)
async def image_freshness(ctx: CheckContext) -> Finding | list[Finding]:
    """Step 5 explained: whether the image tag now names another image than the container runs, and how to run it."""
    name = await chosen_container(ctx)
    info = await inspect_or_none(ctx.targets.docker, name)
    if info is None:
        return []
    component = f"Image {name}"
    current = await ctx.targets.docker.image_id(info.image)
    why = (
        "a restart reuses the container and so the image it was made from; only recreating the container "
        f"runs a new one: {rebuild_commands(info)} — this bot does not build images"
    )
    data = {"image": info.image, "running": info.image_id, "tag_now": current}
    if current is None or info.image.startswith("sha256:"):
        return Finding.ok(component, f"{info.image} ({short_id(info.image_id)})", details=[why], data=data)
    if current != info.image_id:
        title = (
            f"{info.image} now names image {short_id(current)}, but the container runs {short_id(info.image_id)}: "
            "it was rebuilt or pulled since the container was made"
        )
        return Finding.warn(component, title, details=[why], section=SECTION, data=data)
    return Finding.ok(
        component, f"{info.image} ({short_id(info.image_id)}): the newest the tag names", details=[why], data=data
    )
