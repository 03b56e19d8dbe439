"""Throwaway local services on loopback: PostgreSQL, Redis, a Docker Engine and Alertmanager.

Used by the demo launcher (`python -m demo`), the pytest fixtures and the bench scripts. Every
service lives under a directory of its own, listens on 127.0.0.1 on a free port and is removed by
`cleanup()`; nothing here touches the machine's system instances (5432, 6379, /var/run/docker.sock).

The API is synchronous on purpose: it is called from fixtures, scripts and a launcher, never from
the bot's event loop. Each class is a context manager (`with RedisServer(d) as r: ...`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Alertmanager",
    "DockerEngine",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "ServiceUnavailable",
    "free_port",
    "http_status",
    "unmount_under",
    "wait_for",
]

LOOPBACK = "127.0.0.1"
# sun_path holds 108 bytes including the NUL; keep room for the socket file names we append.
MAX_SOCKET_DIR = 80


class ServiceUnavailable(RuntimeError):
    """Cannot run on this machine (binary missing, not root); the message says what to install."""


class ServiceError(RuntimeError):
    """The service was available but failed to start, stop or answer. Includes its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- helpers


def _is_root() -> bool:
    return os.geteuid() == 0


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ServiceUnavailable(f"{binary} not found: install the Debian package {package} (scripts/setup does it)")
    return path


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


