"""`python -m demo`: the bot's terminal shell against a local ERPGo that is sick on purpose.

Starts throwaway services under `.run/demo/` (PostgreSQL with the demo `erp` database, Redis, the
ERPGo API simulator and, as root, a private Docker Engine with the containers of ERPGo's compose
project `erpgo`: `erpgo-api`, `erpgo-postgres`, `erpgo-redis`, `erpgo-worker` and the one-shot
`erpgo-migrator`, labelled as Compose labels them), points the bot at them through its environment variables and runs
`python -m bot.cli shell`. Targets you configured yourself win: a variable already set in the
environment is left alone, and when ERPGO_API_URL, ERPGO_DATABASE_URL and ERPGO_REDIS_URL are all
set nothing is started. Everything started is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from demo import faults
from demo.prometheus_server import PrometheusServer
from demo.services import (
    Alertmanager,
    DockerEngine,
    PostgresServer,
    RedisServer,
    ServiceError,
    ServiceUnavailable,
    _pids_with_cmdline,
    free_port,
    http_status,
    unmount_under,
    wait_for,
)

DEMO_DIR = Path(__file__).resolve().parent
RUN_DIR = Path(os.environ.get("ERPGO_DEMO_DIR") or DEMO_DIR.parent / ".run" / "demo").absolute()
TARGET_VARS = ("ERPGO_API_URL", "ERPGO_DATABASE_URL", "ERPGO_REDIS_URL")

# The real API's log, as zerolog's console writer prints it: startup, bursts of failed logins (the API
# logs the e-mail, never the address), a sprayer hitting the login rate limit, and now and then a
# handler panic caught by the recovery middleware, or a worker goroutine's panic with its stack.
ERPGO_API_SCRIPT = r"""
trap 'exit 0' TERM
now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }
failed() { echo "$(now) ERR Failed to login user error=\"UNAUTHORIZED: invalid credentials\" email=$1"; }
echo "$(now) INF Starting ERPGo API server environment=production port=8080 version=dev"
echo "$(now) INF Database connection pool ready max_conns=20"
i=0
while true; do
  if [ $((i % 5)) -eq 0 ]; then
    for n in 1 2 3; do failed admin@example.com; done
    failed j.martin@example.com
  fi
  if [ $((i % 7)) -eq 0 ]; then
    for who in root support admin test; do
      echo "$(now) WRN Rate limit exceeded for login attempt email=$who@example.com ip=203.0.113.66"
    done
  fi
  if [ $((i % 12)) -eq 0 ]; then
    nil="runtime error: invalid memory address or nil pointer dereference"
    echo "$(now) ERR Request panic panic=\"$nil\" path=/api/v1/orders/1042"
    echo "panic: runtime error: index out of range [3] with length 3" >&2
    echo "" >&2
    echo "goroutine $((i % 300 + 40)) [running]:" >&2
    echo "erpgo/internal/workers.(*InventorySync).Run(0xc0001a2b40)" >&2
    echo "	/app/internal/workers/inventory_sync.go:88 +0x1a4" >&2
  fi
  i=$((i + 1))
  sleep 1 & wait $!
done
"""
MIGRATOR_SCRIPT = (
    'echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) INF Applying migrations"; '
    'echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) INF Migrations complete"'
)
CRASHING_WORKER_SCRIPT = (
    'echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) INF Starting ERPGo worker"; '
    'echo "$(date -u +%Y-%m-%dT%H:%M:%S.000Z) FTL cannot connect to NATS error=\\"dial tcp: lookup erpgo-nats: '
    'no such host\\" url=nats://erpgo-nats:4222" >&2; exit 1'
)
WATCHED_CONTAINERS = ("erpgo-api", "erpgo-postgres", "erpgo-redis", "erpgo-worker")
IDLE_SCRIPT = "trap 'exit 0' TERM; echo '{ready}'; while true; do sleep 3600 & wait $!; done"


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: unwind so that every service is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bot_port = free_port()  # known before the bot starts: Alertmanager's webhook points at it
    return run([sys.executable, "-m", "bot.cli", *bot_command(argv, bot_port)], bot_port=bot_port)


def bot_command(argv: list[str], bot_port: int) -> list[str]:
    """The bot's terminal shell, or with --web the console: the same local Slack as a web page."""
    if "--web" in argv:
        return ["console", "--bot-port", str(bot_port), *(arg for arg in argv if arg != "--web")]
    return ["shell", "--port", str(bot_port), *argv]


