"""Pure builders of a TopicArchive's mirrors (``spec.mirrors``): one Deployment per mirror running ``pyrostore
mirror --follow`` from the archive into the mirror's store, which mirror Deployments are no longer wanted, and
what ``status.mirrors`` says of each.

Two stores, two sets of credentials: the source is wired as the archiver's (``storage.credentialsSecret`` as the
environment, ``AWS_*`` for S3), and environment credentials would apply to both sides. So the mirror's own Secret
is mounted as files at :data:`MIRROR_SECRET_DIR` and a target store option points at them: ``credentials_dir``
for S3 (a Secret with ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` keys, the shape of the archive's own),
``credentials_file`` for GCS (a service-account key file under ``credentialsSecret.key``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyrostore.index.commits import Commit
from pyrostore.mirror.decisions import lag
from pyrostore.operator.manifests import (
    ARCHIVE_LABEL,
    Manifest,
    component_labels,
    flag_pairs,
    owned,
    pod_spec,
    pod_wiring,
    selector_labels,
    workload_container,
)
from pyrostore.operator.settings import GROUP, OperatorSettings

MIRROR_COMPONENT = "mirror"
MIRROR_APP = f"pyrostore-{MIRROR_COMPONENT}"  # app.kubernetes.io/name of the mirror Deployments and their pods
MIRROR_LABEL = f"{GROUP}/mirror"  # the mirror's name, on its Deployment and pods
MIRROR_SECRET_DIR = "/var/run/secrets/pyrostore/mirror"
DEFAULT_INTERVAL = "10s"
DEFAULT_GCS_KEY = "key.json"
METRICS_PORT = 9102
_MAX_NAME = 63  # a Deployment's name kept a DNS label, as its pods' and ReplicaSets' names derive from it


def mirror_specs(body: Mapping) -> list[Mapping[str, Any]]:
    """The TopicArchive's mirrors, as ``spec.mirrors`` lists them (empty without the field)."""
    return list(body["spec"].get("mirrors") or [])


def mirror_of(body: Mapping, deployment_meta: Mapping) -> Mapping[str, Any] | None:
    """The mirror of ``spec.mirrors`` whose Deployment has this metadata (its mirror label and its name), or None
    when no listed mirror wants it."""
    name = (deployment_meta.get("labels") or {}).get(MIRROR_LABEL)
    found = next((m for m in mirror_specs(body) if m["name"] == name), None)
    if found is None or mirror_deployment_name(body["metadata"]["name"], found["name"]) != deployment_meta.get("name"):
        return None
    return found


