"""The kopf handlers: thin and idempotent, each builds the desired state and applies it.

TopicArchive: create, update and resume apply the archiver StatefulSet (server-side apply; an older operator's
archiver Deployment is removed), with ``spec.serve`` the serve Deployment and its Service, with ``spec.iceberg`` the
sync Deployment (each removed again without its field), with ``spec.mirrors`` a mirror Deployment each (removed
with its entry), and refresh the status; a timer refreshes status and corrects drift; StatefulSet, Deployment and
Service events restore a deleted or edited one.
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
from pyrostore.operator import conditions, endpoint, iceberg, manifests, mirrors, replay_status, sidecar, status
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


def _calls(kind: str) -> tuple[Any, Any, Any]:
    """read, patch and delete of a kind of child the operator applies."""
    if kind == "Service":
        core = client.CoreV1Api(api())
        return core.read_namespaced_service, core.patch_namespaced_service, core.delete_namespaced_service
    apps = client.AppsV1Api(api())
    if kind == "StatefulSet":
        return (
            apps.read_namespaced_stateful_set,
            apps.patch_namespaced_stateful_set,
            apps.delete_namespaced_stateful_set,
        )
    return apps.read_namespaced_deployment, apps.patch_namespaced_deployment, apps.delete_namespaced_deployment


def _apply(manifest: Mapping) -> Any:
    """Server-side apply, taking back fields someone else changed; the object as the server stored it."""
    applied = _calls(manifest["kind"])[1](
        manifest["metadata"]["name"],
        manifest["metadata"]["namespace"],
        dict(manifest),
        field_manager=MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return api().sanitize_for_serialization(applied)


def _read(read, *args: str) -> Any:
    try:
        return api().sanitize_for_serialization(read(*args))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_topic_archive(namespace: str, name: str) -> Any:
    """A TopicArchive as the API returns it, or None when there is none of that name. Raises ApiException."""
    objects = client.CustomObjectsApi(api())
    return _read(objects.get_namespaced_custom_object, GROUP, VERSION, namespace, "topicarchives", name)


Logger = logging.Logger | logging.LoggerAdapter


def _ensure(desired: Mapping, logger: Logger) -> Any:
    """Create or restore a child when it is missing or differs from ``desired``; the live object."""
    kind, name, namespace = desired["kind"], desired["metadata"]["name"], desired["metadata"]["namespace"]
    actual = _read(_calls(kind)[0], name, namespace)
    if actual is None or manifests.drifted(desired, actual):
        done = "created" if actual is None else "updated"
        if actual is not None and kind == "Service":
            # Apply merges a Service's ports by (port, protocol): a hand-changed port would stay beside ours, under
            # our port's name, which the server refuses. A merge patch replaces the list first.
            ports = {"spec": {"ports": desired["spec"]["ports"]}}
            _calls(kind)[1](name, namespace, ports, field_manager=MANAGER, _content_type="application/merge-patch+json")
        actual = _apply(desired)
        logger.info(f"{done} {kind} {name}")
    return actual


def ensure_archiver(body: Mapping, logger: Logger) -> None:
    """Create or restore the archiver StatefulSet when it is missing or differs from the TopicArchive, then remove
    the archiver Deployment an older operator made for it (so the two never share the group for long)."""
    _ensure(manifests.archiver_statefulset(body, SETTINGS), logger)
    _remove_owned("Deployment", manifests.legacy_deployment_name(body["metadata"]["name"]), body, logger)


def _remove_owned(kind: str, name: str, owner: Mapping, logger: Logger) -> None:
    """Delete a child this TopicArchive controls, if it exists (never a same-named object of someone else)."""
    read, _, delete = _calls(kind)
    namespace, uid = owner["metadata"]["namespace"], owner["metadata"]["uid"]
    actual = _read(read, name, namespace)
    refs = (actual or {}).get("metadata", {}).get("ownerReferences") or []
    if any(ref.get("uid") == uid and ref.get("controller") for ref in refs):
        try:
            delete(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        logger.info(f"deleted {kind} {name}")


def ensure_serve(body: Mapping, logger: Logger) -> dict[str, Any] | None:
    """Apply the serve Deployment and Service of ``spec.serve``, or remove them without it; ``status.serve``."""
    name = endpoint.serve_name(body["metadata"]["name"])
    if not endpoint.serving(body):
        for kind in ("Service", "Deployment"):
            _remove_owned(kind, name, body, logger)
        return None
    deployment = _ensure(endpoint.serve_deployment(body, SETTINGS), logger)
    _ensure(endpoint.serve_service(body), logger)
    return endpoint.serve_status(body, deployment)


def ensure_iceberg(body: Mapping, logger: Logger) -> dict[str, Any] | None:
    """Apply the sync Deployment of ``spec.iceberg``, or remove it without it; ``status.iceberg``."""
    if not iceberg.syncing(body):
        _remove_owned("Deployment", iceberg.sync_name(body["metadata"]["name"]), body, logger)
        return None
    _ensure(iceberg.sync_deployment(body, SETTINGS), logger)
    from pyrostore.operator.iceberg_status import observe_iceberg  # pyiceberg only for archives with a table

    return observe_iceberg(api(), body["metadata"]["namespace"], body)


def ensure_mirrors(body: Mapping, logger: Logger) -> list[dict[str, Any]] | None:
    """Apply a Deployment for each of ``spec.mirrors`` and remove this archive's mirror Deployments that no listed
    mirror wants; ``status.mirrors`` (None without mirrors)."""
    for mirror in mirrors.mirror_specs(body):
        _ensure(mirrors.mirror_deployment(body, mirror, SETTINGS), logger)
    meta = body["metadata"]
    listed = client.AppsV1Api(api()).list_namespaced_deployment(
        meta["namespace"], label_selector=mirrors.mirrors_selector(meta["name"])
    )
    for name in mirrors.stale_mirrors(body, api().sanitize_for_serialization(listed)["items"]):
        _remove_owned("Deployment", name, body, logger)
    if not mirrors.mirror_specs(body):
        return None
    from pyrostore.operator.mirror_status import observe_mirrors

    return observe_mirrors(api(), meta["namespace"], body)


def _write_status(patch: kopf.Patch, body: Mapping, new: list[conditions.Condition], **fields: Any) -> None:
    generation = body["metadata"].get("generation", 1)
    old = (body.get("status") or {}).get("conditions")
    patch.status.update(fields)
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = conditions.stamp(new, old, generation)


def refresh_archive_status(
    body: Mapping,
    patch: kopf.Patch,
    served: Mapping | None = None,
    synced: Mapping | None = None,
    mirrored: list | None = None,
) -> None:
    """Read the archive and Kafka and write partitions, totals, conditions, the endpoint, the Iceberg table's
    last sync and the mirrors' lag into the status."""
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
        statefulSet=manifests.archiver_name(body["metadata"]["name"]),
        partitions=[p.as_status() for p in seen.partitions],
        lag=sum(p.lag for p in seen.partitions),
        archivedRecords=sum(p.records for p in seen.partitions),
        serve=served,  # None removes it
        iceberg=synced,
        mirrors=mirrored,
    )


