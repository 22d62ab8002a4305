"""Argo CD's health scripts (the chart's Lua files, run by gopher-lua as Argo CD runs them) and kstatus (its own
code) on the objects the operator really writes: every state of a TopicArchive and a ReplayJob, as the API server
returned them, against the stack's Kafka and MinIO. The table they must match is docs/operator.md's.
"""

from __future__ import annotations

import subprocess
import tarfile
import uuid

import pytest
from kubernetes import client

from e2e.stack import builds, health
from pyrostore.operator.conditions import (
    PHASES,
    ArchiveObservation,
    PartitionState,
    archive_conditions,
    kstatus,
    replay_conditions,
    stamp,
)
from tests.consumer_helpers import S3Archive, create_topic, delete_head
from tests.health_helpers import CHART, EXPECTED, SCRIPTS, assert_health
from tests.kafka_helpers import produce_numbered
from tests.operator_helpers import (
    GROUP,
    VERSION,
    StatusRecorder,
    create_credentials_secret,
    create_custom,
    custom,
    pods_of,
    replay_job,
    report_exit,
    run_container,
    s3_storage,
    topic_archive,
    topic_near_retention,
    wait_until,
)

_ERRORS = ("KafkaUnavailable", "TopicNotFound", "StorageUnavailable", "ConfigurationInvalid")


def _resource(kind: str, status: dict | None, generation: int = 1) -> dict:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": generation, "uid": "0"},
        "spec": {},
    }
    return body | ({"status": status} if status is not None else {})


def _archive(conditions: list[dict], generation: int = 1, observed: int = 1) -> dict:
    status = {"observedGeneration": observed, "conditions": stamp(conditions, None, observed)}
    return _resource("TopicArchive", status, generation)


def test_every_status_the_operator_can_write_reads_as_documented():
    """Statuses from the operator's own condition builders, one per reason and phase (no server needed)."""
    seen = ArchiveObservation
    archives = [
        _resource("TopicArchive", None),
        _archive(archive_conditions(False, seen([PartitionState(0, None, 0, 10)]))),  # Starting
        _archive(archive_conditions(False, seen([PartitionState(0, 10, 0, 10)])), generation=2),  # behind
        _archive(archive_conditions(False, seen([PartitionState(0, 10, 0, 12)]))),  # Archiving
        _archive(archive_conditions(False, seen([PartitionState(0, 3, 0, 10, at_risk=True)]))),
        _archive(archive_conditions(False, seen([PartitionState(0, 3, 5, 10)]))),  # HistoryLost
        _archive(archive_conditions(True, seen([PartitionState(0, 10, 0, 10)]))),  # Suspended
        *(_archive(archive_conditions(False, seen(error_reason=r, error="it broke"))) for r in _ERRORS),
    ]
    replays = [_resource("ReplayJob", None)]
    progress = {"recordsTotal": 10, "recordsDone": 4, "bytesTotal": 80, "bytesDone": 32, "percent": "40%"}
    for phase in PHASES:
        conditions = stamp(replay_conditions(phase, phase.lower()), None, 1)
        status = {"observedGeneration": 1, "phase": phase, "conditions": conditions}
        replays += [_resource("ReplayJob", status), _resource("ReplayJob", status | {"progress": progress})]
    replays.append(_resource("ReplayJob", replays[-1]["status"], generation=2))
    covered = assert_health(archives + replays)
    assert covered == {(kind, row) for kind, rows in EXPECTED.items() for row in rows}

    # Argo CD does not run health scripts on an object being deleted; kstatus calls it Terminating.
    for body in (archives[3], replays[-2]):
        deleting = {**body, "metadata": {**body["metadata"], "deletionTimestamp": "2026-11-24T10:00:00Z"}}
        assert health.evaluate([deleting], SCRIPTS)[0].kstatus.status == kstatus(deleting) == "Terminating"


