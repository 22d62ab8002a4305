"""TLS for the server's own listener (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from pyrostore.errors import InvalidSetting


@dataclass(frozen=True)
class ServeTLS:
    """The listener's certificate and key (PEM files), and the CA file client certificates must chain to (None:
    clients need no certificate)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def check_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServeTLS | None:
    """The TLS settings from the command line's flags, None without them. Raises InvalidSetting for a flag given
    without its partner, or files that cannot be loaded."""
    if cert is None and key is None:
        if client_ca is not None:
            raise InvalidSetting("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise InvalidSetting("give --tls-cert and --tls-key together")
    tls = ServeTLS(cert, key, client_ca)
    server_context(tls)  # refuses unreadable or mismatched files now, before anything starts
    return tls


def server_context(tls: ServeTLS) -> ssl.SSLContext:
    """A server-side SSL context: TLS 1.2 or newer, and with ``client_ca`` a client certificate required.
    Raises InvalidSetting naming the file that cannot be loaded (never its content)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidSetting(f"cannot load the TLS certificate {tls.cert} with key {tls.key}: {_reason(exc)}") from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidSetting(f"cannot load the client CA file {tls.client_ca}: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _reason(exc: OSError | ssl.SSLError) -> str:
    return getattr(exc, "reason", None) or exc.strerror or str(exc)
