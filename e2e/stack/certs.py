"""Test certificates: a private CA, server certificates it signs (for 127.0.0.1 and localhost), client
certificates, and a second CA nobody trusts, made with ``cryptography`` once per stack folder."""

from __future__ import annotations

import datetime
import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAYS = 30
_LOCK = threading.Lock()  # the stack starts Kafka and MinIO in parallel threads; both want the files


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its unencrypted PKCS#8 key, each in a PEM file."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TestCertificates:
    """The stack's PKI: ``ca`` signs ``server`` and ``client``; ``untrusted_ca`` signs ``untrusted_server`` and
    ``untrusted_client``, which nothing in the stack trusts."""

    ca: Path
    server: CertFiles
    client: CertFiles
    untrusted_ca: Path
    untrusted_server: CertFiles
    untrusted_client: CertFiles


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pyrostore tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
    )


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _make_ca(folder: Path, label: str) -> tuple[Path, x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    name = _name(f"{label} CA")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),  # digital signature, cert/CRL
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{label}-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def _issue(folder: Path, label: str, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, server: bool) -> CertFiles:
    key = _key()
    builder = _builder(_name(label), ca.subject, key.public_key()).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    files = CertFiles(folder / f"{label}.pem", folder / f"{label}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, files.key)
    return files


def ensure(folder: Path) -> TestCertificates:
    """The certificates under ``folder``, made on first call (later calls, and other servers of the same stack,
    reuse them)."""
    done = folder / ".complete"
    names = TestCertificates(
        ca=folder / "test-ca.pem",
        server=CertFiles(folder / "server.pem", folder / "server.key"),
        client=CertFiles(folder / "client.pem", folder / "client.key"),
        untrusted_ca=folder / "untrusted-ca.pem",
        untrusted_server=CertFiles(folder / "untrusted-server.pem", folder / "untrusted-server.key"),
        untrusted_client=CertFiles(folder / "untrusted-client.pem", folder / "untrusted-client.key"),
    )
    with _LOCK:
        if done.exists():
            return names
        folder.mkdir(parents=True, exist_ok=True)
        _, ca, ca_key = _make_ca(folder, "test")
        _issue(folder, "server", ca, ca_key, server=True)
        _issue(folder, "client", ca, ca_key, server=False)
        _, other, other_key = _make_ca(folder, "untrusted")
        _issue(folder, "untrusted-server", other, other_key, server=True)
        _issue(folder, "untrusted-client", other, other_key, server=False)
        done.touch()
    return names


def keystore_pem(files: CertFiles, target: Path) -> Path:
    """A PEM key store for Kafka (``ssl.keystore.type=PEM``): the key, then the certificate, in one file."""
    target.write_bytes(files.key.read_bytes() + files.cert.read_bytes())
    target.chmod(0o600)
    return target
