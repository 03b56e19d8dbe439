"""Guide: "Network & Connectivity › SSL/TLS Issues" step 3, Renew Certificate — part of `tls`.

For each endpoint's certificate: what renewal takes for its kind of issuer (an ACME client renews it by
itself, a self-signed one nobody renews, a CA's needs a new request to that CA); which watched container
serves it (the one publishing the endpoint's port) and where that container mounts its certificates,
and whether the bot can see those files. When it can and the certificate on disk is newer than the one
served — the server read its files at start — a restart of that container is proposed.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.registry import Runbook
from bot.targets import NotConfigured, tls
from bot.targets.docker_models import container_info
from runbooks.containers.actions import restart_proposal
from runbooks.tls import endpoints, report_of
from runbooks.watched import watched_containers

runbook = Runbook("tls.renewal")

SECTION = "Network & Connectivity › SSL/TLS Issues › Renew Certificate"
ACME_ISSUERS = re.compile(r"Let's Encrypt|ZeroSSL|Buypass|Google Trust Services|ISRG", re.IGNORECASE)
CERT_PATHS = re.compile(r"cert|ssl|tls|letsencrypt|acme|\.pem$|\.crt$", re.IGNORECASE)
CERT_FILES = re.compile(r"\.(pem|crt|cer)$", re.IGNORECASE)
MAX_FILES = 50
MAX_FILE_BYTES = 1024 * 1024
ACME_RENEWS_DAYS = 30


@dataclass(frozen=True)
class Mount:
    source: str  # on the Docker host
    destination: str  # in the container
    read_only: bool

    @property
    def visible(self) -> bool:
        return os.path.exists(self.source)


def issuer_kind(leaf: tls.CertInfo) -> str:
    if leaf.self_signed:
        return "self-signed"
    return "issued over ACME" if ACME_ISSUERS.search(leaf.issuer) else "issued by a CA"


def renewal_lines(leaf: tls.CertInfo, days_left: int) -> list[str]:
    """What renewal takes for this kind of certificate."""
    if leaf.self_signed:
        return [
            "self-signed: nobody renews it — make a new one (`openssl req -x509 -newkey ec -pkeyopt "
            "ec_paramgen_curve:P-256 -nodes -days 365 -keyout key.pem -out cert.pem -subj /CN=<name>`), put both "
            "files where the container reads them, restart it; clients that trusted the old one must trust the new"
        ]
    if ACME_ISSUERS.search(leaf.issuer):
        lines = [
            f"issued over ACME ({leaf.issuer}): an ACME client (certbot, acme.sh, Traefik, Caddy) renews it by "
            f"itself from {ACME_RENEWS_DAYS} days before expiry"
        ]
        if days_left < ACME_RENEWS_DAYS:
            lines.append(
                f"{days_left} days left and not renewed: its client is not running or failing — "
                "`certbot renew --dry-run` and its timer's logs say which"
            )
        return lines
    return [
        f"issued by a CA ({leaf.issuer}): renewal is a new request to that CA (`openssl req -new -key key.pem "
        "-out request.csr`), then the chain it returns installed where the container reads it, and a restart"
    ]


def serving(raw: dict[str, Any], port: int) -> bool:
    return any(binding.host_port == str(port) for binding in container_info(raw).ports)


def certificate_mounts(raw: dict[str, Any]) -> list[Mount]:
    found = []
    for mount in raw.get("Mounts") or []:
        source, destination = str(mount.get("Source") or ""), str(mount.get("Destination") or "")
        if CERT_PATHS.search(destination) or CERT_PATHS.search(source):
            found.append(Mount(source, destination, not mount.get("RW", True)))
    return found


def certificates_in(mount: Mount) -> list[tls.CertInfo]:
    """The first certificate of each PEM file of the mount the bot can read (a bounded look, no recursion)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    path = Path(mount.source)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())[:MAX_FILES]
    found = []
    for file in files:
        if not CERT_FILES.search(file.name) or file.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            first = x509.load_pem_x509_certificates(file.read_bytes())[0]
        except (ValueError, IndexError, OSError):
            continue
        found.append(tls.CertInfo.from_der(first.public_bytes(Encoding.DER)))
    return found


def newer_on_disk(served: tls.CertInfo, on_disk: list[tls.CertInfo]) -> tls.CertInfo | None:
    """A certificate for the same names that expires later than the one served."""
    names = set(served.sans) or {served.subject}
    return next(
        (
            cert
            for cert in sorted(on_disk, key=lambda c: c.not_after, reverse=True)
            if cert.serial != served.serial
            and cert.not_after > served.not_after
            and (set(cert.sans) or {cert.subject}) & names
        ),
        None,
    )


async def server_of(ctx: CheckContext, port: int) -> dict[str, Any] | None:
    """The watched container publishing the endpoint's port, as inspected."""
    try:
        names = await watched_containers(ctx)
        inspected = await asyncio.gather(*(ctx.targets.docker.inspect_raw(name) for name in names))
    except (NotConfigured, ConnectionError, LookupError, TimeoutError):
        return None
    return next((raw for raw in inspected if serving(raw, port)), None)


def mount_lines(name: str, mounts: list[Mount]) -> list[str]:
    if not mounts:
        return [f"{name} mounts no certificate directory: the certificate is inside its image (a rebuild renews it)"]
    return [
        f"{name} mounts {m.source} at {m.destination}{' (read-only)' if m.read_only else ''} — "
        + (
            "the bot can read it"
            if m.visible
            else "out of the bot's sight (mount it read-only into the bot to compare)"
        )
        for m in mounts
    ]


async def renewal_finding(ctx: CheckContext, host: str, port: int) -> Finding | None:
    try:
        report = await report_of(ctx, host, port)
    except Exception:
        return None  # the certificate check says why there is no certificate
    leaf = report.leaf
    if leaf is None:
        return None
    component = f"Renewal {tls.format_endpoint(host, port)}"
    days_left = (leaf.not_after - datetime.now(UTC)).days
    details = renewal_lines(leaf, days_left)
    raw = await server_of(ctx, port)
    if raw is None:
        title = f"{issuer_kind(leaf)}; no watched container publishes port {port}: which one serves it is unknown"
        return Finding.ok(component, title, details=details)
    info = container_info(raw)
    mounts = certificate_mounts(raw)
    details += mount_lines(info.name, mounts)
    on_disk = [cert for m in mounts if m.visible for cert in certificates_in(m)]
    newer = newer_on_disk(leaf, on_disk)
    if newer is None:
        title = f"{issuer_kind(leaf)}, served by {info.name}" + ("; nothing newer on disk" if on_disk else "")
        return Finding.ok(component, title, details=details)
    why = (
        f"{info.name} serves a certificate valid until {leaf.not_after:%Y-%m-%d}, but the one on disk is valid until "
        f"{newer.not_after:%Y-%m-%d} (serial {newer.serial}): the server reads its files only at start"
    )
    proposals: list[Proposal] = [restart_proposal(info, why)]
    return Finding(Status.WARN, component, why, details=details, proposals=proposals)


@runbook.check("tls", component="Renewal", section=SECTION, proposes=("docker.restart",))
async def certificate_renewal(ctx: CheckContext) -> list[Finding]:
    try:
        wanted, _ = endpoints(ctx)
    except NotConfigured:
        return []  # the certificate check says what to configure
    found = await asyncio.gather(*(renewal_finding(ctx, host, port) for host, port in wanted))
    return [finding for finding in found if finding is not None]