def test_the_chart_package_carries_the_scripts(tmp_path):
    try:
        helm = builds.helm()
    except builds.BuildError as exc:
        pytest.fail(f"cannot build helm: {exc}", pytrace=False)
    done = subprocess.run([helm, "package", CHART, "-d", tmp_path], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(next(tmp_path.glob("pyrostore-*.tgz"))) as package:
        for path in SCRIPTS.values():
            packed = package.extractfile(f"pyrostore/{path.relative_to(CHART)}")
            assert packed is not None and packed.read() == path.read_bytes(), path


@pytest.fixture(scope="module")
def archived(crds, operator_namespace, kafka, s3_server, tmp_path_factory) -> tuple[str, dict]:
    """A topic of 50 records archived to its end by ``pyrostore archive``, and a spec's ``storage`` for that
    archive (its credentials in the module namespace's Secret ``s3-credentials``)."""
    create_credentials_secret(crds.api_client(), operator_namespace, "s3-credentials", s3_server)
    topic = create_topic(kafka.bootstrap)
    produce_numbered(kafka.bootstrap, topic, 50)
    archive = S3Archive(s3_server)
    archive.archive(kafka.bootstrap, topic, 1, tmp_path_factory.mktemp("health") / "archiver.log")
    return topic, s3_storage(s3_server, archive.url.removeprefix(f"s3://{s3_server.bucket}/"))


class _Resources:
    """Custom resources of one kind a test creates and changes, with every version of each the API returned."""

    def __init__(self, api: client.ApiClient, namespace: str, plural: str) -> None:
        self.api, self.namespace, self.plural = api, namespace, plural
        self.recorders: list[StatusRecorder] = []
        self.returned: list[dict] = []

    def create(self, body: dict) -> None:
        """Create a resource, watching its versions from before its creation."""
        self.recorders.append(StatusRecorder(self.api, self.namespace, self.plural, body["metadata"]["name"]))
        self.returned.append(create_custom(self.api, self.namespace, self.plural, body))

    def patch(self, name: str, spec: dict) -> None:
        """Patch a resource's spec (the answer has the new generation beside the old status)."""
        objects = client.CustomObjectsApi(self.api)
        answer = objects.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, self.plural, name, spec)
        self.returned.append(answer)

    def wait(self, name: str, what: str, test) -> dict:
        """Wait until the resource, with its generation observed, passes ``test``; return it."""

        def reached():
            body = custom(self.api, self.namespace, self.plural, name)
            status = body.get("status") or {}
            return status.get("observedGeneration") == body["metadata"]["generation"] and test(status) and body

        return wait_until(reached, 60, f"{name} to be {what}")

    def versions(self) -> list[dict]:
        """Every version seen: the API's answers to create and patch, and each one its watches sent."""
        for recorder in self.recorders:
            recorder.stop()
        return self.returned + [version for recorder in self.recorders for version in recorder.versions]


def _ready(reason: str):
    return lambda status: any(c["type"] == "Ready" and c["reason"] == reason for c in status.get("conditions") or [])


def test_topic_archive_health_follows_the_operator(crds, operator_namespace, operator, kafka, s3_server, archived):
    api, ns = crds.api_client(), operator_namespace
    topic, storage = archived
    archives = _Resources(api, ns, "topicarchives")

    archives.create(topic_archive("done", kafka.bootstrap, topic, storage))
    fresh = create_topic(kafka.bootstrap)
    produce_numbered(kafka.bootstrap, fresh, 5)
    elsewhere = s3_storage(s3_server, f"health-{uuid.uuid4().hex[:8]}")
    archives.create(topic_archive("starting", kafka.bootstrap, fresh, elsewhere))  # no archiver ever runs
    unreadable = s3_storage(s3_server, "health-unreadable", secret="gone")  # no such Secret
    archives.create(topic_archive("unreadable", kafka.bootstrap, fresh, unreadable))
    risky = topic_near_retention(kafka.bootstrap)
    archives.create(topic_archive("at-risk", kafka.bootstrap, risky, elsewhere))

    archives.wait("done", "archiving", _ready("Archiving"))
    archives.patch("done", {"spec": {"suspend": True}})
    archives.wait("done", "suspended", _ready("Suspended"))
    archives.patch("done", {"spec": {"suspend": False}})
    archives.wait("done", "archiving again", _ready("Archiving"))
    # Kafka deletes records the archive never got (the archiver StatefulSet's pod is not run here).
    produce_numbered(kafka.bootstrap, topic, 10, start=50)
    delete_head(kafka.bootstrap, topic, {0: 60})
    archives.wait("done", "HistoryLost", _ready("HistoryLost"))
    archives.wait("starting", "starting", _ready("Starting"))
    archives.wait("unreadable", "stalled", _ready("ConfigurationInvalid"))
    archives.wait("at-risk", "at risk", _ready("AtRisk"))

    covered = {row for _, row in assert_health(archives.versions())}
    stalled = {"HistoryLost", "ConfigurationInvalid"}
    assert covered >= {"unobserved", "behind", "Starting", "Archiving", "Suspended", "AtRisk"} | stalled, covered


def test_replay_job_health_follows_the_operator(
    crds, operator_namespace, operator, kafka, s3_server, archived, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    topic, storage = archived
    replays = _Resources(api, ns, "replayjobs")

    replays.create(replay_job("copy", topic, storage, kafka.bootstrap, new_topic()))
    nowhere = s3_storage(s3_server, f"empty-{uuid.uuid4().hex[:8]}")
    replays.create(replay_job("doomed", "never-archived", nowhere, kafka.bootstrap, new_topic(), backoffLimit=0))

    pod = wait_until(lambda: pods_of(api, ns, "copy-replay"), 30, "the copy's pod")[0]
    worker = run_container(api, ns, api.sanitize_for_serialization(pod.spec), tmp_path / "replay.log")
    assert worker.wait(120) == 0, (tmp_path / "replay.log").read_text()[-3000:]
    report_exit(api, ns, pod, 0)
    # The doomed replay's container is not run: its pod reports what a kubelet reports for a container exiting 1.
    report_exit(api, ns, wait_until(lambda: pods_of(api, ns, "doomed-replay"), 30, "the doomed pod")[0], 1)
    replays.wait("copy", "Succeeded", lambda status: status.get("phase") == "Succeeded")
    replays.wait("doomed", "Failed", lambda status: status.get("phase") == "Failed")

    covered = {row for _, row in assert_health(replays.versions())}
    assert covered >= {"unobserved", "Succeeded", "Failed"}, covered
    assert covered & {"Pending", "Running"}, covered