@kopf.on.resume(GROUP, VERSION, "topicarchives")
@kopf.on.create(GROUP, VERSION, "topicarchives")
@kopf.on.update(GROUP, VERSION, "topicarchives", field="spec")
def reconcile_archive(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Apply the archiver StatefulSet (and the endpoint's children) for this generation, then refresh the status."""
    ensure_archiver(body, logger)
    served, synced = ensure_serve(body, logger), ensure_iceberg(body, logger)
    refresh_archive_status(body, patch, served, synced, ensure_mirrors(body, logger))


@kopf.timer(GROUP, VERSION, "topicarchives", interval=SETTINGS.status_interval, initial_delay=SETTINGS.status_interval)
def refresh_archive(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Periodically: correct drift of the children and refresh the status."""
    ensure_archiver(body, logger)
    served, synced = ensure_serve(body, logger), ensure_iceberg(body, logger)
    refresh_archive_status(body, patch, served, synced, ensure_mirrors(body, logger))


_ARCHIVER_APP = "pyrostore-archiver"  # app.kubernetes.io/name of the archiver StatefulSet (and legacy Deployment)


def _restore(kind: str, event: Mapping, body: kopf.Body, logger: Logger) -> None:
    """A managed child was deleted or edited: restore it from its TopicArchive with the builder its
    ``app.kubernetes.io/name`` names (unless the TopicArchive is going), or remove a serve, sync or mirror child
    whose field (or entry) the spec no longer has, or an archiver Deployment of an older operator."""
    meta = body["metadata"]
    app = meta["labels"].get("app.kubernetes.io/name")
    if app not in (_ARCHIVER_APP, endpoint.SERVE_APP, iceberg.ICEBERG_APP, mirrors.MIRROR_APP):
        return  # not a child these handlers keep
    archive = read_topic_archive(meta["namespace"], meta["labels"][manifests.ARCHIVE_LABEL])
    if archive is None or archive["metadata"].get("deletionTimestamp"):
        return
    if app == _ARCHIVER_APP and kind == "Deployment":
        if event.get("type") != "DELETED":
            _remove_owned(kind, meta["name"], archive, logger)
        return
    if app == _ARCHIVER_APP:
        desired = manifests.archiver_statefulset(archive, SETTINGS)
    elif app == iceberg.ICEBERG_APP:
        if not iceberg.syncing(archive):
            if event.get("type") != "DELETED":
                _remove_owned(kind, meta["name"], archive, logger)
            return
        desired = iceberg.sync_deployment(archive, SETTINGS)
    elif app == mirrors.MIRROR_APP:
        mirror = mirrors.mirror_of(archive, meta)
        if mirror is None:
            if event.get("type") != "DELETED":
                _remove_owned(kind, meta["name"], archive, logger)
            return
        desired = mirrors.mirror_deployment(archive, mirror, SETTINGS)
    elif not endpoint.serving(archive):
        if event.get("type") != "DELETED":
            _remove_owned(kind, meta["name"], archive, logger)
        return
    elif kind == "Service":
        desired = endpoint.serve_service(archive)
    else:
        desired = endpoint.serve_deployment(archive, SETTINGS)
    if event.get("type") == "DELETED" or manifests.drifted(desired, body):
        _ensure(desired, logger)  # reads it again: the event may be older than the last apply


_MANAGED: dict[str, Any] = {  # the children of TopicArchives
    "app.kubernetes.io/managed-by": MANAGER,
    manifests.ARCHIVE_LABEL: kopf.PRESENT,
}


@kopf.on.event("apps", "v1", "statefulsets", labels=_MANAGED)
def restore_statefulset(event: Mapping, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A TopicArchive's archiver StatefulSet was deleted or edited: restore it."""
    _restore("StatefulSet", event, body, logger)


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
def restore_deployment(event: Mapping, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A TopicArchive's Deployment (serve or sync) was deleted or edited: restore it from its own builder; an
    archiver Deployment of an older operator is removed."""
    _restore("Deployment", event, body, logger)


@kopf.on.event("v1", "services", labels=_MANAGED)
def restore_service(event: Mapping, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A TopicArchive's serve Service was deleted or edited: restore it."""
    _restore("Service", event, body, logger)


def _deletes_archive(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, "topicarchives", when=_deletes_archive)
def delete_archive(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """``deletionPolicy: Delete``: stop the archiver, the endpoint, the sync and the mirrors (their copies stay),
    then remove the topic's objects
    under the archive's prefix."""
    namespace, archive_name = body["metadata"]["namespace"], body["metadata"]["name"]
    core = client.CoreV1Api(api())
    children = (
        ("StatefulSet", manifests.archiver_name(archive_name)),
        ("Deployment", endpoint.serve_name(archive_name)),
        ("Deployment", iceberg.sync_name(archive_name)),
        *(("Deployment", mirrors.mirror_deployment_name(archive_name, m["name"])) for m in mirrors.mirror_specs(body)),
    )
    for kind, name in children:
        read, _, delete = _calls(kind)
        if _read(read, name, namespace) is not None:
            delete(name, namespace, propagation_policy="Foreground")
    _remove_owned("Deployment", manifests.legacy_deployment_name(archive_name), body, logger)
    selector = f"{manifests.ARCHIVE_LABEL}={archive_name}"  # archiver, serve, sync and mirror pods alike
    if core.list_namespaced_pod(namespace, label_selector=selector).items:
        raise kopf.TemporaryError("waiting for the archive's pods to stop before deleting the archive", delay=5)
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
    archive = read_topic_archive(namespace, name)
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
