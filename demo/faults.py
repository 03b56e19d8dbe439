"""The demo's ERPGo, sick in every way the guide covers beyond the rows demo/seed.sql plants.

Each fault is made only for a target the user did not configure, and each is undone on exit:
- a session idle in transaction holding a row lock, and an UPDATE waiting on it (`db locks`
  proposes terminating the blocker: approval #1);
- a slow report statement run again and again (`db slow`, `db long-queries 2`);
- a filesystem filling up (`disk`): a small tmpfs, 94 % full — as root;
- a certificate close to expiry (`tls`): issued by a demo CA, five days left;
- an old backup (`backups`): the newest dump is three days old;
- a firewall to ban on (`ban`, `bans`): nftables in a network namespace of the demo's own — as
  root, with `nft` and `ip`.
A fault that cannot be made here is one line saying why; the demo goes on without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from demo.services import LOOPBACK, PostgresServer, ServiceError, _port_open, free_port, wait_for

LOCKED_ORDER = "SO-1005"
SLOW_REPORT = "SELECT o.status, count(*) FROM orders o, pg_sleep(1.5) GROUP BY o.status"
DISK_SIZE_MB, DISK_FILL_MB = 8, 7.5  # 94 %: over the guide's 90 %
CERT_DAYS_LEFT = 5
BACKUP_AGE = dt.timedelta(days=3)

Say = Callable[[str], None]


# ------------------------------------------------------------------ the database


def psql_session(pg: PostgresServer, application: str, script: str, *, keep_open: bool) -> subprocess.Popen:
    """psql on the `erp` database as `application`, fed `script`; its stdin is left open (the session
    waits for more, e.g. idle in transaction) when `keep_open`."""
    dsn = pg.dsn("erp") + f"?application_name={application}"
    proc = subprocess.Popen(
        [str(pg.bindir / "psql"), "--no-psqlrc", "-q", "-d", dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # Ctrl-C in the shell is the bot's, not these sessions'
    )
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.flush()
    if not keep_open:
        proc.stdin.close()
    return proc


def hold_lock(pg: PostgresServer) -> list[subprocess.Popen]:
    """A worker that locked an order and went idle in its transaction, and the API's UPDATE of that
    order waiting behind it; returns once the UPDATE waits."""
    blocker = psql_session(
        pg,
        "erpgo-worker",
        f"BEGIN;\nSELECT id FROM orders WHERE order_number = '{LOCKED_ORDER}' FOR UPDATE;\n",
        keep_open=True,
    )
    wait_for(lambda: _sessions(pg, "erpgo-worker", "state = 'idle in transaction'"), what="the lock", timeout=15)
    waiter = psql_session(
        pg,
        "erpgo-api",
        f"UPDATE orders SET status = status WHERE order_number = '{LOCKED_ORDER}';\n",
        keep_open=False,
    )
    wait_for(lambda: _sessions(pg, "erpgo-api", "wait_event_type = 'Lock'"), what="the UPDATE to wait", timeout=15)
    return [blocker, waiter]


def _sessions(pg: PostgresServer, application: str, condition: str) -> bool:
    """Whether a session of `application` is in `condition` (a constant of this module, no input)."""
    sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' AND {condition}"
    return pg.psql(sql, database="erp").strip() != "0"


def slow_statements(pg: PostgresServer) -> subprocess.Popen:
    """The reporting job's statement, 1.5 s each time, again every half second until stopped."""
    return psql_session(pg, "erpgo-reports", f"{SLOW_REPORT} \\watch 0.5\n", keep_open=False)


def stop_sessions(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def old_backup(pg: PostgresServer, directory: Path) -> Path:
    """A real dump of `erp`, dated and named as three days old."""
    directory.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC) - BACKUP_AGE
    path = directory / f"erp_{when:%Y%m%d%H%M%S}.dump"
    done = subprocess.run(
        [str(pg.bindir / "pg_dump"), "-Fc", "-f", str(path), "-d", pg.dsn("erp")], capture_output=True, timeout=120
    )
    if done.returncode != 0:
        raise ServiceError(f"pg_dump of the demo database failed: {done.stderr.decode(errors='replace')[:300]}")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


# ------------------------------------------------------------------ the host


def filling_disk(path: Path) -> str | None:
    """A small filesystem at `path`, 94 % full; None when it could be made, else why not."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE_MB}m", "erpgo-demo-disk", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        return f"mount refused: {done.stderr.strip()[:200]}"
    with open(path / "erpgo-api.log", "wb") as log:
        log.write(b"\n" * int(DISK_FILL_MB * 1024 * 1024))
    return None


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def edge_namespace_name(run_dir: Path) -> str:
    """The network namespace of the demo running in `run_dir` (two demos never share one)."""
    return "erpgo-edge-" + hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]


def edge_namespace(name: str) -> str | None:
    """Make the network namespace bans go to; None when made, else why not."""
    missing = [tool for tool in ("nft", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        return "needs root" if os.geteuid() != 0 else f"needs {' and '.join(missing)} (scripts/setup installs them)"
    remove_edge_namespace(name)  # one a killed demo left
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    return None if done.returncode == 0 else f"ip netns add refused: {done.stderr.strip()[:200]}"


def remove_edge_namespace(name: str) -> None:
    if shutil.which("ip"):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


# ------------------------------------------------------------------ a certificate close to expiry


def expiring_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """(CA file, certificate, key): a demo CA and a certificate of it for 127.0.0.1 and localhost with
    CERT_DAYS_LEFT days left, so that `tls` has only its expiry to complain about."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ERPGo demo CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now - dt.timedelta(days=1), now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
    not_after = now + dt.timedelta(days=CERT_DAYS_LEFT, hours=1)  # still "5 days" a while from now
    leaf = (
        _builder(_name("erpgo.demo"), ca_name, key.public_key(), now - dt.timedelta(days=85), not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "erpgo.pem", directory / "erpgo.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    paths[2].touch(mode=0o600)
    paths[2].write_bytes(pem_key)
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject, issuer, public_key, not_before, not_after) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def serve_tls(cert: Path, key: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`openssl s_server` presenting `cert` on a free loopback port; (process, host:port)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServiceError("openssl not found: install the Debian package openssl (scripts/setup does it)")
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [openssl, "s_server", "-accept", f"{LOOPBACK}:{port}", "-cert", str(cert), "-key", str(key), "-www"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    wait_for(lambda: _port_open(port), what="the demo's TLS endpoint", timeout=15, log=log_path, proc=proc)
    return proc, f"{LOOPBACK}:{port}"