def run(command: list[str], bot_port: int | None = None) -> int:
    """Start what the environment does not configure, run `command` with it, stop everything."""
    saved = {signum: signal.getsignal(signum) for signum in (*STOP_SIGNALS, signal.SIGINT)}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        with contextlib.ExitStack() as services:
            try:
                env = dict(os.environ)
                if all(os.environ.get(name) for name in TARGET_VARS):
                    say("using the configured ERPGo targets; starting nothing")
                else:
                    env.update(start_services(services, os.environ, bot_port))
                return run_child(command, env)
            finally:
                for signum in saved:  # nothing may interrupt the cleanup that follows
                    signal.signal(signum, signal.SIG_IGN)
    except Stop as stop:
        return 128 + stop.signum
    except KeyboardInterrupt:
        return 130
    except ServiceUnavailable as exc:
        say(f"cannot start the demo: {exc}")
        return 1
    except ServiceError as exc:
        say(f"a demo service failed: {exc}")
        return 1
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def start_services(
    services: contextlib.ExitStack, environ: Mapping[str, str], bot_port: int | None = None
) -> dict[str, str]:
    """Start the services behind every unset variable, sick on purpose; returns the variables to set."""
    stop_leftovers()
    services.callback(say, "demo services stopped")
    started = time.monotonic()
    found: dict[str, str] = {}
    docker = None
    if not environ.get("DOCKER_HOST"):
        # The engine, its image and containers take a second or two: start them alongside.
        engine = DockerEngine(RUN_DIR / "docker", namespace="erpgo-demo")
        services.callback(engine.cleanup)
        pool = ThreadPoolExecutor(max_workers=1)
        services.callback(pool.shutdown)  # runs before engine.cleanup
        docker = pool.submit(start_docker, engine)
    if not environ.get("ERPGO_DATABASE_URL") or not environ.get("BOT_DATABASE_URL"):
        pg = services.enter_context(start_postgres())
        found |= {"ERPGO_DATABASE_URL": pg.dsn("erp"), "BOT_DATABASE_URL": pg.dsn("erpgo_bot")}
        if not environ.get("ERPGO_DATABASE_URL"):
            found |= start_database_faults(services, pg, environ)
    if not environ.get("ERPGO_REDIS_URL"):
        redis = services.enter_context(RedisServer(RUN_DIR / "redis"))
        say(f"Redis on {redis.url}")
        found["ERPGO_REDIS_URL"] = redis.url
    if not environ.get("ERPGO_API_URL"):
        api_url = start_simulator(services)
        if api_url:
            found["ERPGO_API_URL"] = api_url
    if docker is not None and (docker_host := docker.result()):
        found["DOCKER_HOST"] = docker_host
        found["ERPGO_CONTAINERS"] = ",".join(WATCHED_CONTAINERS)
    found |= start_host_faults(services, environ)
    found |= start_alerting(services, environ, bot_port, found.get("ERPGO_API_URL"))
    # the demo's approvals need someone allowed to approve: U0YOU and U0BOB (see demo/policy.yml)
    found["CHATOPS_POLICY_FILE"] = str(DEMO_DIR / "policy.yml")
    say(f"ready in {time.monotonic() - started:.1f}s")
    return {name: value for name, value in found.items() if not environ.get(name)}


def start_postgres() -> PostgresServer:
    pg = PostgresServer(RUN_DIR / "postgres", pg_stat_statements=True)
    with _cleanup_on_error(pg):
        pg.start()
        pg.create_database("erp")
        pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database="erp")
        for name in ("schema.sql", "seed.sql"):
            if (DEMO_DIR / name).exists():
                pg.psql_file(DEMO_DIR / name, database="erp")
        pg.create_database("erpgo_bot")
    say(f"PostgreSQL on 127.0.0.1:{pg.port} (databases erp, erpgo_bot)")
    return pg


def start_database_faults(
    services: contextlib.ExitStack, pg: PostgresServer, environ: Mapping[str, str]
) -> dict[str, str]:
    """A lock held idle in transaction with an UPDATE waiting on it, a slow statement, an old backup."""
    sessions = [*faults.hold_lock(pg), faults.slow_statements(pg)]
    services.callback(faults.stop_sessions, sessions)
    say(f"a worker holds order {faults.LOCKED_ORDER} idle in transaction, the API waits on it; a slow report runs")
    if environ.get("ERPGO_BACKUP_DIR"):
        return {}
    newest = faults.old_backup(pg, RUN_DIR / "backups")
    say(f"backups in {newest.parent}: the newest, {newest.name}, is {faults.BACKUP_AGE.days} days old")
    return {"ERPGO_BACKUP_DIR": str(newest.parent)}


