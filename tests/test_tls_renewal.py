"""`tls` step 3 on a real server: a Go program serving HTTPS with a certificate it reads once at start, in a
container of the suite's engine with its certificate directory mounted. A renewed certificate written into
that directory is seen as newer than the one served, a restart is proposed, and after it the new one is
served."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.core.findings import Finding, Status
from bot.settings import load_settings
from tests import harness
from tests.support import eventually


def write_self_signed(directory: Path, days: int) -> int:
    """cert.pem and key.pem for 127.0.0.1, valid `days` days; returns the serial."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "erpgo.test")])
    now = datetime.now(UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("erpgo.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert.serial_number


async def tls_report(settings) -> dict[str, Finding]:
    return {f.component: f for f in await harness.run_words("tls", settings)}


async def test_a_renewed_certificate_on_disk_gets_its_server_restarted(go_api, docker_engine, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    write_self_signed(certs, days=20)
    api = await go_api(certs=certs)
    settings = load_settings(
        docker_host=docker_engine.host, erpgo_containers=api.name, erpgo_tls_endpoints=f"127.0.0.1:{api.tls_port}"
    )
    renewal = (await tls_report(settings))[f"Renewal 127.0.0.1:{api.tls_port}"]
    assert renewal.status is Status.OK and renewal.title == f"self-signed, served by {api.name}; nothing newer on disk"
    assert any(line.startswith("self-signed: nobody renews it") for line in renewal.details)
    assert f"{api.name} mounts {certs} at /certs (read-only) — the bot can read it" in renewal.details

    renewed = write_self_signed(certs, days=200)
    findings = await tls_report(settings)
    renewal = findings[f"Renewal 127.0.0.1:{api.tls_port}"]
    assert renewal.status is Status.WARN and f"serial {renewed:X}" in renewal.title
    [restart] = renewal.proposals
    assert restart.action == "docker.restart" and restart.args["name"] == api.name

    await harness.remediate("docker.restart", settings, **restart.args)

    async def days_served() -> int | None:
        return (await tls_report(settings))[f"TLS 127.0.0.1:{api.tls_port}"].data.get("days_left")

    days = await eventually(days_served, what="the restarted server to answer TLS")
    assert days >= 198, "the server reads the renewed certificate after its restart"
    after = (await tls_report(settings))[f"Renewal 127.0.0.1:{api.tls_port}"]
    assert after.status is Status.OK and after.proposals == []
