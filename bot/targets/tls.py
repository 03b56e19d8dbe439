"""TLS endpoints: what a server presents, whether it is trusted, and how that should be judged.

`inspect` makes two handshakes to the same address. The first accepts anything, to see exactly what the
server presents (chain, protocol, cipher) even when it is broken; the second verifies against the system
store (or a CA file) with hostname checking, as a client of the service would. `judge` turns the report
into verdicts an engineer acts on; it is pure, so it is tested with any clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_PORT = 443
WARN_DAYS = 30
CRIT_DAYS = 7
WEAK_PROTOCOLS = {"TLSv1": "warn", "TLSv1.1": "warn", "SSLv3": "crit", "SSLv2": "crit"}

# OpenSSL verification codes (X509_V_ERR_*) whose cause a more specific verdict already names.
_NOT_YET_VALID, _EXPIRED, _SELF_SIGNED_LEAF = 9, 10, 18
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64

Level = Literal["ok", "warn", "crit"]


@dataclass(frozen=True)
class CertInfo:
    subject: str  # RFC 4514
    issuer: str
    dns_names: list[str]
    ip_addresses: list[str]
    not_before: datetime  # aware, UTC
    not_after: datetime
    serial: str  # hex, as openssl prints it
    self_signed: bool  # issuer == subject and the signature verifies with its own key
    key_type: str  # "RSA", "EC secp256r1", "Ed25519", …
    key_size: int
    signature_algorithm: str
    sha256: str  # fingerprint of the DER encoding, hex

    @property
    def sans(self) -> list[str]:
        return [*self.dns_names, *self.ip_addresses]

    @classmethod
    def from_der(cls, der: bytes) -> CertInfo:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = x509.load_der_x509_certificate(der)
        dns_names, ip_addresses = _subject_alt_names(cert)
        key_type, key_size = _key_description(cert)
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            serial=f"{cert.serial_number:X}",
            self_signed=_is_self_signed(cert),
            key_type=key_type,
            key_size=key_size,
            signature_algorithm=_signature_algorithm(cert),
            sha256=cert.fingerprint(hashes.SHA256()).hex(),
        )


@dataclass(frozen=True)
class TlsReport:
    host: str
    port: int
    server_name: str  # the name sent as SNI and checked against the certificate
    address: str  # the peer address both handshakes went to
    chain: list[CertInfo]  # leaf first, as the server sent it
    full_chain: bool  # False: this Python exposes only the leaf, so `chain` holds the leaf alone
    protocol: str | None
    cipher: str | None
    verified: bool
    verify_error: str | None  # OpenSSL's reason, e.g. "certificate has expired"
    verify_code: int | None  # OpenSSL's X509_V_ERR_* code when the certificate was rejected
    hostname_matches: bool
    ca_file: str | None  # None: verified against the system store
    leaf_in_ca_file: bool = False  # the leaf itself is one of the CA file's certificates (pinned)
    handshake_error: str | None = None  # even the accept-anything handshake failed: nothing else was seen

    @property
    def leaf(self) -> CertInfo | None:
        return self.chain[0] if self.chain else None

    @property
    def label(self) -> str:
        endpoint = format_endpoint(self.host, self.port)
        return endpoint if self.server_name == self.host else f"{endpoint} ({self.server_name})"


@dataclass
class TlsVerdict:
    level: Level
    title: str
    details: list[str] = field(default_factory=list)


# --- endpoints ---------------------------------------------------------------------------------------------


def parse_endpoint(text: str) -> tuple[str, int]:
    """ "host:port", "host" (port 443) or "[v6]:port" -> (host, port); ValueError says what is wrong."""
    if not text or not text.strip():
        raise ValueError("empty endpoint: give host or host:port")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError(f"endpoint {text!r} contains spaces or control characters")
    if "://" in text or "/" in text:
        raise ValueError(f"endpoint {text!r} looks like a URL: give host:port, e.g. api.example.com:443")
    if text.startswith("["):
        host, port = _split_bracketed(text)
    elif text.count(":") > 1:
        raise ValueError(f"endpoint {text!r}: write an IPv6 address in brackets, e.g. [{text}]:443")
    else:
        host, colon, port_text = text.partition(":")
        port = _parse_port(port_text, text) if colon else DEFAULT_PORT
        host = _validate_hostname(host, text)
    return host, port


def format_endpoint(host: str, port: int) -> str:
    """The inverse of parse_endpoint: "host:port", "[v6]:port"."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_bracketed(text: str) -> tuple[str, int]:
    inner, bracket, rest = text[1:].partition("]")
    if not bracket:
        raise ValueError(f"endpoint {text!r}: missing ']' after the IPv6 address")
    try:
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise ValueError(f"endpoint {text!r}: {inner!r} is not an IPv6 address") from None
    if not rest:
        return inner, DEFAULT_PORT
    if not rest.startswith(":"):
        raise ValueError(f"endpoint {text!r}: expected ':port' after ']'")
    return inner, _parse_port(rest[1:], text)


