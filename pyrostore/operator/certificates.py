"""The webhook's self-managed TLS: a private CA and the serving certificate it signs, and the caBundle patch.

The operator issues both at start (and again before they expire), keeps the CA's key in memory only, and puts
the CA into its MutatingWebhookConfiguration's ``caBundle`` so the API server trusts the serving certificate.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIFETIME = timedelta(days=365)
_BACKDATE = timedelta(minutes=5)  # tolerates a clock slightly behind the operator's


@dataclass(frozen=True)
class Issued:
    """A CA certificate, and a serving certificate it signed with its private key (all PEM)."""

    ca: bytes
    certificate: bytes
    key: bytes
    not_before: datetime
    not_after: datetime

    @property
    def renew_at(self) -> datetime:
        """When to issue the next pair: two thirds into this one's life."""
        return self.not_before + (self.not_after - self.not_before) * 2 / 3


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _usage(**granted: bool) -> x509.KeyUsage:
    names = (
        *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
        *("key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
    )
    return x509.KeyUsage(**{name: granted.get(name, False) for name in names})


def issue(hosts: Sequence[str], now: datetime | None = None, lifetime: timedelta = LIFETIME) -> Issued:
    """A fresh CA and a serving certificate for ``hosts`` (DNS names or IP addresses), valid for ``lifetime``."""
    if not hosts:
        raise ValueError("the webhook's certificate needs at least one host name")
    start = (now or datetime.now(UTC)) - _BACKDATE
    end = start + _BACKDATE + lifetime
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("pyrostore webhook CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Issued(
        ca=ca.public_bytes(pem),
        certificate=certificate.public_bytes(pem),
        key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        not_before=start,
        not_after=end,
    )


def ca_bundle_patch(configuration: Mapping, bundle: bytes) -> list[dict[str, str]]:
    """JSON patch operations setting every webhook's ``clientConfig.caBundle`` of a webhook configuration to
    ``bundle`` (PEM); none when each already has it."""
    encoded = base64.b64encode(bundle).decode("ascii")
    return [
        {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded}
        for index, webhook in enumerate(configuration.get("webhooks") or [])
        if (webhook.get("clientConfig") or {}).get("caBundle") != encoded
    ]