def mirror_deployment_name(archive_name: str, mirror_name: str) -> str:
    """``<archive>-mirror-<mirror>``, or, when that is too long for a DNS label or not one (a dotted archive
    name), a prefix of the archive's name and a hash of both names."""
    suffix = f"-{MIRROR_COMPONENT}-{mirror_name}"
    name = f"{archive_name}{suffix}"
    if len(name) <= _MAX_NAME and "." not in name:
        return name
    digest = hashlib.sha256(f"{archive_name}/{mirror_name}".encode()).hexdigest()[:8]
    prefix = re.sub(r"[^a-z0-9-]", "-", archive_name)[: _MAX_NAME - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{prefix}-{digest}{suffix}"


def mirrors_selector(archive_name: str) -> str:
    """The label selector of every mirror Deployment of a TopicArchive."""
    return f"app.kubernetes.io/name={MIRROR_APP},{ARCHIVE_LABEL}={archive_name}"


def target_options(mirror: Mapping) -> dict[str, str]:
    """The target's store options: the mirror's, plus the option naming its mounted Secret (S3:
    ``credentials_dir``; GCS: ``credentials_file``, the Secret's key file; a folder needs none)."""
    options = {str(k): str(v) for k, v in (mirror.get("options") or {}).items()}
    secret = mirror.get("credentialsSecret")
    if secret is None:
        return options
    scheme = mirror["url"].split("://", 1)[0]
    if scheme == "s3":
        options["credentials_dir"] = MIRROR_SECRET_DIR
    elif scheme == "gs":
        options["credentials_file"] = f"{MIRROR_SECRET_DIR}/{secret.get('key') or DEFAULT_GCS_KEY}"
    return options


def mirror_command(body: Mapping, mirror: Mapping) -> list[str]:
    """The mirror container's command: ``pyrostore mirror --follow`` from the archive to the mirror's store."""
    spec = body["spec"]
    storage = spec["storage"]
    command = ["pyrostore", "mirror", storage["url"], mirror["url"], "--topic", spec["kafka"]["topic"]]
    command += ["--follow", "--interval", mirror.get("interval") or DEFAULT_INTERVAL]
    if mirror.get("rateLimit"):
        command += ["--rate-limit", str(mirror["rateLimit"])]
    command += ["--metrics-port", str(METRICS_PORT), "--log-format", "json"]
    command += flag_pairs("--source-option", storage.get("options"))
    return command + flag_pairs("--target-option", target_options(mirror))


def mirror_deployment(body: Mapping, mirror: Mapping, settings: OperatorSettings) -> Manifest:
    """The Deployment of one mirror: one pod (``suspend`` makes none), replaced with ``Recreate``; two mirrors
    into one target are safe (commits are created create-only) but copy everything twice."""
    spec, archive_name = body["spec"], body["metadata"]["name"]
    labels = component_labels(MIRROR_COMPONENT, archive_name, ARCHIVE_LABEL) | {MIRROR_LABEL: mirror["name"]}
    env_from, volumes, mounts, _ = pod_wiring(spec["storage"], {})
    if secret := mirror.get("credentialsSecret"):
        volumes.append({"name": "mirror-credentials", "secret": {"secretName": secret["name"]}})
        mounts.append({"name": "mirror-credentials", "mountPath": MIRROR_SECRET_DIR, "readOnly": True})
    resources = {"resources": mirror.get("resources")}
    container = workload_container(
        MIRROR_COMPONENT, mirror_command(body, mirror), settings, resources, env_from, mounts
    )
    container["ports"] = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    pod_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)}
    name = mirror_deployment_name(archive_name, mirror["name"])
    return owned("apps/v1", "Deployment", name, body, labels) | {
        "spec": {
            "replicas": 0 if spec.get("suspend") else 1,
            "selector": {"matchLabels": selector_labels(labels) | {MIRROR_LABEL: mirror["name"]}},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations},
                "spec": pod_spec(container, volumes, settings),
            },
        },
    }


def stale_mirrors(body: Mapping, deployments: list[Mapping]) -> list[str]:
    """The names of ``deployments`` that are this TopicArchive's mirror Deployments (labelled so and controlled
    by it) but no mirror in ``spec.mirrors`` wants: to be deleted. Anyone else's are never chosen."""
    meta = body["metadata"]
    wanted = {mirror_deployment_name(meta["name"], m["name"]) for m in mirror_specs(body)}
    stale = []
    for deployment in deployments:
        d_meta = deployment.get("metadata") or {}
        labels = d_meta.get("labels") or {}
        ours = labels.get("app.kubernetes.io/name") == MIRROR_APP and labels.get(ARCHIVE_LABEL) == meta["name"]
        owned_by_us = any(
            ref.get("uid") == meta["uid"] and ref.get("controller") for ref in d_meta.get("ownerReferences") or []
        )
        if ours and owned_by_us and d_meta.get("name") not in wanted:
            stale.append(d_meta["name"])
    return sorted(stale)


def partition_lag(
    source: Commit | None, target: Commit | None, oldest_missing: Commit | None, now: datetime
) -> tuple[int, float]:
    """How far one partition of the target lags, given each side's newest commit (the target's being one the
    source holds too, so the newest common one) and the source's oldest commit the target lacks: commits the
    source holds past the target's newest, and the seconds since that oldest one was committed (0 when none)."""
    pending = 0 if source is None else source.seq - (target.seq if target is not None else -1)
    return lag(max(pending, 0), oldest_missing.committed_at if oldest_missing else None, now)


def mirror_status(mirror: Mapping, lags: list[tuple[int, float]] | None, error: str | None = None) -> Manifest:
    """One entry of ``status.mirrors``: the mirror's name and URL, the commits the target lacks over all partitions
    and the age in seconds of the oldest of them (from ``lags``, one pair per partition; None: unknown), or why
    they are unknown. Unknown fields are left out rather than null: the API server drops nulls inside a
    merge-patched list anyway (and kopf would warn that the patch did not stick); the list is replaced whole at
    every refresh, so nothing stale stays."""
    entry: Manifest = {"name": mirror["name"], "url": mirror["url"]}
    if lags is not None:
        entry["lagCommits"] = sum(c for c, _ in lags)
        entry["lagSeconds"] = round(max((s for _, s in lags), default=0.0), 3)
    if error is not None:
        entry["error"] = error
    return entry
