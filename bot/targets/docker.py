"""The Docker Engine API via aiodocker."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import aiodocker

from bot.targets import NotConfigured

DEFAULT_SOCKET = "/var/run/docker.sock"


class DockerSocketMissing(ConnectionError):
    pass


class Docker:
    def __init__(self, host: str | None, timeout: float):
        self.host = host
        self.timeout = timeout
        self._client: aiodocker.Docker | None = None

    def client(self) -> aiodocker.Docker:
        """The engine client; NotConfigured when nothing says where Docker is."""
        if self._client is None:
            host = self.host
            if host is None:
                if not os.path.exists(DEFAULT_SOCKET):
                    raise NotConfigured("DOCKER_HOST")
                host = "unix://" + DEFAULT_SOCKET
            if host.startswith("unix://") and not os.path.exists(urlsplit(host).path):
                raise DockerSocketMissing(f"Docker socket missing: {urlsplit(host).path}")
            self._client = aiodocker.Docker(url=host)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