def _parse_port(port_text: str, text: str) -> int:
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"endpoint {text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"endpoint {text!r}: port {port} is outside 1-65535")
    return port


def _validate_hostname(host: str, text: str) -> str:
    if not host:
        raise ValueError(f"endpoint {text!r}: host is missing")
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"endpoint {text!r}: {host!r} is not a valid host name") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_valid_label(label) for label in labels):
        raise ValueError(f"endpoint {text!r}: {host!r} is not a valid host name")
    return ascii_host


def _valid_label(label: str) -> bool:
    # Underscores are allowed: compose service names (erpgo_api) resolve inside the network.
    return 0 < len(label) <= 63 and not label.startswith("-") and all(ch.isalnum() or ch in "-_" for ch in label)


# --- hostname matching -------------------------------------------------------------------------------------


def hostname_matches(name: str, dns_names: list[str], ip_addresses: list[str]) -> bool:
    """RFC 6125 matching: IPs against IP SANs only; a wildcard only as the whole leftmost label, covering
    exactly one label and never a public suffix like "*.com"; the subject CN is never used."""
    try:
        wanted_ip = ipaddress.ip_address(name)
    except ValueError:
        wanted = _normalise_dns(name)
        return any(_dns_name_matches(wanted, _normalise_dns(pattern)) for pattern in dns_names)
    return any(_same_ip(wanted_ip, candidate) for candidate in ip_addresses)


def _normalise_dns(name: str) -> str:
    name = name.rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _dns_name_matches(host: str, pattern: str) -> bool:
    if not host or not pattern:
        return False
    if host == pattern:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[2:]
    if "*" in suffix or "." not in suffix:
        return False
    first, dot, rest = host.partition(".")
    return bool(first and dot) and rest == suffix


def _same_ip(wanted: ipaddress.IPv4Address | ipaddress.IPv6Address, candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate) == wanted
    except ValueError:
        return False


# --- certificate details -----------------------------------------------------------------------------------


def _subject_alt_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def _key_description(cert: x509.Certificate) -> tuple[str, int]:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    try:
        key = cert.public_key()
    except (ValueError, TypeError):  # unsupported algorithm
        return "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name: str = getattr(oid, "_name", "") or ""
    return name if name and name != "Unknown OID" else oid.dotted_string