def start_host_faults(services: contextlib.ExitStack, environ: Mapping[str, str]) -> dict[str, str]:
    """A filesystem filling up, a certificate close to expiry, a firewall in a namespace to ban on."""
    found: dict[str, str] = {}
    if not environ.get("ERPGO_DISK_PATHS"):
        disk = RUN_DIR / "disk"
        why_not = faults.filling_disk(disk)
        if why_not is None:
            services.callback(faults.unmount, disk)
            found["ERPGO_DISK_PATHS"] = str(disk)
        say(f"no filling disk ({why_not})" if why_not else f"{disk} is 94 % full")
    if not environ.get("ERPGO_TLS_ENDPOINTS"):
        ca, cert, key = faults.expiring_certificate(RUN_DIR / "tls")
        proc, endpoint = faults.serve_tls(cert, key, RUN_DIR / "tls" / "s_server.log")
        services.callback(_stop_process, proc)
        found |= {"ERPGO_TLS_ENDPOINTS": endpoint, "ERPGO_TLS_CA_FILE": str(ca)}
        say(f"TLS on {endpoint}: its certificate expires in {faults.CERT_DAYS_LEFT} days")
    if not environ.get("ERPGO_FIREWALL"):
        edge = faults.edge_namespace_name(RUN_DIR)
        why_not = faults.edge_namespace(edge)
        if why_not is None:
            services.callback(faults.remove_edge_namespace, edge)
            found |= {"ERPGO_FIREWALL": "nftables", "ERPGO_FIREWALL_COMMAND": f"ip netns exec {edge} nft"}
        say(f"bans cannot be tried ({why_not})" if why_not else f"bans go to nftables in network namespace {edge}")
    return found


def start_alerting(
    services: contextlib.ExitStack, environ: Mapping[str, str], bot_port: int | None, api_url: str | None
) -> dict[str, str]:
    """A real Alertmanager whose webhook is the bot (`fire` / `resolve` in the shell), and Prometheus
    scraping the API simulator's /metrics and the bot's."""
    found: dict[str, str] = {}
    if bot_port is not None and not environ.get("ALERTMANAGER_URL"):
        token = environ.get("ALERT_WEBHOOK_TOKEN") or secrets.token_urlsafe(24)
        webhook = f"http://127.0.0.1:{bot_port}/alerts/alertmanager"
        manager = services.enter_context(Alertmanager(RUN_DIR / "alertmanager", webhook, token))
        found |= {"ALERTMANAGER_URL": manager.url, "ALERT_WEBHOOK_TOKEN": token, "ERPGO_ALERT_CHANNEL": "C0OPS"}
        say(f"Alertmanager on {manager.url}, its webhook the bot's (try: fire HighErrorRate)")
    if not environ.get("PROMETHEUS_URL"):
        targets = {"erpgo-api": api_url} if api_url else {}
        if bot_port is not None:
            targets["erpgo-chatops"] = f"http://127.0.0.1:{bot_port}"
        prometheus = services.enter_context(PrometheusServer(RUN_DIR / "prometheus", jobs=targets))
        found["PROMETHEUS_URL"] = prometheus.url
        say(f"Prometheus on {prometheus.url}, scraping {', '.join(targets) or 'nothing'}")
    return found


