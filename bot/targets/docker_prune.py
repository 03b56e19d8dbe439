"""What `docker.prune` may remove, and removing exactly that.

`docker system prune` removes every stopped container, including the one-shot containers a compose
project keeps stopped on purpose (ERPGo's `erpgo-migrator` exits 0 and stays exited). Here the stopped
containers that are watched, or belong to the compose project of a watched container, are kept, and so
are the images they use. Images are candidates only when dangling (no tag); tagged images are never
removed, volumes never touched.

`plan` is pure: it reads `docker system df` as the engine returns it. `prune` re-reads it, removes only
the approved candidates that are still candidates (the engine refuses a container that runs again or an
image still in use), and measures what the engine's disk usage went down by.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiodocker.exceptions import DockerError

from bot.targets.docker import ContainerNotFound, Docker
from bot.targets.docker_models import ACTIVE_STATES, COMPOSE_PROJECT

CONTAINER, IMAGE, BUILD_CACHE = "container", "image", "build cache"


@dataclass(frozen=True)
class Candidate:
    kind: str  # container, image, build cache
    id: str  # the engine's full id
    name: str  # what a person recognises: the container's name, an image's short id
    size: int  # bytes it frees


@dataclass(frozen=True)
class Kept:
    name: str
    why: str  # "watched", "compose project erpgo"


@dataclass
class PrunePlan:
    candidates: list[Candidate] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)  # stopped containers left alone, and why
    unused_tagged: list[Candidate] = field(default_factory=list)  # `docker image prune -a` would take these

    def of(self, kind: str) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == kind]

    @property
    def reclaimable(self) -> int:
        return sum(c.size for c in self.candidates)


@dataclass
class PruneOutcome:
    removed: list[Candidate] = field(default_factory=list)
    refused: list[tuple[Candidate, str]] = field(default_factory=list)  # the engine said no, and why
    gone: list[str] = field(default_factory=list)  # approved, no longer a candidate (restarted, removed)
    unapproved: list[Candidate] = field(default_factory=list)  # candidates now that nobody approved: left
    cache_reclaimed: int = 0
    before: int = 0  # the engine's footprint (layers + container layers + build cache) before and after
    after: int = 0

    @property
    def reclaimed(self) -> int:
        return max(0, self.before - self.after)


def _name(container: Mapping[str, Any]) -> str:
    return (container.get("Names") or ["/" + str(container.get("Id", ""))[:12]])[0].lstrip("/")


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _tags(image: Mapping[str, Any]) -> list[str]:
    return [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]


def _why_kept(container: Mapping[str, Any], names: set[str], projects: set[str]) -> str | None:
    if _name(container) in names:
        return "watched"
    project = (container.get("Labels") or {}).get(COMPOSE_PROJECT)
    if project in projects:
        return f"compose project {project}"
    return None


def watched_projects(df: Mapping[str, Any], names: Iterable[str], projects: Iterable[str] = ()) -> set[str]:
    """The compose projects whose containers are kept: the configured ones and those of watched containers."""
    wanted = set(names)
    found = {p for p in projects if p}
    for container in df.get("Containers") or []:
        project = (container.get("Labels") or {}).get(COMPOSE_PROJECT)
        if project and _name(container) in wanted:
            found.add(project)
    return found


def plan(df: Mapping[str, Any], keep_names: Iterable[str], keep_projects: Iterable[str] = ()) -> PrunePlan:
    """Stopped containers nobody watches, dangling images nothing else needs, unused build cache."""
    names = set(keep_names)
    projects = watched_projects(df, names, keep_projects)
    result = PrunePlan()
    staying: list[Mapping[str, Any]] = []
    for container in df.get("Containers") or []:
        why = None if container.get("State") in ACTIVE_STATES else _why_kept(container, names, projects)
        if container.get("State") in ACTIVE_STATES or why:
            staying.append(container)
            if why:
                result.kept.append(Kept(_name(container), why))
            continue
        size = int(container.get("SizeRw") or 0)
        result.candidates.append(Candidate(CONTAINER, str(container["Id"]), _name(container), size))
    used = {c.get("ImageID") for c in staying}
    images = df.get("Images") or []
    parents = {image.get("ParentId") for image in images}
    for image in images:
        if image["Id"] in used or image["Id"] in parents:
            continue
        unique = max(0, int(image.get("Size") or 0) - max(0, int(image.get("SharedSize") or 0)))
        if _tags(image):
            if not int(image.get("Containers") or 0):
                result.unused_tagged.append(Candidate(IMAGE, image["Id"], ", ".join(_tags(image)), unique))
            continue
        result.candidates.append(Candidate(IMAGE, image["Id"], _short(image["Id"]), unique))
    for cache in df.get("BuildCache") or []:
        if not cache.get("InUse") and not cache.get("Shared"):
            cache_id = str(cache.get("ID", ""))
            result.candidates.append(Candidate(BUILD_CACHE, cache_id, cache_id[:12], int(cache.get("Size") or 0)))
    result.kept.sort(key=lambda kept: kept.name)
    return result


def footprint(df: Mapping[str, Any]) -> int:
    """Bytes the engine holds in image layers, container layers and build cache (volumes excluded)."""
    containers = sum(int(c.get("SizeRw") or 0) for c in df.get("Containers") or [])
    cache = sum(int(c.get("Size") or 0) for c in df.get("BuildCache") or [])
    return int(df.get("LayersSize") or 0) + containers + cache


async def preview(
    docker: Docker, keep_names: Iterable[str], keep_projects: Iterable[str] = (), seconds: float | None = None
) -> PrunePlan:
    return plan(await docker.disk_usage_raw(seconds), keep_names, keep_projects)


async def _remove(docker: Docker, candidate: Candidate) -> str | None:
    """None when removed; otherwise why the engine refused."""
    try:
        if candidate.kind == CONTAINER:
            await docker.remove_container(candidate.id)
        else:
            await docker.remove_image(candidate.id)
    except ContainerNotFound:
        return "already gone"
    except DockerError as exc:
        if exc.status in (404, 409):
            return exc.message.strip() or f"HTTP {exc.status}"
        raise
    return None


async def prune(
    docker: Docker,
    approved: Collection[str],
    build_cache: bool,
    keep_names: Iterable[str],
    keep_projects: Iterable[str] = (),
    seconds: float | None = None,
) -> PruneOutcome:
    """Remove the `approved` containers and images that are still candidates (containers first, so the
    images they held are free), then the unused build cache when `build_cache`."""
    keep_names = list(keep_names)
    df = await docker.disk_usage_raw(seconds)
    now = plan(df, keep_names, keep_projects)
    outcome = PruneOutcome(before=footprint(df))
    current = {c.id for c in now.candidates}
    outcome.gone = [i for i in approved if i not in current]
    outcome.unapproved = [c for c in now.candidates if c.kind != BUILD_CACHE and c.id not in approved]
    for candidate in now.of(CONTAINER) + now.of(IMAGE):
        if candidate.id not in approved:
            continue
        refusal = await _remove(docker, candidate)
        if refusal is None:
            outcome.removed.append(candidate)
        else:
            outcome.refused.append((candidate, refusal))
    if build_cache and now.of(BUILD_CACHE):
        outcome.cache_reclaimed = await docker.prune_build_cache()
        outcome.removed += now.of(BUILD_CACHE)
    outcome.after = footprint(await docker.disk_usage_raw(seconds))
    return outcome