def _is_self_signed(cert: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# --- inspection --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Presented:
    address: str
    chain_der: list[bytes]
    full_chain: bool
    protocol: str | None
    cipher: str | None
    handshake_error: str | None = None


async def inspect(
    host: str, port: int, *, server_name: str | None = None, ca_file: str | None = None, timeout: float
) -> TlsReport:
    """Handshake with host:port and report what it presents and whether it is trusted.

    `timeout` bounds the whole inspection (resolution and both handshakes); exceeding it raises
    TimeoutError. Refused, unresolvable or reset connections raise OSError (the target is unreachable).
    An unusable `ca_file` raises ValueError: that is a configuration fault, not the endpoint's.
    """
    name = server_name or host
    verifying = _verifying_context(ca_file)
    pinned = _fingerprints(ca_file) if ca_file else set()
    try:
        async with asyncio.timeout(timeout):
            presented = await _fetch_presented(host, port, name)
            verify_error, verify_code = presented.handshake_error, None
            if presented.handshake_error is None:
                verify_error, verify_code = await _verify(presented.address, port, name, verifying)
    except TimeoutError:
        raise TimeoutError(f"{format_endpoint(host, port)}: no TLS handshake within {timeout:g} s") from None
    chain = [CertInfo.from_der(der) for der in presented.chain_der]
    leaf = chain[0] if chain else None
    return TlsReport(
        host=host,
        port=port,
        server_name=name,
        address=presented.address,
        chain=chain,
        full_chain=presented.full_chain,
        protocol=presented.protocol,
        cipher=presented.cipher,
        verified=verify_error is None,
        verify_error=verify_error,
        verify_code=verify_code,
        hostname_matches=leaf is not None and hostname_matches(name, leaf.dns_names, leaf.ip_addresses),
        ca_file=ca_file,
        leaf_in_ca_file=leaf is not None and leaf.sha256 in pinned,
        handshake_error=presented.handshake_error,
    )


def _inspecting_context() -> ssl.SSLContext:
    """Accepts any certificate and old protocols, so a broken or outdated server can still be described."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # DEFAULT excludes anonymous suites: a certificate is sent
    except ssl.SSLError:
        pass  # a TLS library without security levels keeps its defaults
    return context


def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: keep it from reading as "unreachable"
        raise ValueError(f"CA file {ca_file!r} cannot be used: {getattr(exc, 'strerror', None) or exc}") from None


def _fingerprints(ca_file: str) -> set[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        with open(ca_file, "rb") as pem:
            certificates = x509.load_pem_x509_certificates(pem.read())
    except (OSError, ValueError):
        return set()  # _verifying_context has already said what is wrong with the file
    return {cert.fingerprint(hashes.SHA256()).hex() for cert in certificates}


async def _fetch_presented(host: str, port: int, server_name: str) -> _Presented:
    try:
        _, writer = await asyncio.open_connection(host, port, ssl=_inspecting_context(), server_hostname=server_name)
    except ssl.SSLError as exc:  # it answered, but not with TLS we can speak: a finding, not "unreachable"
        return _Presented(
            address="",
            chain_der=[],
            full_chain=False,
            protocol=None,
            cipher=None,
            handshake_error=str(exc.reason or exc),
        )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        chain, full = _presented_chain(ssl_object)
        cipher = ssl_object.cipher()
        return _Presented(
            address=writer.get_extra_info("peername")[0],
            chain_der=chain,
            full_chain=full,
            protocol=ssl_object.version(),
            cipher=cipher[0] if cipher else None,
        )
    finally:
        writer.transport.abort()  # nothing to say to the server; a graceful close could wait on it


def _presented_chain(ssl_object: Any) -> tuple[list[bytes], bool]:
    """The certificates the server sent, leaf first; (leaf only, False) where Python cannot expose them."""
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+: DER bytes
    if public is not None:
        return [bytes(der) for der in public() or []], True
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)  # 3.10-3.12
    der_encoding = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", None)
    if private is not None and der_encoding is not None:
        certificates = private() or []
        return [cert.public_bytes(der_encoding) for cert in certificates], True
    leaf = ssl_object.getpeercert(binary_form=True)
    return ([leaf] if leaf else []), False


async def _verify(address: str, port: int, server_name: str, context: ssl.SSLContext) -> tuple[str | None, int | None]:
    """(None, None) when the handshake verifies; otherwise OpenSSL's reason and X509_V_ERR code."""
    try:
        _, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc), exc.verify_code
    except ssl.SSLError as exc:  # e.g. a protocol or cipher this side refuses
        return str(exc.reason or exc), None
    except ConnectionResetError:  # it answered the first handshake, so it is up: it refused this client's hello
        return "the server reset the connection during the verifying handshake", None
    writer.transport.abort()
    return None, None


# --- judgement ---------------------------------------------------------------------------------------------


def judge(report: TlsReport, now: datetime) -> list[TlsVerdict]:
    """What an engineer should make of `report` at `now` (aware): one verdict per finding, worst first."""
    if report.handshake_error:
        return [
            TlsVerdict(
                "crit",
                f"{report.label} — TLS handshake failed: {report.handshake_error}",
                ["the port may not speak TLS, or offers nothing this client accepts, even unverified"],
            )
        ]
    leaf = report.leaf
    if leaf is None:
        return [TlsVerdict("crit", f"{report.label} — the server presented no certificate", _connection(report))]
    validity = _validity(report, leaf, now)
    verdicts = [validity]
    hostname = None if report.hostname_matches else _hostname_mismatch(report, leaf)
    self_signed = _self_signed(report) if leaf.self_signed else None
    weak = _weak_protocol(report)
    verdicts += [v for v in (hostname, self_signed, weak) if v is not None]
    if not report.verified:
        explained_by = _explained_by(report.verify_code, validity, hostname, self_signed, weak)
        if explained_by is None:
            verdicts.append(_untrusted(report))
        elif explained_by is weak:
            # Negotiating TLS 1.0/1.1 with a client that offers 1.3 means the server has nothing newer:
            # a client with today's defaults cannot connect at all, so the certificate was never checked.
            weak.level = "crit"
            weak.details.append(
                f"a client with default settings cannot connect: {report.verify_error}; "
                f"the certificate could not be verified"
            )
        else:
            explained_by.details.append(f"verification against {_store(report)}: {report.verify_error}")
    else:
        verdicts.append(TlsVerdict("ok", f"{report.label} — trusted by {_store(report)}", []))
    order: dict[str, int] = {"crit": 0, "warn": 1, "ok": 2}
    return sorted(verdicts, key=lambda verdict: order[verdict.level])