def start_simulator(services: contextlib.ExitStack) -> str | None:
    if importlib.util.find_spec("demo.simulator") is None:
        say("no ERPGo simulator (demo/simulator.py): the API checks will report it not configured")
        return None
    port = free_port()
    log_path = RUN_DIR / "simulator.log"
    with open(log_path, "ab") as log:
        # A session of its own, so Ctrl-C in the shell reaches the bot, not the simulator.
        proc = subprocess.Popen(
            [sys.executable, "-m", "demo.simulator", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    pid_file = RUN_DIR / "simulator.pid"
    pid_file.write_text(f"{proc.pid}\n")
    services.callback(pid_file.unlink, missing_ok=True)
    services.callback(_stop_process, proc)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: http_status(f"{url}/health") is not None, what="ERPGo simulator", timeout=30, log=log_path, proc=proc
    )
    say(f"ERPGo API simulator on {url}")
    return url


COMPOSE_PROJECT = "erpgo"


def compose_labels(service: str, project: str = COMPOSE_PROJECT) -> list[str]:
    """The labels `docker compose up` puts on a service's container (the ones the bot reads)."""
    return ["--label", f"com.docker.compose.project={project}", "--label", f"com.docker.compose.service={service}"]


def run_compose_containers(
    engine: DockerEngine,
    project: str = COMPOSE_PROJECT,
    *,
    api_script: str = ERPGO_API_SCRIPT,
    api_env: Mapping[str, str] | None = None,
    api_health_cmd: str | None = "true",
) -> None:
    """ERPGo's compose containers, named as its docker-compose.yml names them: the API, its database,
    its cache, the worker, and the migrator, which runs once (restart policy `no`) and exits 0.
    `api_env` is the API container's environment (e.g. its JWT_SECRET), passed in an env file."""
    env = env_file(engine.dir / "erpgo-api.env", api_env) if api_env else []
    engine.run(
        "erpgo-api",
        api_script,
        restart="unless-stopped",
        health_cmd=api_health_cmd,
        run_args=[*compose_labels("api", project), *env],
    )
    for service, ready in (
        ("postgres", "LOG:  database system is ready to accept connections"),
        ("redis", "* Ready to accept connections tcp"),
        ("worker", "INF Starting ERPGo worker"),
    ):
        engine.run(
            f"erpgo-{service}",
            IDLE_SCRIPT.format(ready=ready),
            restart="unless-stopped",
            run_args=compose_labels(service, project),
        )
    engine.run("erpgo-migrator", MIGRATOR_SCRIPT, run_args=compose_labels("migrator", project))
    engine.docker("wait", "erpgo-migrator", timeout=30)


def env_file(path: Path, values: Mapping[str, str]) -> list[str]:
    """`docker run` arguments passing `values` in an env file only this user can read, so that no
    value is in an argument list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # before the secret is in it
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return ["--env-file", str(path)]


def demo_api_env() -> dict[str, str]:
    """The settings the real ERPGo reads (what `/erpgo app` looks for)."""
    return {
        "DATABASE_URL": "postgres://erpgo@erpgo-postgres:5432/erp",
        "REDIS_URL": "redis://erpgo-redis:6379/0",
        "JWT_SECRET": secrets.token_hex(32),
        "SERVER_PORT": "8080",
        "GOMEMLIMIT": "400MiB",
    }


def start_docker(engine: DockerEngine) -> str | None:
    """Start the engine and the demo containers; None (and one line why) when Docker can't run."""
    try:
        engine.start()
        run_compose_containers(engine, api_env=demo_api_env())
        # the worker cannot reach its queue and keeps exiting: `health`, `app erpgo-worker`
        engine.run("erpgo-worker", CRASHING_WORKER_SCRIPT, restart="always", run_args=compose_labels("worker"))
    except (ServiceUnavailable, ServiceError) as exc:
        reason = str(exc).splitlines()[0]
        say(f"no Docker Engine ({reason}): the Docker checks will report it not configured")
        return None
    say(
        f"Docker Engine on {engine.host} (compose project {COMPOSE_PROJECT}: erpgo-api, erpgo-postgres, erpgo-redis, "
        "erpgo-worker, erpgo-migrator)"
    )
    return engine.host


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run the bot in the foreground; Ctrl-C is its to handle, SIGTERM is passed on."""
    proc = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # reset to default in the child
    try:
        return proc.wait()
    except Stop:
        _stop_process(proc)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _cleanup_on_error(service):
    try:
        yield service
    except BaseException:
        service.cleanup()
        raise


# --- leftovers of a demo that was killed without a chance to clean up -------------------------

# pid file -> (what its command line contains, the signal for a quick, clean exit)
LEFTOVER_PIDFILES = {
    "postgres/data/postmaster.pid": (b"postgres", signal.SIGINT),  # SIGINT = fast shutdown
    "redis/redis.pid": (b"redis-server", signal.SIGTERM),
    "docker/dockerd.pid": (b"dockerd", signal.SIGTERM),
    "simulator.pid": (b"demo.simulator", signal.SIGTERM),
}


def stop_leftovers() -> None:
    """Stop processes a killed demo left running in RUN_DIR, then start from an empty RUN_DIR."""
    for relative, (program, signum) in LEFTOVER_PIDFILES.items():
        pid = _read_pid(RUN_DIR / relative)
        if pid and program in _cmdline(pid):
            say(f"stopping a leftover {program.decode()} (pid {pid}) from an earlier demo")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            wait_for(
                lambda pid=pid, program=program: program not in _cmdline(pid),
                what=f"leftover pid {pid} to exit",
                timeout=30,
            )
    # Alertmanager, Prometheus and the TLS endpoint have no pid file: their arguments name RUN_DIR
    for pid in _pids_with_cmdline(str(RUN_DIR).encode()):
        say(f"stopping a leftover process (pid {pid}) from an earlier demo")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if RUN_DIR.exists():
        unmount_under(RUN_DIR)  # what a dockerd killed mid-run left mounted, the filling disk
        shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


def _cmdline(pid: int) -> bytes:
    """The process's command line; empty when it is gone or a zombie."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


if __name__ == "__main__":
    sys.exit(main())
