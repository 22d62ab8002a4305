"""Pure builders of the workloads the operator makes: the archiver StatefulSet and the replay Job (or, in serve
mode, the Job around a consumer's pod).

Every function takes the custom resource's body (a mapping, as kopf and the API give it) and the operator's
settings, and returns a plain manifest; nothing here talks to a server, so unit tests check it all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pyrostore.operator.settings import GROUP, MANAGER, VERSION, OperatorSettings
from pyrostore.settings import parse_time

STORAGE_SECRET_DIR = "/var/run/secrets/pyrostore/storage"
KAFKA_PROPERTIES_DIR = "/etc/pyrostore/kafka"
ARCHIVE_LABEL = f"{GROUP}/topic-archive"
REPLAY_LABEL = f"{GROUP}/replay-job"
POD_NAME = "POD_NAME"  # the archiver container's variable holding its pod's name (the downward API)

Manifest = dict[str, Any]


# The StatefulSet controller labels each pod with ``<set name>-<revision hash>`` (a hash of up to 10 characters), a
# label value of at most 63 characters, and pod names are ``<set name>-<ordinal>`` DNS labels.
_MAX_SET_NAME = 63 - 11


def archiver_name(archive_name: str) -> str:
    """The archiver StatefulSet's name for a TopicArchive: ``<name>-archiver``, or, when that is too long for the
    StatefulSet controller's labels or not a DNS label (a dotted name), a prefix of the name and a hash of all of it.
    """
    name = f"{archive_name}-archiver"
    if len(name) <= _MAX_SET_NAME and "." not in name:
        return name
    digest = hashlib.sha256(archive_name.encode()).hexdigest()[:8]
    prefix = re.sub(r"[^a-z0-9-]", "-", archive_name)[: _MAX_SET_NAME - len("--archiver") - len(digest)].rstrip("-")
    return f"{prefix}-{digest}-archiver"


def legacy_deployment_name(archive_name: str) -> str:
    """The archiver Deployment's name that operators before static membership made (removed on sight)."""
    return f"{archive_name}-archiver"


def job_name(replay_name: str) -> str:
    """The Job's name for a ReplayJob."""
    return f"{replay_name}-replay"


def consumer_group(body: Mapping) -> str:
    """The archiver's Kafka consumer group: one per TopicArchive, so two archives of a topic never share it."""
    return f"pyrostore-{body['metadata']['namespace']}-{body['metadata']['name']}"


def owner_reference(owner: Mapping) -> Manifest:
    """A controller owner reference to a custom resource: the garbage collector deletes the child with it."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def component_labels(component: str, instance: str, owner_label: str) -> dict[str, str]:
    """The labels of a child workload: its component (``pyrostore-<component>``), instance and owner."""
    return {
        "app.kubernetes.io/name": f"pyrostore-{component}",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/managed-by": MANAGER,
        owner_label: instance,
    }


def selector_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels of a workload's pods that select them: their component and instance (never the owner label
    alone, which the archiver's and the endpoint's pods share)."""
    return {key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


def owned(api_version: str, kind: str, name: str, owner: Mapping, labels: dict[str, str]) -> Manifest:
    """The head of a child object: its kind, and metadata naming it, labelling it and tying it to its owner."""
    metadata = {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata | {"ownerReferences": [owner_reference(owner)]},
    }


def flag_pairs(flag: str, pairs: Mapping[str, str] | None) -> list[str]:
    """``flag key=value`` arguments for each pair, sorted by key."""
    return [arg for key, value in sorted((pairs or {}).items()) for arg in (flag, f"{key}={value}")]


def pod_wiring(storage: Mapping, kafka: Mapping) -> tuple[list[Manifest], list[Manifest], list[Manifest], list[str]]:
    """envFrom, volumes, volume mounts and extra arguments of a pod: its Secrets, and a writable /tmp.

    Only Secret names go into the manifest; the values reach the container from the kubelet, never through
    the operator.
    """
    # The root filesystem is read-only: /tmp is the one writable place (HOME in the image).
    env_from, args = [], []
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}]
    if secret := storage.get("credentialsSecret"):
        env_from.append({"secretRef": {"name": secret["name"]}})
        volumes.append({"name": "storage-credentials", "secret": {"secretName": secret["name"]}})
        mounts.append({"name": "storage-credentials", "mountPath": STORAGE_SECRET_DIR, "readOnly": True})
    if secret := kafka.get("propertiesSecret"):
        key = secret.get("key", "client.properties")
        volumes.append(
            {
                "name": "kafka-properties",
                "secret": {"secretName": secret["name"], "items": [{"key": key, "path": "client.properties"}]},
            }
        )
        mounts.append({"name": "kafka-properties", "mountPath": KAFKA_PROPERTIES_DIR, "readOnly": True})
        args += ["--kafka-properties", f"{KAFKA_PROPERTIES_DIR}/client.properties"]
    return env_from, volumes, mounts, args


