"""The mutating admission webhook (kopf's admission support): a Pod annotated ``pyrostore.io/serve: <TopicArchive>``
gets ``pyrostore serve`` of that archive as a native sidecar.

Thin: the decision and the pod spec come from :mod:`pyrostore.operator.sidecar`; this reads the TopicArchive
and answers. Imported by the runner only when the webhook is enabled (kopf refuses admission handlers without a
server).
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from pyrostore.operator import handlers, sidecar, webhook_server

WEBHOOK = webhook_server.WebhookSettings.from_env()


@kopf.on.startup()
def serve_webhook(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Serve the webhook over TLS; the chart installs its configuration, so kopf does not manage one."""
    settings.admission.server = webhook_server.server(WEBHOOK, handlers.api)
    settings.admission.managed = None


def _topic_archive(namespace: str, name: str) -> Any:
    try:
        return handlers.read_topic_archive(namespace, name)
    except ApiException as exc:
        raise sidecar.SidecarRefused(f"cannot read TopicArchive {namespace}/{name}: {exc.status} {exc.reason}") from exc


# The handler's id is the webhook's URL path: /sidecar.
@kopf.on.mutate(
    "", "v1", "pods", id="sidecar", operations=["CREATE"], annotations={sidecar.SERVE_ANNOTATION: kopf.PRESENT}
)
def inject_sidecar(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Add the serve sidecar of the TopicArchive the pod names; refuse the pod when that cannot be done."""
    namespace = body.metadata.namespace or ""
    try:
        name = sidecar.requested_archive(body)
        if name is None:
            return
        port = sidecar.requested_port(body, handlers.SIDECAR.port)
        archive = _topic_archive(namespace, name)
        if archive is None:
            raise sidecar.SidecarRefused(sidecar.missing_archive(namespace, name))
        spec = sidecar.with_sidecar(body.spec, archive, handlers.SETTINGS, port, handlers.SIDECAR.resources)
    except sidecar.SidecarRefused as exc:
        raise kopf.AdmissionError(str(exc), code=400) from exc
    if spec != dict(body.spec):
        patch.spec["initContainers"] = spec["initContainers"]
        patch.spec["volumes"] = spec["volumes"]
