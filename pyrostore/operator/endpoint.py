"""Pure builders of a TopicArchive's shared history endpoint (``spec.serve``): a Deployment running
``pyrostore serve`` for the archived topic, the Service in front of it, and what the status says about them.

Clients bootstrap from the Service and reconnect to the address the server advertises, so the server advertises
the Service's DNS name (or ``spec.serve.advertise`` for clients outside the cluster). Consumer groups are
coordinated inside one server process; see docs/decisions.md ("One coordinator per group") for why the Service
keeps each client on one replica and why groups want one replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyrostore.operator.manifests import (
    ARCHIVE_LABEL,
    Manifest,
    component_labels,
    owned,
    pod_spec,
    selector_labels,
    serve_container,
)
from pyrostore.operator.settings import OperatorSettings

SERVE_COMPONENT = "serve"
SERVE_APP = f"pyrostore-{SERVE_COMPONENT}"  # app.kubernetes.io/name of the serve pods, Deployment and Service
CONTAINER_PORT = 9092  # fixed inside the pod (unprivileged); the Service maps its own port onto it
DEFAULT_SERVICE_PORT = 9092


def serve_name(archive_name: str) -> str:
    """The name of the serve Deployment and of its Service for a TopicArchive."""
    return f"{archive_name}-{SERVE_COMPONENT}"


def serving(body: Mapping) -> bool:
    """Whether the TopicArchive asks for an endpoint (``serve: {}`` does: every field has a default)."""
    return body["spec"].get("serve") is not None


def _serve_spec(body: Mapping) -> Mapping[str, Any]:
    return body["spec"].get("serve") or {}


def service_port(body: Mapping) -> int:
    """The port the Service exposes (``spec.serve.service.port``)."""
    return int((_serve_spec(body).get("service") or {}).get("port", DEFAULT_SERVICE_PORT))


def endpoint_address(body: Mapping) -> str:
    """What clients use and are told to reconnect to: ``spec.serve.advertise``, else the Service's DNS name."""
    given = _serve_spec(body).get("advertise")
    if given:
        return str(given)
    meta = body["metadata"]
    return f"{serve_name(meta['name'])}.{meta['namespace']}.svc:{service_port(body)}"


def _serve_labels(body: Mapping) -> dict[str, str]:
    return component_labels(SERVE_COMPONENT, body["metadata"]["name"], ARCHIVE_LABEL)


def serve_selector(body: Mapping) -> dict[str, str]:
    """Labels that select the serve pods of this TopicArchive and nothing else (not its archiver pods)."""
    return selector_labels(_serve_labels(body))


def serve_deployment(body: Mapping, settings: OperatorSettings) -> Manifest:
    """The Deployment of ``spec.serve``: ``pyrostore serve`` listening on every interface, advertising the endpoint.

    ``suspend`` does not stop it: serving only reads the archive (and Kafka), so history stays readable while
    archiving is paused.
    """
    spec, serve = body["spec"], _serve_spec(body)
    labels = _serve_labels(body)
    container, volumes = serve_container(
        body,
        settings,
        name=SERVE_COMPONENT,
        listen=f"0.0.0.0:{CONTAINER_PORT}",
        advertise=endpoint_address(body),
        resources=serve.get("resources") or {},
    )
    metrics_port = spec.get("metricsPort", 9108)
    container["command"] = [*container["command"], "--metrics-port", str(metrics_port)]
    container["ports"] = [
        *container["ports"],
        {"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"},
    ]
    pod_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port)}
    return owned("apps/v1", "Deployment", serve_name(body["metadata"]["name"]), body, labels) | {
        "spec": {
            "replicas": serve.get("replicas", 1),
            "selector": {"matchLabels": serve_selector(body)},
            # Never a surge: with one replica, an update never runs two servers (two group coordinators) at once.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations},
                "spec": pod_spec(container, volumes, settings),
            },
        },
    }


def serve_service(body: Mapping) -> Manifest:
    """The Service of ``spec.serve``: its type and port, onto the serve pods' Kafka port, sticky per client."""
    service = _serve_spec(body).get("service") or {}
    port: Manifest = {"name": "kafka", "port": service_port(body), "targetPort": "kafka", "protocol": "TCP"}
    if "nodePort" in service:
        port["nodePort"] = service["nodePort"]
    return owned("v1", "Service", serve_name(body["metadata"]["name"]), body, _serve_labels(body)) | {
        "spec": {
            "type": service.get("type", "ClusterIP"),
            "selector": serve_selector(body),
            "ports": [port],
            # A client's bootstrap, fetch and coordinator connections (and its reconnections) reach one replica,
            # so one client never sees two coordinators of its group.
            "sessionAffinity": "ClientIP",
        },
    }


def serve_status(body: Mapping, deployment: Mapping | None) -> Manifest:
    """``status.serve``: the endpoint, the Service's name, and the serve Deployment's replicas as last seen."""
    observed = (deployment or {}).get("status") or {}
    return {
        "endpoint": endpoint_address(body),
        "service": serve_name(body["metadata"]["name"]),
        "replicas": _serve_spec(body).get("replicas", 1),
        "readyReplicas": observed.get("readyReplicas") or 0,
    }