def archiver_command(body: Mapping) -> list[str]:
    """The archiver container's command: ``pyrostore archive`` with the TopicArchive's settings."""
    spec = body["spec"]
    kafka, storage, segment = spec["kafka"], spec["storage"], spec.get("segment", {})
    command = ["pyrostore", "archive", "--bootstrap-servers", kafka["bootstrapServers"], "--topic", kafka["topic"]]
    command += ["--store", storage["url"], "--group", consumer_group(body)]
    # Static membership (KIP-345) under the pod's stable name: the kubelet expands $(POD_NAME) from the env.
    command += ["--instance-id", f"$({POD_NAME})"]
    command += ["--segment-bytes", segment.get("bytes", "64MiB"), "--segment-age", segment.get("age", "60s")]
    command += ["--metrics-port", str(spec.get("metricsPort", 9108)), "--log-format", "json"]
    if spec.get("acceptLoss"):
        command.append("--accept-loss")
    command += flag_pairs("-o", storage.get("options"))
    command += flag_pairs("-X", kafka.get("properties"))
    return command + pod_wiring(storage, kafka)[3]


def pod_spec(container: Manifest, volumes: list[Manifest], settings: OperatorSettings, **extra: Any) -> Manifest:
    """A pod of one container, run as a non-root user, with the operator's workload ServiceAccount if set."""
    pod: Manifest = {
        "containers": [container],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "volumes": volumes,
        **extra,
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    return pod


def workload_container(
    name: str, command: list[str], settings: OperatorSettings, spec: Mapping, env_from: list, mounts: list
) -> Manifest:
    """A container of the operator's image running ``command``, locked down, with ``spec``'s resources."""
    container: Manifest = {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "resources": dict(spec.get("resources") or {}),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
        "volumeMounts": mounts,
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def serve_command(body: Mapping, listen: str, advertise: str | None = None) -> list[str]:
    """``pyrostore serve`` of a TopicArchive's topic: its archive, and its live Kafka past the archive's end."""
    spec = body["spec"]
    kafka, storage = spec["kafka"], spec["storage"]
    command = ["pyrostore", "serve", "--store", storage["url"], "--topic", kafka["topic"]]
    command += ["--bootstrap-servers", kafka["bootstrapServers"], "--listen", listen]
    if advertise:
        command += ["--advertise", advertise]
    command += ["--log-format", "json"]
    command += flag_pairs("-o", storage.get("options"))
    command += flag_pairs("-X", kafka.get("properties"))
    return command + pod_wiring(storage, kafka)[3]


def serve_container(
    body: Mapping, settings: OperatorSettings, *, name: str, listen: str, advertise: str | None, resources: Mapping
) -> tuple[Manifest, list[Manifest]]:
    """A container running ``pyrostore serve`` for a TopicArchive, and the volumes its mounts need.

    Ready once it accepts connections on its listen port (the serve command answers as soon as it listens).
    """
    spec = body["spec"]
    env_from, volumes, mounts, _ = pod_wiring(spec["storage"], spec["kafka"])
    command = serve_command(body, listen, advertise)
    container = workload_container(name, command, settings, {"resources": resources}, env_from, mounts)
    port = int(listen.rsplit(":", 1)[1])
    container["ports"] = [{"name": "kafka", "containerPort": port, "protocol": "TCP"}]
    container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 5}
    return container, volumes


def archiver_statefulset(body: Mapping, settings: OperatorSettings) -> Manifest:
    """The archiver StatefulSet of a TopicArchive (``suspend: true`` makes zero replicas).

    A StatefulSet so that each replica keeps its pod name, its static group member id, across pod replacements:
    a replacement rejoins as the same member and gets its partitions back at once. Replicas are peers (parallel
    starts); no governing Service (the archivers serve nothing but metrics).
    """
    spec, meta = body["spec"], body["metadata"]
    labels = component_labels("archiver", meta["name"], ARCHIVE_LABEL)
    env_from, volumes, mounts, _ = pod_wiring(spec["storage"], spec["kafka"])
    container = workload_container("archiver", archiver_command(body), settings, spec, env_from, mounts)
    container["env"] = [
        {"name": POD_NAME, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
    ]
    container["ports"] = [{"name": "metrics", "containerPort": spec.get("metricsPort", 9108), "protocol": "TCP"}]
    pod_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(spec.get("metricsPort", 9108))}
    return owned("apps/v1", "StatefulSet", archiver_name(meta["name"]), body, labels) | {
        "spec": {
            "replicas": 0 if spec.get("suspend") else spec.get("replicas", 1),
            "selector": {"matchLabels": selector_labels(labels)},
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations},
                # The archiver commits open segments within --shutdown-grace (25 s) of SIGTERM.
                "spec": pod_spec(container, volumes, settings, terminationGracePeriodSeconds=40),
            },
        },
    }


