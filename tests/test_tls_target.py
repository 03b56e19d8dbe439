"""The TLS target against real loopback servers, and its judgement as an engineer would read it."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.targets.tls import (
    CertInfo,
    TlsReport,
    TlsVerdict,
    format_endpoint,
    hostname_matches,
    inspect,
    judge,
    parse_endpoint,
)
from tests.fixtures.tls import TlsServers

TIMEOUT = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


def _levels(verdicts: list[TlsVerdict]) -> list[str]:
    return [verdict.level for verdict in verdicts]


def _titled(verdicts: list[TlsVerdict], words: str) -> TlsVerdict:
    matching = [verdict for verdict in verdicts if words in verdict.title]
    assert len(matching) == 1, f"expected one verdict saying {words!r}, got {[v.title for v in verdicts]}"
    return matching[0]


# --- against servers -------------------------------------------------------------------------------------


async def test_certificate_expiring_in_3_days_is_critical(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["expiring"]
    report = await inspect("localhost", port, ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT)
    verdicts = judge(report, _now())

    expiry = tls_servers.pki.issued["expiring"].not_after.date().isoformat()
    assert report.verified and report.hostname_matches
    assert verdicts[0].level == "crit"
    assert verdicts[0].title == f"localhost:{port} — certificate expires in 3 days ({expiry})"
    assert _levels(verdicts) == ["crit", "ok"]  # nothing else is wrong with it


async def test_certificate_for_another_host_is_a_critical_mismatch(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["wrong_host"]
    report = await inspect("localhost", port, ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert not report.hostname_matches and not report.verified
    assert "Hostname mismatch" in (report.verify_error or "")
    mismatch = _titled(verdicts, "not valid for localhost")
    assert mismatch.level == "crit"
    assert any("wrong.example" in line for line in mismatch.details)
    assert any("Hostname mismatch" in line for line in mismatch.details)
    assert [v.level for v in verdicts if v is not mismatch] == ["ok"], "the mismatch is reported once"


async def test_self_signed_certificate_is_flagged_and_critical_when_untrusted(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["self_signed"]
    report = await inspect("localhost", port, timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert report.chain[0].self_signed and not report.verified
    assert report.verify_error == "self-signed certificate"
    flagged = _titled(verdicts, "self-signed")
    assert flagged.level == "crit"
    assert flagged.title == f"localhost:{port} — certificate is self-signed"


async def test_self_signed_certificate_pinned_by_the_ca_file_is_only_a_warning(tls_servers: TlsServers) -> None:
    own_cert = tls_servers.pki.issued["self_signed"].cert_file
    report = await inspect("localhost", tls_servers.ports["self_signed"], ca_file=str(own_cert), timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert report.verified and report.leaf_in_ca_file
    assert _titled(verdicts, "self-signed").level == "warn"
    assert "crit" not in _levels(verdicts)


async def test_healthy_certificate_verifies_against_the_configured_ca(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["healthy"]
    ca_file = str(tls_servers.pki.ca_file)
    report = await inspect("localhost", port, ca_file=ca_file, timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert report.verified and report.verify_error is None and report.ca_file == ca_file
    assert set(_levels(verdicts)) == {"ok"}
    assert _titled(verdicts, "trusted by").title == f"localhost:{port} — trusted by {ca_file}"
    assert "expires in 89 days" in verdicts[0].title or "expires in 90 days" in verdicts[0].title


async def test_healthy_certificate_is_not_trusted_by_the_system_store(tls_servers: TlsServers) -> None:
    report = await inspect("localhost", tls_servers.ports["healthy"], timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert not report.verified and report.ca_file is None
    untrusted = _titled(verdicts, "not trusted")
    assert untrusted.level == "crit"
    assert untrusted.title.endswith("not trusted: self-signed certificate in certificate chain")
    assert any("the system store" in line for line in untrusted.details)


async def test_expired_certificate_is_critical_and_named_once(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["expired"]
    report = await inspect("localhost", port, ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT)
    verdicts = judge(report, _now())

    expired_on = tls_servers.pki.issued["expired"].not_after.date().isoformat()
    assert report.verify_error == "certificate has expired"
    assert len(verdicts) == 1
    assert verdicts[0].level == "crit"
    assert verdicts[0].title == f"localhost:{port} — certificate expired 2 days ago ({expired_on})"
    assert any("certificate has expired" in line for line in verdicts[0].details)


async def test_report_describes_the_chain_the_server_sent(tls_servers: TlsServers) -> None:
    report = await inspect("localhost", tls_servers.ports["healthy"], timeout=TIMEOUT)
    issued = tls_servers.pki.issued["healthy"].cert

    assert report.full_chain and len(report.chain) == 2
    leaf, ca = report.chain
    assert leaf.subject == "CN=localhost,O=ERPGo tests"
    assert leaf.issuer == ca.subject == "CN=ERPGo Test CA,O=ERPGo tests"
    assert leaf.sans == ["localhost", "127.0.0.1"]
    assert leaf.not_after == issued.not_valid_after_utc and leaf.not_after.tzinfo is not None
    assert leaf.serial == f"{issued.serial_number:X}"
    assert (leaf.key_type, leaf.key_size, leaf.signature_algorithm) == ("EC secp256r1", 256, "ecdsa-with-SHA256")
    assert not leaf.self_signed and ca.self_signed
    assert report.protocol == "TLSv1.3" and report.cipher
    assert report.address == "127.0.0.1" and report.server_name == "localhost"


async def test_an_ip_address_is_matched_against_the_ip_names(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["healthy"]
    report = await inspect("127.0.0.1", port, ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT)

    assert report.hostname_matches and report.verified
    assert judge(report, _now())[0].title.startswith(f"127.0.0.1:{port} — certificate expires in")


async def test_server_name_is_sent_and_checked_instead_of_the_host(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["wrong_host"]
    report = await inspect(
        "127.0.0.1", port, server_name="wrong.example", ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT
    )

    assert report.verified and report.hostname_matches
    assert report.label == f"127.0.0.1:{port} (wrong.example)"


async def test_old_protocol_is_reported_with_why_clients_fail(tls_servers: TlsServers) -> None:
    if not tls_servers.legacy_protocols:
        if os.environ.get("CI"):
            pytest.fail("this TLS library cannot serve TLS 1.1 (CI never skips)")
        pytest.skip("this TLS library cannot serve TLS 1.1")
    port = tls_servers.ports["tls1_1"]
    report = await inspect("localhost", port, ca_file=str(tls_servers.pki.ca_file), timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert report.protocol == "TLSv1.1" and not report.verified
    weak = _titled(verdicts, "negotiates TLSv1.1")
    assert weak.level == "crit"
    assert any("cannot connect" in line for line in weak.details)
    assert not any("not trusted" in v.title or "handshake failed" in v.title for v in verdicts)


async def test_closed_port_is_unreachable(tls_servers: TlsServers) -> None:
    with pytest.raises(ConnectionRefusedError):
        await inspect(tls_servers.host, tls_servers.closed_port, timeout=TIMEOUT)


async def test_server_that_never_handshakes_times_out_on_time(tls_servers: TlsServers) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no TLS handshake within 0\.5 s"):
        await inspect(tls_servers.host, tls_servers.stalled_port, timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 1.0


async def test_a_port_that_does_not_speak_tls_is_a_failed_handshake_not_unreachable(tls_servers: TlsServers) -> None:
    port = tls_servers.plain_http_port
    report = await inspect(tls_servers.host, port, timeout=TIMEOUT)
    verdicts = judge(report, _now())

    assert not report.verified and report.chain == []
    assert [v.level for v in verdicts] == ["crit"]
    assert verdicts[0].title.startswith(f"127.0.0.1:{port} — TLS handshake failed: ")
    assert "WRONG_VERSION_NUMBER" in verdicts[0].title


async def test_unusable_ca_file_is_a_configuration_error_not_unreachable(
    tls_servers: TlsServers, tmp_path: Path
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for ca_file in (str(tmp_path / "missing.pem"), str(not_pem)):
        with pytest.raises(ValueError, match="CA file") as raised:
            await inspect("localhost", tls_servers.ports["healthy"], ca_file=ca_file, timeout=TIMEOUT)
        assert not isinstance(raised.value, OSError)


# --- judgement alone -------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _cert(
    *,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=90),
    self_signed: bool = False,
) -> CertInfo:
    return CertInfo(
        subject="CN=api.example.com",
        issuer="CN=api.example.com" if self_signed else "CN=Example CA",
        dns_names=["api.example.com"],
        ip_addresses=[],
        not_before=not_before,
        not_after=not_after,
        serial="1F",
        self_signed=self_signed,
        key_type="EC secp256r1",
        key_size=256,
        signature_algorithm="ecdsa-with-SHA256",
        sha256="00" * 32,
    )


def _report(leaf: CertInfo | None = None, **changes: object) -> TlsReport:
    report = TlsReport(
        host="api.example.com",
        port=443,
        server_name="api.example.com",
        address="192.0.2.10",
        chain=[leaf or _cert()],
        full_chain=True,
        protocol="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        verified=True,
        verify_error=None,
        verify_code=None,
        hostname_matches=True,
        ca_file=None,
    )
    return replace(report, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "level", "says"),
    [
        (timedelta(days=90), "ok", "expires in 90 days (2027-03-01)"),
        (timedelta(days=30), "ok", "expires in 30 days"),
        (timedelta(days=29, hours=23), "warn", "expires in 29 days"),
        (timedelta(days=7), "warn", "expires in 7 days"),
        (timedelta(days=6, hours=23), "crit", "expires in 6 days"),
        (timedelta(days=1), "crit", "expires in 1 day ("),
        (timedelta(hours=5, minutes=10), "crit", "expires in 5 hours (2026-12-01)"),
    ],
)
def test_days_left_thresholds(left: timedelta, level: str, says: str) -> None:
    validity = _titled(judge(_report(_cert(not_after=NOW + left)), NOW), "certificate expires")
    assert validity.level == level
    assert validity.title.startswith(f"api.example.com:443 — certificate {says}")


def test_not_yet_valid_is_critical() -> None:
    verdicts = judge(_report(_cert(not_before=NOW + timedelta(days=2))), NOW)
    assert verdicts[0].level == "crit"
    assert verdicts[0].title == "api.example.com:443 — certificate not valid until 2026-12-03 (starts in 2 days)"


def test_an_untrusted_expired_certificate_reports_both_problems() -> None:
    expired = _cert(not_after=NOW - timedelta(hours=3))
    report = _report(expired, verified=False, verify_error="unable to get local issuer certificate", verify_code=20)
    titles = [verdict.title for verdict in judge(report, NOW)]
    assert titles == [
        "api.example.com:443 — certificate expired 3 hours ago (2026-12-01)",
        "api.example.com:443 — certificate not trusted: unable to get local issuer certificate",
    ]


def test_tls_1_0_negotiated_by_a_verifying_client_is_a_warning() -> None:
    verdicts = judge(_report(protocol="TLSv1"), NOW)
    weak = _titled(verdicts, "negotiates TLSv1,")
    assert weak.level == "warn"


def test_no_certificate_is_critical() -> None:
    verdicts = judge(_report(chain=[], verified=False, verify_error="no certificate"), NOW)
    assert [(v.level, v.title) for v in verdicts] == [
        ("crit", "api.example.com:443 — the server presented no certificate")
    ]


def test_leaf_only_chain_is_said_to_be_partial() -> None:
    details = judge(_report(full_chain=False), NOW)[0].details
    assert "chain: only the leaf is visible to this runtime" in details


@pytest.mark.parametrize(
    ("name", "dns_names", "ips", "matches"),
    [
        ("api.example.com", ["api.example.com"], [], True),
        ("API.Example.com.", ["api.example.com"], [], True),
        ("api.example.com", ["*.example.com"], [], True),
        ("example.com", ["*.example.com"], [], False),
        ("a.b.example.com", ["*.example.com"], [], False),
        ("example.com", ["*.com"], [], False),
        ("api.example.com", ["a*.example.com"], [], False),
        ("api.example.com", ["other.example.com"], [], False),
        ("127.0.0.1", ["127.0.0.1"], [], False),  # an address is never matched against DNS names
        ("127.0.0.1", [], ["127.0.0.1"], True),
        ("::1", [], ["0:0:0:0:0:0:0:1"], True),
        ("bücher.example", ["xn--bcher-kva.example"], [], True),
        ("api.example.com", [], [], False),
    ],
)
def test_hostname_matching(name: str, dns_names: list[str], ips: list[str], matches: bool) -> None:
    assert hostname_matches(name, dns_names, ips) is matches


# --- endpoints -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api.example.com:8443", ("api.example.com", 8443)),
        ("api.example.com", ("api.example.com", 443)),
        ("API.Example.com", ("api.example.com", 443)),
        ("erpgo_api:8080", ("erpgo_api", 8080)),
        ("127.0.0.1:443", ("127.0.0.1", 443)),
        ("[::1]:8443", ("::1", 8443)),
        ("[::1]", ("::1", 443)),
        ("bücher.example:443", ("xn--bcher-kva.example", 443)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected
    assert parse_endpoint(format_endpoint(*expected)) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty endpoint"),
        ("   ", "empty endpoint"),
        ("api.example.com:", "port '' is not a number"),
        ("api.example.com:https", "port 'https' is not a number"),
        ("api.example.com:0", "outside 1-65535"),
        ("api.example.com:70000", "outside 1-65535"),
        (":443", "host is missing"),
        ("api example.com", "spaces or control characters"),
        ("api.example.com\n", "spaces or control characters"),
        ("api\x00.example.com", "spaces or control characters"),
        ("https://api.example.com", "looks like a URL"),
        ("::1:8443", "IPv6 address in brackets"),
        ("[::1:8443", "missing ']'"),
        ("[nope]:443", "is not an IPv6 address"),
        ("[::1]8443", "expected ':port'"),
        ("-bad.example.com", "not a valid host name"),
        ("a..b", "not a valid host name"),
        ("x" * 64 + ".example", "not a valid host name"),
    ],
)
def test_parse_endpoint_rejects_with_a_clear_reason(text: str, says: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_endpoint(text)
    assert says in str(raised.value)
