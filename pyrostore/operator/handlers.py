"""The kopf handlers: thin and idempotent, each builds the desired state and applies it.

TopicArchive: create, update and resume apply the archiver Deployment (server-side apply) and refresh the
status; a timer refreshes status and corrects drift; Deployment events restore a deleted or edited one.
ReplayJob: the Job is created once (in serve mode, once its TopicArchive exists); a timer follows the Job and
the replay's progress until it ends.
Children carry controller owner references, so the garbage collector removes them with their owner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pyrostore.errors import PyrostoreError
from pyrostore.operator import conditions, manifests, replay_status, sidecar, status
from pyrostore.operator.deletion import delete_topic_archive
from pyrostore.operator.settings import GROUP, MANAGER, VERSION, OperatorSettings

SETTINGS = OperatorSettings.from_env()
_API: client.ApiClient | None = None


def api() -> client.ApiClient:
    """The Kubernetes client: in-cluster credentials in a pod, the kubeconfig elsewhere."""
    global _API
    if _API is None:
        try:
            config.load_incluster_config()
            _API = client.ApiClient()
        except config.ConfigException:
            _API = config.new_client_from_config()
    return _API


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations and make watches time out instead of hanging."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 75
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING  # events for problems only; status carries the rest


def _apply(manifest: Mapping) -> None:
    """Server-side apply, taking back fields someone else changed."""
    client.AppsV1Api(api()).patch_namespaced_deployment(
        manifest["metadata"]["name"],
        manifest["metadata"]["namespace"],
        dict(manifest),
        field_manager=MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def _read(read, *args: str) -> Any:
    try:
        return api().sanitize_for_serialization(read(*args))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def ensure_deployment(body: Mapping, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Create or restore the archiver Deployment when it is missing or differs from the TopicArchive."""
    desired = manifests.archiver_deployment(body, SETTINGS)
    name, namespace = desired["metadata"]["name"], desired["metadata"]["namespace"]
    actual = _read(client.AppsV1Api(api()).read_namespaced_deployment, name, namespace)
    if actual is None or manifests.drifted(desired, actual):
        _apply(desired)
        logger.info(f"{'created' if actual is None else 'updated'} Deployment {name}")


def _write_status(patch: kopf.Patch, body: Mapping, new: list[conditions.Condition], **fields: Any) -> None:
    generation = body["metadata"].get("generation", 1)
    old = (body.get("status") or {}).get("conditions")
    patch.status.update(fields)
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = conditions.stamp(new, old, generation)


def refresh_archive_status(body: Mapping, patch: kopf.Patch) -> None:
    """Read the archive and Kafka and write partitions, totals and conditions into the status."""
    spec, namespace = body["spec"], body["metadata"]["namespace"]
    try:
        store = status.open_resource_store(api(), namespace, spec["storage"])
        kafka = status.resource_kafka_config(api(), namespace, spec["kafka"])
    except (PyrostoreError, ValueError) as exc:
        seen = conditions.ArchiveObservation(error_reason="ConfigurationInvalid", error=str(exc))
    else:
        try:
            seen = status.observe_archive(store, kafka, spec["kafka"]["topic"], SETTINGS.at_risk_fraction)
        finally:
            store.close()
    _write_status(
        patch,
        body,
        conditions.archive_conditions(bool(spec.get("suspend")), seen),
        deployment=manifests.deployment_name(body["metadata"]["name"]),
        partitions=[p.as_status() for p in seen.partitions],
        lag=sum(p.lag for p in seen.partitions),
        archivedRecords=sum(p.records for p in seen.partitions),
    )