def replay_id(body: Mapping) -> str:
    """Names the replay's checkpoints: stable for this ReplayJob, distinct from any other (its uid)."""
    meta = body["metadata"]
    return f"{meta['namespace']}-{meta['name']}-{meta['uid'][:8]}"


def replay_settings(body: Mapping) -> dict[str, Any]:
    """What a ReplayJob's spec asks of the replay, as ``ReplayOptions`` fields (credentials and client
    properties aside): the one translation of the spec, which the Job's command and the progress reader share."""
    spec = body["spec"]
    source, target = spec["source"], spec["target"]
    span, rate = spec.get("range") or {}, spec.get("rateLimit") or {}
    bounds = {}
    for direction in ("from", "to"):
        given = span.get(direction) or {}
        bounds[f"{direction}_offset"] = given.get("offset")
        bounds[f"{direction}_time"] = parse_time(given["time"], f"range.{direction}.time") if "time" in given else None
    return {
        "store_url": source["storage"]["url"],
        "topic": source["topic"],
        "to_topic": target["topic"],
        "bootstrap_servers": target["bootstrapServers"],
        "replay_id": replay_id(body),
        "workers": spec.get("parallelism", 1),
        **bounds,
        "partitions": tuple(spec["partitions"]) if spec.get("partitions") else None,
        "partitioning": spec.get("partitioning", "preserve"),
        "rate_limit": rate.get("bytesPerSecond"),
        "records_per_second": rate.get("recordsPerSecond"),
        "exactly_once": bool(spec.get("exactlyOnce")),
        "provenance_headers": bool(spec.get("provenanceHeaders")),
        "create_topic": bool(target.get("createTopic")),
    }


# ``pyrostore replay`` flags whose names are not the ReplayOptions field's.
_REPLAY_FLAGS = {"store_url": "--store", "workers": "--parallelism"}


def replay_command(body: Mapping) -> list[str]:
    """The replay container's command: ``pyrostore replay`` with the ReplayJob's settings."""
    spec = body["spec"]
    command = ["pyrostore", "replay"]
    for name, value in replay_settings(body).items():
        flag = _REPLAY_FLAGS.get(name, f"--{name.replace('_', '-')}")
        if value is True:
            command.append(flag)
        elif isinstance(value, tuple):
            command += [flag, ",".join(map(str, value))]
        elif value is not None and value is not False:
            command += [flag, str(value)]
    command += ["--log-format", "json"]
    command += flag_pairs("-o", spec["source"]["storage"].get("options"))
    command += flag_pairs("-X", spec["target"].get("properties"))
    return command + pod_wiring(spec["source"]["storage"], spec["target"])[3]


def replay_job(body: Mapping, settings: OperatorSettings) -> Manifest:
    """The Job of a ReplayJob: one pod, or an Indexed Job of ``parallelism`` pods splitting the partitions."""
    spec = body["spec"]
    env_from, volumes, mounts, _ = pod_wiring(spec["source"]["storage"], spec["target"])
    container = workload_container("replay", replay_command(body), settings, spec, env_from, mounts)
    pod = {"spec": pod_spec(container, volumes, settings, restartPolicy="Never")}
    return _job(body, pod, spec.get("parallelism", 1))


def serve_job(body: Mapping, pod: Mapping) -> Manifest:
    """The Job of a serve-mode ReplayJob: one run of ``pod``, the consumer's pod template with its serve sidecar
    (:func:`pyrostore.operator.sidecar.serve_pod`); it succeeds when the consumer's containers exit 0."""
    return _job(body, pod, 1)


def _job(body: Mapping, pod: Mapping, parallelism: int) -> Manifest:
    meta = body["metadata"]
    labels = component_labels("replay", meta["name"], REPLAY_LABEL)
    pod_meta = dict(pod.get("metadata") or {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    job_spec: Manifest = {
        "backoffLimit": body["spec"].get("backoffLimit", 3),
        "completions": parallelism,
        "parallelism": parallelism,
        "template": {"metadata": pod_meta, "spec": pod["spec"]},
    }
    if parallelism > 1:
        # Each pod gets JOB_COMPLETION_INDEX from Kubernetes; `pyrostore replay` takes it as its worker index.
        job_spec["completionMode"] = "Indexed"
    return owned("batch/v1", "Job", job_name(meta["name"]), body, labels) | {"spec": job_spec}


def drifted(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` lost or changed anything ``desired`` sets (fields the server defaults are ignored).

    Lists of named objects (containers, env, volumes) match by name, as server-side apply merges them;
    other lists must be equal.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        return any(drifted(value, actual.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list):
            return True
        if all(isinstance(item, Mapping) and "name" in item for item in desired):
            by_name = {item.get("name"): item for item in actual if isinstance(item, Mapping)}
            return any(drifted(item, by_name.get(item["name"])) for item in desired)
        return len(desired) != len(actual) or any(drifted(d, a) for d, a in zip(desired, actual, strict=True))
    return desired != actual
