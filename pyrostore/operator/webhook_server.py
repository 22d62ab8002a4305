"""Where and how the operator serves its admission webhook over TLS: kopf's ``WebhookServer`` with either a
certificate from files (cert-manager's Secret, reloaded when it is renewed) or a self-managed one.

Self-managed: the operator issues a private CA and a serving certificate at start, renews both two thirds into
their life, and keeps its MutatingWebhookConfiguration's ``caBundle`` equal to the CA (checked every
``check_interval``, so a configuration created or re-applied later is fixed too). The CA's key never leaves the
operator's memory; the serving key sits in a private temporary folder for kopf's server to load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from pyrostore.errors import InvalidSetting
from pyrostore.operator.certificates import Issued, ca_bundle_patch, issue

log = logging.getLogger("pyrostore.operator")


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook's settings, from ``PYROSTORE_WEBHOOK_*`` environment variables (the chart sets them)."""

    port: int | None = None  # None: no webhook
    address: str = "0.0.0.0"
    cert_dir: str | None = None  # tls.crt and tls.key provided (cert-manager); None: self-managed
    configuration: str = ""  # the MutatingWebhookConfiguration whose caBundle a self-managed operator keeps
    hosts: tuple[str, ...] = ()  # the serving certificate's names (the Service's DNS names, IPs)
    check_interval: float = 60.0  # seconds between checks of the caBundle

    @property
    def enabled(self) -> bool:
        """Whether the operator serves the webhook at all."""
        return self.port is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        """Settings from the environment; no ``PYROSTORE_WEBHOOK_PORT`` means no webhook."""
        if env is None:
            env = os.environ
        port = env.get("PYROSTORE_WEBHOOK_PORT", "")
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise InvalidSetting(f"PYROSTORE_WEBHOOK_PORT must be a port number, not {port!r}")
        settings = cls(
            port=int(port) if port else None,
            address=env.get("PYROSTORE_WEBHOOK_ADDRESS", cls.address),
            cert_dir=env.get("PYROSTORE_WEBHOOK_CERT_DIR") or None,
            configuration=env.get("PYROSTORE_WEBHOOK_CONFIGURATION", ""),
            hosts=tuple(h.strip() for h in env.get("PYROSTORE_WEBHOOK_HOSTS", "").split(",") if h.strip()),
            check_interval=float(env.get("PYROSTORE_WEBHOOK_CHECK_INTERVAL", cls.check_interval)),
        )
        if settings.enabled and not settings.cert_dir and not (settings.configuration and settings.hosts):
            raise InvalidSetting(
                "the webhook needs PYROSTORE_WEBHOOK_CERT_DIR, or PYROSTORE_WEBHOOK_CONFIGURATION and "
                "PYROSTORE_WEBHOOK_HOSTS for a self-managed certificate"
            )
        return settings


def server(settings: WebhookSettings, api: Callable[[], client.ApiClient]) -> Any:
    """What ``settings.admission.server`` of kopf gets: files' certificate, or a self-managed one."""
    if settings.cert_dir:
        folder = Path(settings.cert_dir)
        return kopf.WebhookServer(
            addr=settings.address, port=settings.port, certfile=folder / "tls.crt", pkeyfile=folder / "tls.key"
        )
    return SelfManagedServer(settings, api)


class SelfManagedServer:
    """A webhook server whose certificate the operator issues, renews and gets trusted by itself."""

    def __init__(self, settings: WebhookSettings, api: Callable[[], client.ApiClient]) -> None:
        self.settings = settings
        self._api = api
        self._waiting_logged = False

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        """Serve admission requests with ``fn`` (kopf's protocol), yielding kopf's client configurations."""
        folder = Path(tempfile.mkdtemp(prefix="pyrostore-webhook-"))
        issued = issue(self.settings.hosts)
        self._write(folder, issued)
        keeper = asyncio.create_task(self._keep(folder, issued))
        try:
            files = kopf.WebhookServer(
                addr=self.settings.address,
                port=self.settings.port,
                certfile=folder / "tls.crt",
                pkeyfile=folder / "tls.key",
                cadata=issued.ca,
                file_check_interval=min(self.settings.check_interval, 60.0),
            )
            async for config in files(fn):
                yield config
        finally:
            keeper.cancel()
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _write(folder: Path, issued: Issued) -> None:
        """Replace the certificate and key files at once (kopf's server reloads when they change)."""
        for name, data in (("tls.key", issued.key), ("tls.crt", issued.certificate)):
            part = folder / f".{name}.new"
            part.touch(mode=0o600)
            part.write_bytes(data)
            os.replace(part, folder / name)

    async def _keep(self, folder: Path, issued: Issued) -> None:
        """Forever: keep the configuration's caBundle, and renew the certificates when their time comes."""
        bundle = issued.ca
        trusted = await asyncio.to_thread(self._ensure_bundle, bundle)
        while True:
            if trusted and datetime.now(UTC) >= issued.renew_at:
                renewed = issue(self.settings.hosts)
                # Both CAs stay trusted while kopf's server moves over to the new certificate.
                bundle = renewed.ca + issued.ca
                if await asyncio.to_thread(self._ensure_bundle, bundle):
                    self._write(folder, renewed)
                    issued = renewed
                    log.info("renewed the webhook's certificate until %s", issued.not_after.isoformat())
            await asyncio.sleep(self.settings.check_interval)
            trusted = await asyncio.to_thread(self._ensure_bundle, bundle)

    def _ensure_bundle(self, bundle: bytes) -> bool:
        """Set every webhook's caBundle of the configuration to ``bundle``; False when that cannot be done now."""
        admission = client.AdmissionregistrationV1Api(self._api())
        name = self.settings.configuration
        try:
            current = self._api().sanitize_for_serialization(admission.read_mutating_webhook_configuration(name))
            if ops := ca_bundle_patch(current, bundle):
                admission.patch_mutating_webhook_configuration(name, ops)
                log.info("set the caBundle of MutatingWebhookConfiguration %s", name)
        except ApiException as exc:
            if exc.status == 404 and not self._waiting_logged:
                log.info("waiting for MutatingWebhookConfiguration %s to exist", name)
                self._waiting_logged = True
            elif exc.status != 404:
                log.warning("cannot set the caBundle of MutatingWebhookConfiguration %s: %s", name, exc.reason)
            return False
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # the API server is unreachable: try again later
            log.warning("cannot set the caBundle of MutatingWebhookConfiguration %s: %s", name, exc)
            return False
        self._waiting_logged = False
        return True
