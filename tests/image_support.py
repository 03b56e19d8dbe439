"""The bot's image, built from this checkout by the tests' own Docker engine.

No registry can be reached from the tests, so the Dockerfile's BASE_IMAGE is a Debian bookworm made
here with `debootstrap --variant=minbase` from Debian's mirror and `docker import`. The build's RUN
steps fetch over the host's network (`docker build --network host`: the engine has no bridge); the
base carries the CA bundle this machine trusts, as `PIP_CERT`, so pip inside the build verifies TLS
as pip on this machine does (behind a proxy that re-signs TLS too). The Dockerfile runs unchanged.

Everything slow is cached outside /tmp (~/.cache/erpgo-chatops): the debootstrapped root, the base
image as `docker save` wrote it (an image imported twice differs by its creation time, and the build
cache only matches the very same base), and the last image built, offered to the next build as
`--cache-from`, so a run that changed only the code rebuilds only the code's layers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demo.services import DockerEngine, ServiceError, ServiceUnavailable, unmount_under

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "erpgo-chatops"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ROOTFS_CACHE = CACHE_DIR / "debian-bookworm-minbase.tar"
BUILD_CACHE = CACHE_DIR / "erpgo-chatops.image.tar"
BASE_IMAGE = "erpgo/debian-base:bookworm"
BOT_IMAGE = "erpgo-chatops:test"
BUILD_CA_BUNDLE = "/etc/erpgo-build/ca-bundle.crt"

SLOW_STEP_TIMEOUT_S = 900


def trusted_ca_bundle() -> Path:
    """The CA bundle pip on this machine verifies with."""
    return Path(
        os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    )


def base_cache() -> Path:
    """The saved base image for this machine's CA bundle: another bundle makes another base."""
    digest = hashlib.sha256(trusted_ca_bundle().read_bytes()).hexdigest()[:12]
    return CACHE_DIR / f"debian-base-{digest}.image.tar"


def ensure_base_image(engine: DockerEngine) -> str:
    """BASE_IMAGE in `engine`: loaded from the cache, else made (debootstrap, wheelhouse) and cached."""
    try:
        engine.docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE)
        return BASE_IMAGE
    except ServiceError:
        pass
    saved = base_cache()
    if not saved.exists():
        _make_base_image(engine, saved)
    engine.docker("load", "--input", str(saved), timeout=300)
    return BASE_IMAGE


def _make_base_image(engine: DockerEngine, saved: Path) -> None:
    with _work_dir("base-") as work:
        tarball = work / "base.tar"
        shutil.copyfile(_debian_rootfs(), tarball)
        bundle = work / BUILD_CA_BUNDLE.lstrip("/")
        bundle.parent.mkdir(parents=True)
        shutil.copyfile(trusted_ca_bundle(), bundle)
        _run(
            [
                "tar",
                "--append",
                "-f",
                str(tarball),
                "-C",
                str(work),
                "--owner=0",
                "--group=0",
                f"./{bundle.parent.relative_to(work)}",
            ]
        )
        engine.docker("import", "--change", f"ENV PIP_CERT={BUILD_CA_BUNDLE}", str(tarball), BASE_IMAGE, timeout=300)
        engine.docker("save", "--output", str(work / "base.image.tar"), BASE_IMAGE, timeout=300)
        for stale in CACHE_DIR.glob("debian-base-*.image.tar"):
            stale.unlink()
        os.replace(work / "base.image.tar", saved)  # whole or not at all: a run stopped half way caches nothing


def _debian_rootfs() -> Path:
    """The cached minbase bookworm root filesystem as a tar, made with debootstrap when missing."""
    if ROOTFS_CACHE.exists():
        return ROOTFS_CACHE
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ServiceUnavailable("debootstrap is not installed (scripts/setup installs it)")
    with _work_dir("debootstrap-") as work:
        rootfs, tarball = work / "rootfs", work / "rootfs.tar"
        _run([debootstrap, "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR])
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."])
        os.replace(tarball, ROOTFS_CACHE)
    return ROOTFS_CACHE


def build_bot_image(engine: DockerEngine) -> str:
    """Build the checkout's Dockerfile on BASE_IMAGE, tagged BOT_IMAGE; returns the image id."""
    base = ensure_base_image(engine)
    cached = _load_build_cache(engine)
    build = ["build", "--quiet", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "--tag", BOT_IMAGE]
    if cached:
        build += ["--cache-from", cached]
    # --quiet: the build's whole output only when it fails, as the error
    image_id = engine.docker(*build, str(ROOT), timeout=SLOW_STEP_TIMEOUT_S).strip()
    if cached != image_id:  # the code changed (or nothing was cached): the next run builds on this one
        if cached:
            remove_images(engine, cached)  # superseded: left dangling, it would only feed the prune tests
        _save_build_cache(engine)
    return image_id


def _load_build_cache(engine: DockerEngine) -> str | None:
    """The id of the image the last run built, loaded for `--cache-from`, when there is one."""
    if not BUILD_CACHE.exists():
        return None
    try:
        engine.docker("load", "--input", str(BUILD_CACHE), timeout=300)
        return engine.docker("image", "inspect", "--format", "{{.Id}}", BOT_IMAGE).strip()
    except ServiceError:
        BUILD_CACHE.unlink(missing_ok=True)  # unreadable: this build saves a good one
        return None


def _save_build_cache(engine: DockerEngine) -> None:
    with _work_dir("save-") as work:
        engine.docker("save", "--output", str(work / "bot.image.tar"), BOT_IMAGE, timeout=300)
        os.replace(work / "bot.image.tar", BUILD_CACHE)


def remove_images(engine: DockerEngine, *images: str) -> None:
    """Remove images (and the layers only they use); ones already gone are fine."""
    with contextlib.suppress(ServiceError):
        engine.docker("image", "rm", "--force", *images, timeout=120)


@contextmanager
def _work_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory in the cache (never /tmp: the base alone is hundreds of MB), always removed."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE_DIR))
    try:
        yield work
    finally:
        unmount_under(work)  # debootstrap mounts /proc (and may bind /dev) inside the root it makes
        shutil.rmtree(work, ignore_errors=True)


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SLOW_STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"timed out after {SLOW_STEP_TIMEOUT_S} s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ServiceError(f"exit {done.returncode}: {' '.join(cmd)}\n{tail}")
