"""Pure logic of the ``pyrostore serve`` sidecar: which pods ask for it, and the pod spec that carries it.

A Pod annotated ``pyrostore.io/serve: <TopicArchive>`` gets ``pyrostore serve`` of that archive as a native
sidecar (an init container with ``restartPolicy: Always``, first, so every later container finds it listening),
on ``127.0.0.1:<port>``; the application points ``bootstrap.servers`` at ``localhost:<port>``. The same builder
puts the sidecar beside the consumer of a serve-mode ReplayJob. Nothing here talks to a server.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrostore.errors import InvalidSetting
from pyrostore.operator.manifests import Manifest, serve_container
from pyrostore.operator.settings import GROUP, OperatorSettings

SERVE_ANNOTATION = f"{GROUP}/serve"
PORT_ANNOTATION = f"{GROUP}/serve-port"
SIDECAR_NAME = "pyrostore-serve"
# The sidecar's volumes join the user's in one list: a prefix keeps their names apart.
VOLUME_PREFIX = f"{SIDECAR_NAME}-"


def _default_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


@dataclass(frozen=True)
class SidecarSettings:
    """The sidecar's defaults, which the chart sets: its port and its resources."""

    port: int = 9092  # Kafka's usual port: the application's setting stays the familiar one
    resources: Mapping[str, Any] = field(default_factory=_default_resources)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SidecarSettings:
        """Settings from ``PYROSTORE_SERVE_PORT`` and ``PYROSTORE_SERVE_RESOURCES`` (JSON), defaults for the rest."""
        if env is None:
            env = os.environ
        defaults = cls()
        port, resources = env.get("PYROSTORE_SERVE_PORT", str(defaults.port)), env.get("PYROSTORE_SERVE_RESOURCES")
        if not (port.isdigit() and 1 <= int(port) <= 65535):
            raise InvalidSetting(f"PYROSTORE_SERVE_PORT must be a port number, not {port!r}")
        try:
            parsed = json.loads(resources) if resources else defaults.resources
        except json.JSONDecodeError as exc:
            raise InvalidSetting(f"PYROSTORE_SERVE_RESOURCES is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise InvalidSetting("PYROSTORE_SERVE_RESOURCES must be a JSON object (requests, limits)")
        return cls(port=int(port), resources=parsed)


class SidecarRefused(ValueError):
    """A pod that cannot get the sidecar; the message names the problem (the webhook refuses the pod with it)."""


def requested_archive(pod: Mapping) -> str | None:
    """The TopicArchive a pod's annotation names, or None when it asks for no sidecar."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    name = annotations.get(SERVE_ANNOTATION)
    if name is None:
        return None
    if not name.strip():
        raise SidecarRefused(f"annotation {SERVE_ANNOTATION} is empty: it must name a TopicArchive")
    return name.strip()


def requested_port(pod: Mapping, default: int) -> int:
    """The port the sidecar listens on: the pod's ``pyrostore.io/serve-port`` annotation, or ``default``."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(PORT_ANNOTATION)
    if text is None:
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise SidecarRefused(f"annotation {PORT_ANNOTATION} must be a port number (1-65535), not {text!r}")
    return int(text)


def has_sidecar(pod_spec: Mapping) -> bool:
    """Whether the pod spec already runs the sidecar (a pod is never given two)."""
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    return any(c.get("name") == SIDECAR_NAME for c in containers)


def _probe(port: int, **timing: int) -> Manifest:
    # The kubelet probes from outside the pod's network namespace, where a loopback listener cannot be reached:
    # the check runs inside the container instead.
    check = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2).close()"
    return {"exec": {"command": ["python", "-c", check]}, "timeoutSeconds": 3, **timing}


def sidecar(
    archive: Mapping, settings: OperatorSettings, port: int, resources: Mapping
) -> tuple[Manifest, list[Manifest]]:
    """The native sidecar serving ``archive`` (a TopicArchive) on ``127.0.0.1:port``, and its (prefixed) volumes.

    Its startup probe holds the pod's next containers until it listens; its readiness probe keeps the pod out of
    service while it does not.
    """
    container, volumes = serve_container(
        archive, settings, name=SIDECAR_NAME, listen=f"127.0.0.1:{port}", advertise=None, resources=resources
    )
    container.pop("ports", None)  # a loopback listener is no port of the pod's
    container["restartPolicy"] = "Always"
    container["startupProbe"] = _probe(port, periodSeconds=1, failureThreshold=120)
    container["readinessProbe"] = _probe(port, periodSeconds=10)
    # The pod's own security context is the user's; the sidecar runs as the image's user whatever it says.
    container["securityContext"] |= {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for mount in container["volumeMounts"]:
        mount["name"] = VOLUME_PREFIX + mount["name"]
    for volume in volumes:
        volume["name"] = VOLUME_PREFIX + volume["name"]
    return container, volumes


def with_sidecar(
    pod_spec: Mapping, archive: Mapping, settings: OperatorSettings, port: int, resources: Mapping
) -> dict[str, Any]:
    """A copy of ``pod_spec`` with the sidecar first among its init containers and its volumes added.

    Unchanged when the sidecar is already there. Raises SidecarRefused when one of the user's volumes already
    has a sidecar volume's name.
    """
    spec = copy.deepcopy(dict(pod_spec))
    if has_sidecar(spec):
        return spec
    container, volumes = sidecar(archive, settings, port, resources)
    taken = {v.get("name") for v in spec.get("volumes") or []}
    if clash := sorted(taken & {v["name"] for v in volumes}):
        raise SidecarRefused(f"the pod already has volume(s) named {', '.join(clash)}, which the sidecar needs")
    spec["initContainers"] = [container, *(spec.get("initContainers") or [])]
    spec["volumes"] = [*(spec.get("volumes") or []), *volumes]
    return spec


def serve_pod(body: Mapping, archive: Mapping, settings: OperatorSettings, defaults: SidecarSettings) -> Manifest:
    """The pod template of a serve-mode ReplayJob: the user's template with the sidecar of ``archive``, run once.

    Its restart policy is Never unless the template says OnFailure; the sidecar takes the ReplayJob's
    ``resources`` (the chart's default when absent), and the pod the workloads' ServiceAccount unless the template
    names one. Raises SidecarRefused (a volume name clash).
    """
    spec = body["spec"]
    serve, template = spec["serve"], spec["serve"]["template"]
    port = serve.get("port", defaults.port)
    pod = with_sidecar(template["spec"], archive, settings, port, spec.get("resources") or defaults.resources)
    if pod.get("restartPolicy") != "OnFailure":
        pod["restartPolicy"] = "Never"
    if settings.service_account and not pod.get("serviceAccountName"):
        pod["serviceAccountName"] = settings.service_account
    return {"metadata": copy.deepcopy(dict(template.get("metadata") or {})), "spec": pod}


def missing_archive(namespace: str, name: str, named_by: str = f"annotation {SERVE_ANNOTATION}") -> str:
    """The message for a TopicArchive that does not exist (named by a pod's annotation, or ``named_by``)."""
    return f"{named_by} names TopicArchive {name!r}, which does not exist in namespace {namespace}"