def _validity(report: TlsReport, leaf: CertInfo, now: datetime) -> TlsVerdict:
    details = [*_describe(leaf), *_connection(report)]
    if now < leaf.not_before:
        wait = _span(leaf.not_before - now)
        return TlsVerdict(
            "crit", f"{report.label} — certificate not valid until {_day(leaf.not_before)} (starts in {wait})", details
        )
    left = leaf.not_after - now
    if left <= timedelta(0):
        return TlsVerdict(
            "crit", f"{report.label} — certificate expired {_span(-left)} ago ({_day(leaf.not_after)})", details
        )
    level: Level = "crit" if left < timedelta(days=CRIT_DAYS) else "warn" if left < timedelta(days=WARN_DAYS) else "ok"
    return TlsVerdict(level, f"{report.label} — certificate expires in {_span(left)} ({_day(leaf.not_after)})", details)


def _hostname_mismatch(report: TlsReport, leaf: CertInfo) -> TlsVerdict:
    covers = ", ".join(leaf.sans) or "no names (no subjectAltName; the subject CN is not used)"
    return TlsVerdict(
        "crit",
        f"{report.label} — certificate is not valid for {report.server_name}",
        [f"certificate covers: {covers}", f"subject: {leaf.subject}"],
    )


def _self_signed(report: TlsReport) -> TlsVerdict:
    title = f"{report.label} — certificate is self-signed"
    if report.leaf_in_ca_file:
        return TlsVerdict("warn", title, [f"pinned: it is one of the certificates in {report.ca_file}"])
    if report.verified:
        return TlsVerdict("warn", title, [f"trusted by {_store(report)}"])
    advice = "clients will reject it unless they pin it; set ERPGO_TLS_CA_FILE to it if that is intended"
    return TlsVerdict("crit", title, [advice])


def _weak_protocol(report: TlsReport) -> TlsVerdict | None:
    level = WEAK_PROTOCOLS.get(report.protocol or "")
    if level is None:
        return None
    return TlsVerdict(
        "warn" if level == "warn" else "crit",
        f"{report.label} — negotiates {report.protocol}, which is deprecated",
        ["it should offer TLS 1.2 or 1.3 only", *_connection(report)],
    )


def _untrusted(report: TlsReport) -> TlsVerdict:
    details = [f"verification against {_store(report)}", *_chain(report)]
    what = "certificate not trusted" if report.verify_code is not None else "verified handshake failed"
    return TlsVerdict("crit", f"{report.label} — {what}: {report.verify_error}", details)


def _explained_by(
    code: int | None,
    validity: TlsVerdict,
    hostname: TlsVerdict | None,
    self_signed: TlsVerdict | None,
    weak: TlsVerdict | None,
) -> TlsVerdict | None:
    """The verdict that already names why verification failed, so the failure is not reported twice."""
    if code is None and weak is not None:
        return weak
    if code in (_EXPIRED, _NOT_YET_VALID) and validity.level == "crit":
        return validity
    if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH) and hostname is not None:
        return hostname
    if code == _SELF_SIGNED_LEAF and self_signed is not None and self_signed.level == "crit":
        return self_signed
    return None


def _describe(leaf: CertInfo) -> list[str]:
    return [
        f"subject: {leaf.subject}",
        f"issuer: {leaf.issuer}",
        f"names: {', '.join(leaf.sans) or 'none'}",
        f"valid: {leaf.not_before:%Y-%m-%d %H:%M} → {leaf.not_after:%Y-%m-%d %H:%M} UTC",
        f"key: {leaf.key_type} {leaf.key_size}-bit, signed with {leaf.signature_algorithm}",
        f"serial: {leaf.serial}",
        f"sha256: {leaf.sha256}",
    ]


def _connection(report: TlsReport) -> list[str]:
    return [f"protocol: {report.protocol or 'unknown'}, cipher: {report.cipher or 'unknown'}", *_chain(report)]


def _chain(report: TlsReport) -> list[str]:
    if not report.chain:
        return []
    if not report.full_chain:
        return ["chain: only the leaf is visible to this runtime"]
    return [f"chain sent: {' ← '.join(cert.subject for cert in report.chain)} ({len(report.chain)} certificates)"]


def _store(report: TlsReport) -> str:
    return report.ca_file or "the system store"


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        days = delta.days
        return f"{days} day{'s' if days != 1 else ''}"
    hours = int(delta.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, int(delta.total_seconds() // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
