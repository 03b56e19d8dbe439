"""Where the ERPGo database's dumps are kept, and the same operations wherever that is.

ERPGO_BACKUP_DIR alone: a directory the bot reads and writes itself. With ERPGO_BACKUP_CONTAINER: that
path inside the container (typically the database container's backup volume), reached through the
Docker Engine — files listed with `find`/`stat` (argument lists), copied out with the archive API into
a private temporary directory to be verified or restored by the bot's own pg_restore, and new dumps
copied in under a hidden name, then renamed, so the directory never shows a partial dump.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Protocol

from bot.core.errors import NotConfigured
from bot.settings import Settings
from bot.targets import docker_files
from bot.targets.backups import (
    DEFAULT_PATTERN,
    BackupDirectoryError,
    BackupFile,
    DumpFailed,
    DumpToc,
    dump,
    list_backups,
    verify,
)
from bot.targets.docker import Docker

EXEC_SECONDS = 30.0


@dataclass(frozen=True)
class Location:
    directory: str
    container: str | None = None  # None: the directory is on the bot's own filesystem
    pattern: str = DEFAULT_PATTERN

    @property
    def key(self) -> str:
        """What a proposal records, to refuse acting on a location that changed meanwhile."""
        return f"container:{self.container}:{self.directory}" if self.container else f"dir:{self.directory}"

    def describe(self) -> str:
        if self.container:
            return f"{self.directory} in container {self.container}"
        return f"{self.directory} (read by the bot itself)"


def location_of(settings: Settings) -> Location:
    if not settings.erpgo_backup_dir:
        raise NotConfigured("ERPGO_BACKUP_DIR")
    return Location(settings.erpgo_backup_dir, settings.erpgo_backup_container or None)


class Backups(Protocol):
    location: Location

    async def list(self) -> list[BackupFile]: ...

    def local_copy(self, backup: BackupFile, *, timeout: float) -> AbstractAsyncContextManager[str]: ...

    async def verify(self, backup: BackupFile, *, timeout: float, read_data: bool = True) -> DumpToc: ...

    async def dump(self, dsn: str, prefix: str, *, timeout: float) -> tuple[BackupFile, float]: ...


def backups_at(location: Location, docker: Docker) -> Backups:
    return ContainerBackups(location, docker) if location.container else LocalBackups(location)


class LocalBackups:
    def __init__(self, location: Location):
        self.location = location

    async def list(self) -> list[BackupFile]:
        return list_backups(self.location.directory, self.location.pattern)

    @asynccontextmanager
    async def local_copy(self, backup: BackupFile, *, timeout: float) -> AsyncIterator[str]:
        yield backup.path

    async def verify(self, backup: BackupFile, *, timeout: float, read_data: bool = True) -> DumpToc:
        return await verify(backup.path, timeout=timeout, read_data=read_data)

    async def dump(self, dsn: str, prefix: str, *, timeout: float) -> tuple[BackupFile, float]:
        return await dump(dsn, self.location.directory, prefix=prefix, timeout=timeout)


class ContainerBackups:
    def __init__(self, location: Location, docker: Docker):
        assert location.container is not None
        self.location = location
        self.container: str = location.container
        self.docker = docker

    async def list(self) -> list[BackupFile]:
        try:
            files = await docker_files.list_files(
                self.docker, self.container, self.location.directory, self.location.pattern, timeout=EXEC_SECONDS
            )
        except docker_files.ContainerFileError as exc:
            raise BackupDirectoryError(f"backup directory {self.location.describe()} cannot be read: {exc}") from None
        found = [
            BackupFile(f.path, PurePosixPath(f.path).name, f.size, datetime.fromtimestamp(f.mtime, UTC)) for f in files
        ]
        return sorted(found, key=lambda b: (b.mtime, b.name), reverse=True)

    @asynccontextmanager
    async def local_copy(self, backup: BackupFile, *, timeout: float) -> AsyncIterator[str]:
        """The dump copied out of the container into a private temporary directory, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="erpgo-backup-") as scratch:
            os.chmod(scratch, 0o700)
            yield await docker_files.copy_out(self.docker, self.container, backup.path, scratch, timeout=timeout)

    async def verify(self, backup: BackupFile, *, timeout: float, read_data: bool = True) -> DumpToc:
        async with self.local_copy(backup, timeout=timeout) as path:
            toc = await verify(path, timeout=timeout, read_data=read_data)
        return replace(toc, path=backup.path)

    async def dump(self, dsn: str, prefix: str, *, timeout: float) -> tuple[BackupFile, float]:
        """pg_dump here, verified, then copied in under a hidden name and renamed into place."""
        with tempfile.TemporaryDirectory(prefix="erpgo-backup-") as scratch:
            os.chmod(scratch, 0o700)
            local, seconds = await dump(dsn, scratch, prefix=prefix, timeout=timeout)
            if any(existing.name == local.name for existing in await self.list()):
                raise DumpFailed(f"{local.name} already exists in {self.location.describe()}; not overwriting it")
            directory = self.location.directory.rstrip("/") or "/"
            hidden = f".{local.name}.partial"
            await docker_files.copy_in(self.docker, self.container, local.path, directory, hidden, timeout=timeout)
            final = str(PurePosixPath(directory) / local.name)
            try:
                await docker_files.rename(
                    self.docker, self.container, str(PurePosixPath(directory) / hidden), final, timeout=EXEC_SECONDS
                )
            except Exception:
                await docker_files.remove(
                    self.docker, self.container, str(PurePosixPath(directory) / hidden), timeout=EXEC_SECONDS
                )
                raise
        placed = next((b for b in await self.list() if b.name == local.name), None)
        if placed is None or placed.size != local.size:
            raise DumpFailed(f"{local.name} did not arrive whole in {self.location.describe()}")
        return placed, seconds