@kopf.on.resume(GROUP, VERSION, "topicarchives")
@kopf.on.create(GROUP, VERSION, "topicarchives")
@kopf.on.update(GROUP, VERSION, "topicarchives", field="spec")
def reconcile_archive(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Apply the archiver Deployment for this generation, then refresh the status."""
    ensure_deployment(body, logger)
    refresh_archive_status(body, patch)


@kopf.timer(GROUP, VERSION, "topicarchives", interval=SETTINGS.status_interval, initial_delay=SETTINGS.status_interval)
def refresh_archive(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Periodically: correct drift of the Deployment and refresh the status."""
    ensure_deployment(body, logger)
    refresh_archive_status(body, patch)


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={"app.kubernetes.io/managed-by": MANAGER, manifests.ARCHIVE_LABEL: kopf.PRESENT},
)
def restore_deployment(event: Mapping, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A managed Deployment was deleted or edited: restore it from its TopicArchive (unless that is going)."""
    namespace, owner = body["metadata"]["namespace"], body["metadata"]["labels"][manifests.ARCHIVE_LABEL]
    objects = client.CustomObjectsApi(api())
    archive = _read(objects.get_namespaced_custom_object, GROUP, VERSION, namespace, "topicarchives", owner)
    if archive is None or archive["metadata"].get("deletionTimestamp"):
        return
    if event.get("type") == "DELETED" or manifests.drifted(manifests.archiver_deployment(archive, SETTINGS), body):
        ensure_deployment(archive, logger)  # reads it again: the event may be older than the last apply


def _deletes_archive(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, "topicarchives", when=_deletes_archive)
def delete_archive(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """``deletionPolicy: Delete``: stop the archiver, then remove the topic's objects under the archive's prefix."""
    name, namespace = manifests.deployment_name(body["metadata"]["name"]), body["metadata"]["namespace"]
    apps, core = client.AppsV1Api(api()), client.CoreV1Api(api())
    if _read(apps.read_namespaced_deployment, name, namespace) is not None:
        apps.delete_namespaced_deployment(name, namespace, propagation_policy="Foreground")
    selector = f"{manifests.ARCHIVE_LABEL}={body['metadata']['name']}"
    if core.list_namespaced_pod(namespace, label_selector=selector).items:
        raise kopf.TemporaryError("waiting for the archiver's pods to stop before deleting the archive", delay=5)
    try:
        store = status.open_resource_store(api(), namespace, body["spec"]["storage"])
    except PyrostoreError as exc:
        raise kopf.TemporaryError(f"cannot open the archive to delete it: {exc}", delay=30) from exc
    try:
        deleted = delete_topic_archive(store, body["spec"]["kafka"]["topic"])
    finally:
        store.close()
    logger.info(f"deleted {deleted} object(s) of the archive of {body['spec']['kafka']['topic']} in {store.url}")


SIDECAR = sidecar.SidecarSettings.from_env()


class JobBlocked(Exception):
    """The Job of a ReplayJob cannot be made yet; ``reason`` and the message go into its conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def desired_job(body: Mapping) -> manifests.Manifest:
    """The Job a ReplayJob wants: the replay's, or in serve mode its consumer beside the TopicArchive's sidecar.
    Raises JobBlocked when the serve-mode TopicArchive is missing or its sidecar does not fit the pod."""
    if "serve" not in body["spec"]:
        return manifests.replay_job(body, SETTINGS)
    name, namespace = body["spec"]["serve"]["topicArchive"], body["metadata"]["namespace"]
    objects = client.CustomObjectsApi(api())
    archive = _read(objects.get_namespaced_custom_object, GROUP, VERSION, namespace, "topicarchives", name)
    if archive is None:
        raise JobBlocked("TopicArchiveNotFound", sidecar.missing_archive(namespace, name, "spec.serve.topicArchive"))
    try:
        return manifests.serve_job(body, sidecar.serve_pod(body, archive, SETTINGS, SIDECAR))
    except sidecar.SidecarRefused as exc:
        raise JobBlocked("ConfigurationInvalid", str(exc)) from exc


def ensure_job(body: Mapping, logger: logging.Logger | logging.LoggerAdapter) -> Mapping | None:
    """The ReplayJob's Job, created if it is missing and the replay has not ended. Raises JobBlocked."""
    name, namespace = manifests.job_name(body["metadata"]["name"]), body["metadata"]["namespace"]
    batch = client.BatchV1Api(api())
    job = _read(batch.read_namespaced_job, name, namespace)
    if job is None and (body.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        desired = desired_job(body)
        try:
            job = api().sanitize_for_serialization(
                batch.create_namespaced_job(namespace, client.V1Job.model_validate(desired))
            )
            logger.info(f"created Job {name}")
        except ApiException as exc:
            if exc.status != 409:  # 409: the timer and the create handler raced; the other one created it
                raise
            job = _read(batch.read_namespaced_job, name, namespace)
    return job


def refresh_replay_status(body: Mapping, patch: kopf.Patch, job: Mapping | None) -> None:
    """Write the phase, progress and conditions of a ReplayJob from its Job and the replay's checkpoint (serve
    mode has no checkpoints: its consumer's progress is its own)."""
    progress = None if "serve" in body["spec"] else replay_status.read_progress(api(), body)
    phase, message = conditions.replay_phase(job, progress.get("recordsDone", 0) if progress else 0)
    fields: dict[str, Any] = {"phase": phase, "job": manifests.job_name(body["metadata"]["name"])}
    if progress:
        fields["progress"] = progress
    job_status = (job or {}).get("status") or {}
    for key in ("startTime", "completionTime"):
        if job_status.get(key):
            fields[key] = job_status[key]
    _write_status(patch, body, conditions.replay_conditions(phase, message), **fields)


def follow_job(body: Mapping, patch: kopf.Patch, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Keep the ReplayJob's Job and write its status, or why the Job cannot be made yet."""
    try:
        job = ensure_job(body, logger)
    except JobBlocked as blocked:
        name = manifests.job_name(body["metadata"]["name"])
        _write_status(patch, body, conditions.replay_blocked(blocked.reason, str(blocked)), phase="Pending", job=name)
        return
    refresh_replay_status(body, patch, job)


@kopf.on.resume(GROUP, VERSION, "replayjobs")
@kopf.on.create(GROUP, VERSION, "replayjobs")
def start_replay(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Create the replay Job and write the first status."""
    follow_job(body, patch, logger)


def _replay_unfinished(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    ended = status.get("phase") in ("Succeeded", "Failed")
    return not ended or status.get("observedGeneration") != meta.get("generation")


@kopf.timer(
    GROUP,
    VERSION,
    "replayjobs",
    interval=SETTINGS.status_interval,
    initial_delay=SETTINGS.status_interval,
    when=_replay_unfinished,
)
def follow_replay(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Until the replay ends: keep its Job and follow its phase and progress."""
    follow_job(body, patch, logger)
