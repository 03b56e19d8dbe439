"""Files in a container through the Docker Engine API: `docker cp` both ways (the archive API, streamed
to and from disk, never held in memory), and the file list and sizes of a directory (`find` and
`stat` run as argument lists, no shell)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from aiodocker.exceptions import DockerError

from bot.core.redact import shorten
from bot.targets.docker import ContainerNotFound, Docker

CHUNK = 1024 * 1024
STAT_BATCH = 200  # paths per `stat` exec


class ContainerFileError(OSError):
    """The file or directory is missing in the container, or a tool there failed; says which."""


@dataclass(frozen=True)
class ContainerFile:
    path: str  # inside the container
    size: int
    mtime: float  # seconds since the epoch


def _not_found(exc: DockerError, container: str, path: str) -> Exception:
    if exc.status == 404 and "no such container" in exc.message.lower():
        return ContainerNotFound(container)
    if exc.status == 404:
        return ContainerFileError(f"{path} does not exist in container {container}")
    return exc


async def copy_out(docker: Docker, container: str, path: str, dest_dir: str, *, timeout: float) -> str:
    """`docker cp container:path dest_dir`: the regular file `path`, streamed into `dest_dir`; its local path."""
    name = PurePosixPath(path).name
    archive = os.path.join(dest_dir, f".{name}.tar")
    try:
        async with (
            docker._call(timeout) as client,
            client._query(f"containers/{container}/archive", params={"path": path}, timeout=None) as response,
        ):
            with open(archive, "wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    out.write(chunk)
    except DockerError as exc:
        raise _not_found(exc, container, path) from exc
    try:
        return _extract_file(archive, name, dest_dir)
    finally:
        os.unlink(archive)


def _extract_file(archive: str, name: str, dest_dir: str) -> str:
    """The one regular file of a `docker cp` archive, written under its base name (never a path from the tar)."""
    target = os.path.join(dest_dir, os.path.basename(name))
    with tarfile.open(archive) as tar:
        member = next((m for m in tar if m.isfile() and PurePosixPath(m.name).name == name), None)
        if member is None:
            raise ContainerFileError(f"{name} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    return target


async def copy_in(
    docker: Docker, container: str, local_file: str, directory: str, name: str, *, timeout: float
) -> None:
    """`docker cp local_file container:directory/name` (the directory must exist)."""
    with tempfile.TemporaryDirectory(prefix="erpgo-cp-") as scratch:
        archive = os.path.join(scratch, "in.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(local_file, arcname=name)
        try:
            with open(archive, "rb") as body:
                async with (
                    docker._call(timeout) as client,
                    client._query(
                        f"containers/{container}/archive",
                        method="PUT",
                        params={"path": directory},
                        data=body,
                        headers={"Content-Type": "application/x-tar"},
                        timeout=None,
                    ),
                ):
                    pass
        except DockerError as exc:
            raise _not_found(exc, container, directory) from exc


async def _run(docker: Docker, container: str, argv: list[str], timeout: float) -> str:
    code, output = await docker.exec_argv(container, argv, timeout)
    if code != 0:
        first = next((line.strip() for line in output.splitlines() if line.strip()), f"exit code {code}")
        raise ContainerFileError(f"{argv[0]} in container {container}: {shorten(first, 200, '')}")
    return output


async def list_files(
    docker: Docker, container: str, directory: str, pattern: str, *, timeout: float
) -> list[ContainerFile]:
    """The regular files directly in `directory` whose name matches `pattern` (a shell glob), with
    size and modification time."""
    found = await _run(
        docker, container, ["find", directory, "-maxdepth", "1", "-type", "f", "-name", pattern], timeout
    )
    paths = [line for line in found.splitlines() if line.strip()]
    files: list[ContainerFile] = []
    for start in range(0, len(paths), STAT_BATCH):
        batch = paths[start : start + STAT_BATCH]
        out = await _run(docker, container, ["stat", "-c", "%s %Y %n", *batch], timeout)
        for line in out.splitlines():
            size, _, rest = line.partition(" ")
            mtime, _, path = rest.partition(" ")
            if size.isdigit() and mtime.isdigit() and path:
                files.append(ContainerFile(path, int(size), float(mtime)))
    return files


async def rename(docker: Docker, container: str, old: str, new: str, *, timeout: float) -> None:
    await _run(docker, container, ["mv", old, new], timeout)


async def remove(docker: Docker, container: str, path: str, *, timeout: float) -> None:
    await _run(docker, container, ["rm", "-f", path], timeout)