def _run(
    cmd: list[str],
    *,
    timeout: float = 60,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    try:
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise ServiceError(f"exit {done.returncode}: {' '.join(cmd)}\n{detail}")
    return done.stdout


def wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log: Path | None = None,
    proc: subprocess.Popen | None = None,
) -> None:
    """Poll `ready` until it is true; fail early if `proc` exits, with the log tail either way."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            reason = f"{what}: process exited with code {proc.returncode}"
            break
        if time.monotonic() > deadline:
            reason = f"{what}: not ready after {timeout}s"
            break
        time.sleep(0.05)
    raise ServiceError(reason + (f"\n--- {log} ---\n{_tail(log)}" if log else ""))


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
        return True
    return False


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _terminate(proc: subprocess.Popen | None, *, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _short_tmp() -> str:
    """The temporary directory ($TMPDIR, so a test session can check it is left empty) when its path
    leaves room for the directories and sockets made in it, else /tmp."""
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= MAX_SOCKET_DIR // 2 else "/tmp"


def _socket_dir(base_dir: Path, prefix: str) -> Path:
    """base_dir when its path is short enough for Unix sockets, else a fresh short temporary dir."""
    if len(str(base_dir)) <= MAX_SOCKET_DIR:
        return base_dir
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_short_tmp()))


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class _Service:
    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path:
    candidates: list[Path] = []
    with contextlib.suppress(OSError, ServiceError):
        if shutil.which("pg_config"):
            candidates.append(Path(_run(["pg_config", "--bindir"], timeout=10).strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        (Path(p) for p in versions), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True
    )
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian packages "
        "postgresql postgresql-contrib (scripts/setup does it)"
    )


def _quote_conf(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresServer(_Service):
    """A throwaway PostgreSQL cluster on 127.0.0.1:port, its Unix socket in its own directory.

    initdb refuses to run as root, so as root the server programs run as the `postgres` OS user
    and the cluster directory is handed to it. psql runs as the caller (it only needs the socket).
    The cluster lives in base_dir unless that path is too long for a Unix socket or out of the
    postgres user's reach (pytest's 0700 tmp dirs): then in a fresh erpgo-pg-* temporary directory.
    When `password` is given, TCP logins need it (scram-sha-256); the Unix socket stays trusted
    so that `psql()` works without one.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        pg_stat_statements: bool = True,
        max_connections: int = 100,
        settings: dict[str, str] | None = None,
        password: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.pg_stat_statements = pg_stat_statements
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.password = password
        self._bindir: Path | None = None
        self._dir: Path | None = None  # holds data/, the socket and postgres.log

    # -- paths
    @property
    def dir(self) -> Path:
        if self._dir is None:
            self._dir = self._choose_dir()
        return self._dir

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = _postgres_bindir()
        return self._bindir

    # -- lifecycle
    def start(self) -> None:
        _ = self.bindir  # fail fast with ServiceUnavailable
        if _is_root():
            self._check_postgres_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self._running():
            return
        self._write_settings()
        try:
            self._server_cmd(
                ["pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "30", "start"], timeout=45
            )
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n--- {self.log_path} ---\n{_tail(self.log_path)}") from None

    def stop(self) -> None:
        if self._dir is None or not (self.data_dir / "PG_VERSION").exists() or not self._running():
            return
        self._server_cmd(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"], timeout=45)

    def cleanup(self) -> None:
        try:
            with contextlib.suppress(ServiceUnavailable):
                self.stop()
        finally:
            if self._dir is not None:
                _remove(self._dir)
            _remove(self.base_dir)

    # -- use
    def dsn(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        if password is None and user == "postgres":
            password = self.password
        auth = urllib.parse.quote(user, safe="")
        if password:
            auth += ":" + urllib.parse.quote(password, safe="")
        return f"postgresql://{auth}@{LOOPBACK}:{self.port}/{urllib.parse.quote(database)}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL (several statements allowed) and return psql's unaligned, tuples-only output."""
        return _run(self._psql_cmd(database), input=sql, timeout=120)

    def psql_file(self, path: Path, database: str = "postgres") -> str:
        """Run a SQL file with ON_ERROR_STOP, so the first error fails the whole load."""
        return _run(self._psql_cmd(database) + ["-f", str(path)], timeout=300)

    def create_database(self, name: str) -> None:
        """Create `name` unless it already exists (a reused cluster keeps its databases)."""
        existing = self.psql("SELECT datname FROM pg_database").split()
        if name not in existing:
            self.psql(f"CREATE DATABASE {_quote_ident(name)}")

    # -- internals
    def _choose_dir(self) -> Path:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        run_dir = _socket_dir(self.base_dir, "erpgo-pg-")
        if _is_root():
            shutil.chown(run_dir, "postgres", "postgres")
            if not self._postgres_can_write(run_dir):
                # e.g. pytest's tmp dirs are 0700 root: the postgres user cannot reach them.
                run_dir = Path(tempfile.mkdtemp(prefix="erpgo-pg-", dir=_short_tmp()))
                shutil.chown(run_dir, "postgres", "postgres")
        return run_dir

    @staticmethod
    def _postgres_can_write(path: Path) -> bool:
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-w", str(path)], capture_output=True, timeout=10
        )
        return probe.returncode == 0

    @staticmethod
    def _check_postgres_user() -> None:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable(
                "running as root needs the `postgres` OS user for initdb: install the Debian "
                "package postgresql (scripts/setup does it)"
            ) from None
        if shutil.which("runuser") is None:
            raise ServiceUnavailable("runuser not found: install the Debian package util-linux")

    def _server_cmd(self, argv: list[str], *, timeout: float = 60) -> str:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return _run(cmd, timeout=timeout, cwd=self.dir)

    def _initdb(self) -> None:
        cmd = ["initdb", "-D", str(self.data_dir), "-U", "postgres", "--no-sync", "--encoding=UTF8", "--locale=C"]
        pwfile = self.dir / "pwfile"
        if self.password:
            pwfile.write_text(self.password + "\n")
            if _is_root():
                shutil.chown(pwfile, "postgres", "postgres")
            cmd += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            cmd += ["-A", "trust"]
        try:
            self._server_cmd(cmd, timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'erpgo.conf'\n")

    def _write_settings(self) -> None:
        # A config file instead of `pg_ctl -o "..."`: pg_ctl hands -o to a shell.
        settings = {
            "port": str(self.port),
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": str(self.dir),
            "fsync": "off",
            "max_connections": str(self.max_connections),
        }
        if self.pg_stat_statements:
            settings["shared_preload_libraries"] = "pg_stat_statements"
        settings.update(self.settings)
        path = self.data_dir / "erpgo.conf"
        path.write_text("".join(f"{k} = {_quote_conf(v)}\n" for k, v in settings.items()))
        if _is_root():
            shutil.chown(path, "postgres", "postgres")

    def _running(self) -> bool:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"]
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=30, cwd=self.dir).returncode == 0

    def _psql_cmd(self, database: str) -> list[str]:
        return [
            str(self.bindir / "psql"),
            "--no-psqlrc",
            "-h",
            str(self.dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-A",
            "-t",
        ]


# --------------------------------------------------------------------------- Redis


class RedisServer(_Service):
    """A throwaway redis-server on 127.0.0.1:port with persistence off.

    It runs in the foreground as our child process rather than with --daemonize: we then reap it
    ourselves (a container's PID 1 may not) and notice at once when it exits during start-up.
    """

    def __init__(
        self, base_dir: Path, port: int | None = None, *, password: str | None = None, maxmemory: str | None = None
    ) -> None:
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.password = password
        self.maxmemory = maxmemory
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "redis.log"

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        binary = _require("redis-server", "redis-server")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.base_dir),
            "--pidfile",
            str(self.base_dir / "redis.pid"),
            "--logfile",
            str(self.log_path),
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.maxmemory:
            cmd += ["--maxmemory", self.maxmemory]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(self.ping, what="redis-server", timeout=15, log=self.log_path, proc=self._proc)

    def ping(self) -> bool:
        """True when the server answers PING (authenticating first when it has a password)."""
        request = b"PING\r\n"
        if self.password:
            request = _resp("AUTH", self.password) + request
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(request)
                reply = b""
                while b"PONG" not in reply and not reply.startswith(b"-"):
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is None:
            return
        _terminate(self._proc)
        self._proc = None
        wait_for(lambda: not _port_open(self.port), what="redis port close", timeout=10)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            _remove(self.base_dir)


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# --------------------------------------------------------------------------- Docker Engine

BUSYBOX_IMAGE = "erpgo/busybox:test"
BUSYBOX_APPLETS = [
    "sh",
    "echo",
    "sleep",
    "cat",
    "ls",
    "date",
    "printf",
    "seq",
    "true",
    "false",
    "kill",
    "ps",
    "top",
    "yes",
    "wc",
    "head",
    "tail",
    "grep",
    "sed",
    "awk",
    "env",
    "id",
    "hostname",
    "uname",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "touch",
    "test",
    "[",
    "expr",
    "tr",
    "cut",
    "sort",
    "uptime",
    "free",
    "df",
    "du",
    "nc",
    "wget",
    "pidof",
    "killall",
    "timeout",
    "tee",
    "dd",
    "stat",
    "find",
]


def _busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists() and _is_static_elf(path):
            return path
    raise ServiceUnavailable(
        "a static busybox binary was not found: install the Debian package busybox-static (scripts/setup does it)"
    )


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP (dynamic loader) header."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:6] != b"\x7fELF\x02\x01":
            return False
        phoff = int.from_bytes(header[0x20:0x28], "little")
        phentsize = int.from_bytes(header[0x36:0x38], "little")
        phnum = int.from_bytes(header[0x38:0x3A], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(int.from_bytes(table[i : i + 4], "little") != pt_interp for i in range(0, len(table), phentsize))


class DockerEngine(_Service):
    """A private dockerd (with its own containerd) on a Unix socket: no network, no iptables.

    Images cannot be pulled, so `ensure_image()` builds a tiny busybox image from local files.
    Needs root.
    """

    def __init__(self, base_dir: Path, namespace: str = "erpgo-test") -> None:
        self.base_dir = Path(base_dir)
        self.namespace = namespace
        self._dir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._docker_bin: str | None = None
        self._image: str | None = None

    @property
    def dir(self) -> Path:
        if self._dir is None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self._dir = _socket_dir(self.base_dir, "erpgo-docker-")
        return self._dir

    @property
    def host(self) -> str:
        return f"unix://{self.dir / 'docker.sock'}"

    @property
    def log_path(self) -> Path:
        return self.dir / "dockerd.log"

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if not _is_root():
            raise ServiceUnavailable("dockerd needs root: run as root to use the Docker checks")
        dockerd = _require("dockerd", "docker.io")
        self._docker_bin = _require("docker", "docker.io")
        _require("containerd", "containerd (a dependency of docker.io)")
        d = self.dir
        cmd = [
            dockerd,
            "--data-root",
            str(d / "root"),
            "--exec-root",
            str(d / "exec"),
            "-H",
            self.host,
            "--pidfile",
            str(d / "dockerd.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--containerd-namespace",
            self.namespace,
            "--default-ulimit",
            "nofile=1024:1024",
        ]
        # its containerd writes a goroutine dump (containerd.<pid>.stacks.log) to TMPDIR when stopped hard:
        # into the engine's own directory, removed with it
        env = os.environ | {"TMPDIR": str(d)}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env
            )
        wait_for(self._answers, what="dockerd", timeout=60, log=self.log_path, proc=self._proc)

    def _answers(self) -> bool:
        if not (self.dir / "docker.sock").exists():
            return False
        try:
            self.docker("version", "--format", "{{.Server.Version}}", timeout=5)
            return True
        except ServiceError:
            return False

    def docker(self, *args: str, timeout: float = 120) -> str:
        """Run the docker CLI against this engine; returns stdout, raises with stderr."""
        docker = self._docker_bin or _require("docker", "docker.io")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_CONFIG"] = str(self.dir / "client")  # never read the user's ~/.docker
        return _run([docker, "-H", self.host, *args], timeout=timeout, env=env)

    def ensure_image(self) -> str:
        """Build the busybox image unless this engine already has it; returns its name."""
        if self._image is None:
            try:
                self.docker("image", "inspect", "--format", "{{.Id}}", BUSYBOX_IMAGE)
            except ServiceError:
                self._import_busybox_image()
            self._image = BUSYBOX_IMAGE
        return self._image

    def _import_busybox_image(self) -> None:
        build = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.dir))
        try:
            tar_path = build / "rootfs.tar"
            _write_busybox_rootfs(tar_path)
            self.docker("import", "--change", 'CMD ["/bin/sh"]', str(tar_path), BUSYBOX_IMAGE)
        finally:
            _remove(build)

    def run(
        self,
        name: str,
        script: str,
        *,
        restart: str | None = None,
        health_cmd: str | None = None,
        network: str = "none",
        run_args: Sequence[str] = (),
    ) -> str:
        """Start `sh -c script` in a fresh container called `name`; returns the container id.
        `run_args` are further `docker run` options (limits, environment, labels, ports)."""
        self.remove(name)
        args = ["run", "-d", "--name", name, "--network", network, *run_args]
        if restart:
            args += ["--restart", restart]
        if health_cmd:
            args += [
                "--health-cmd",
                health_cmd,
                "--health-interval",
                "1s",
                "--health-timeout",
                "1s",
                "--health-retries",
                "1",
            ]
        return self.docker(*args, self.ensure_image(), "sh", "-c", script).strip()

    def remove(self, *names: str) -> None:
        """Force-remove containers by name or id; missing ones are fine."""
        if names:
            with contextlib.suppress(ServiceError):
                self.docker("rm", "-f", *names)

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ServiceError):
                self.remove(*self.docker("ps", "-aq").split())
        _terminate(self._proc, timeout=30)
        self._proc = None
        self._image = None
        # dockerd stops its containerd; a crash can leave it (or shims) behind.
        self._kill_leftovers()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            if self._dir is not None:
                unmount_under(self._dir)
                _remove(self._dir)
            _remove(self.base_dir)

    def _kill_leftovers(self) -> None:
        marker = f"{self.dir / 'exec'}/".encode()
        for pid in _pids_with_cmdline(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _write_busybox_rootfs(tar_path: Path) -> None:
    busybox = _busybox()
    with tarfile.open(tar_path, "w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/log"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, text in {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, fileobj=io.BytesIO(data))


def _pids_with_cmdline(marker: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def unmount_under(path: Path) -> None:
    """Lazily unmount anything a crashed dockerd left mounted below `path` (deepest first)."""
    prefix = str(path.resolve()) + "/"
    with contextlib.suppress(OSError):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10)


# --------------------------------------------------------------------------- Alertmanager


def _rfc3339(value: dt.datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class Alertmanager(_Service):
    """A single-node Prometheus Alertmanager routing every alert to one webhook (the bot)."""

    def __init__(
        self,
        base_dir: Path,
        webhook_url: str,
        bearer_token: str | None,
        *,
        port: int | None = None,
        group_by: list[str] | None = None,
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1m",
        resolve_timeout: str = "5m",
    ) -> None:
        self.base_dir = Path(base_dir)
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.port = port or free_port()
        self.group_by = list(group_by) if group_by is not None else ["alertname"]
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.resolve_timeout = resolve_timeout
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "alertmanager.yml"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "alertmanager.log"

    def config(self) -> dict[str, Any]:
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True}
        if self.bearer_token:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.bearer_token}}
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": "erpgo-bot",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": "erpgo-bot", "webhook_configs": [webhook]}],
        }

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise ServiceUnavailable(
                "prometheus-alertmanager not found: install the Debian "
                "package prometheus-alertmanager (scripts/setup does it)"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.config_path.chmod(0o600)  # it holds the bearer token
        cmd = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.base_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--cluster.listen-address=",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        wait_for(
            lambda: http_status(f"{self.url}/-/ready") == 200,
            what="alertmanager",
            timeout=30,
            log=self.log_path,
            proc=self._proc,
        )

    def fire(
        self,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        starts_at: dt.datetime | str | None = None,
        ends_at: dt.datetime | str | None = None,
    ) -> None:
        """Post one alert; an `ends_at` in the past resolves it."""
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations or {}}
        if starts_at is not None:
            alert["startsAt"] = _rfc3339(starts_at)
        if ends_at is not None:
            alert["endsAt"] = _rfc3339(ends_at)
        self._request("POST", "/api/v2/alerts", [alert])

    def resolve(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        self.fire(labels, annotations, ends_at=dt.datetime.now(dt.UTC))

    def alerts(self) -> list[dict]:
        return self._request("GET", "/api/v2/alerts")

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise ServiceError(
                f"alertmanager {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')}"
            ) from None
        return json.loads(text) if text.strip() else None

    def stop(self) -> None:
        _terminate(self._proc)
        self._proc = None

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            _remove(self.base_dir)
