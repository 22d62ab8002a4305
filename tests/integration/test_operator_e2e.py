"""End to end: the operator's workloads, their commands run as local processes (the stack has no kubelet),
against real Kafka and MinIO; status, kstatus, deletion of the archive, and no credential anywhere.
"""

from __future__ import annotations

import signal
import uuid

import pytest
from kubernetes import client

from e2e.stack import s3 as stack_s3
from e2e.stack.process import free_port
from pyrostore.layout import ROOT_PREFIX, head_key
from pyrostore.operator.conditions import kstatus
from tests.kafka_helpers import kafka_rows, produce_numbered
from tests.operator_helpers import (
    GROUP,
    VERSION,
    StatusRecorder,
    create_credentials_secret,
    create_custom,
    custom,
    everything_in,
    field_env,
    pods_of,
    replay_job,
    report_exit,
    run_container,
    s3_storage,
    statefulset_pod,
    topic_archive,
    topic_near_retention,
    wait_until,
)


@pytest.fixture(scope="module")
def s3_secret(crds, operator_namespace, s3_server) -> str:
    """The Secret of the stack's S3 credentials in the module's namespace."""
    create_credentials_secret(crds.api_client(), operator_namespace, "s3-credentials", s3_server)
    return "s3-credentials"


def _condition(body: dict, kind: str) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def _assert_no_credential(api, namespace: str, secret_value: str, *logs: str) -> None:
    written = everything_in(api, namespace)
    assert secret_value not in written, "a credential appears in a spec, status or event"
    for text in logs:
        assert text, "a log that should have lines is empty"
        assert secret_value not in text, "a credential appears in a log"


def test_archiver_statefulset_archives_and_status_reports_it(
    crds, operator_namespace, operator, kafka, s3_server, s3_secret, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    topic = new_topic(partitions=2)
    produce_numbered(kafka.bootstrap, topic, 300, partitions=2)
    prefix = f"operator-{uuid.uuid4().hex[:8]}"
    storage = s3_storage(s3_server, prefix)
    body = topic_archive(
        "e2e", kafka.bootstrap, topic, storage, segment={"age": "1s"}, metricsPort=free_port(), deletionPolicy="Delete"
    )
    recorder = StatusRecorder(api, ns, "topicarchives", "e2e")
    create_custom(api, ns, "topicarchives", body)

    starting = wait_until(
        lambda: (b := custom(api, ns, "topicarchives", "e2e")) and "conditions" in b.get("status", {}) and b,
        30,
        "the first status",
    )
    assert _condition(starting, "Reconciling")["status"] == "True"
    assert _condition(starting, "Reconciling")["reason"] == "Starting"
    assert kstatus(starting) == "InProgress"

    pod = statefulset_pod(api, ns, "e2e-archiver")
    archiver = run_container(api, ns, pod["spec"], tmp_path / "archiver.log", field_env(pod))
    try:

        def archived():
            b = custom(api, ns, "topicarchives", "e2e")
            parts = b.get("status", {}).get("partitions") or []
            done = len(parts) == 2 and all(p.get("archivedOffset") == p["highWatermark"] == 150 for p in parts)
            return done and b["status"]["lag"] == 0 and _condition(b, "Ready")["status"] == "True" and b

        done = wait_until(archived, 90, "the status to show everything archived")
        assert done["status"]["archivedRecords"] == 300
        assert kstatus(done) == "Current"

        # A spec change: observedGeneration follows the generation and kstatus returns to Current.
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, ns, "topicarchives", "e2e", {"spec": {"segment": {"age": "2s"}}}
        )
        wait_until(
            lambda: (
                (b := custom(api, ns, "topicarchives", "e2e"))["status"]["observedGeneration"] == 2
                and kstatus(b) == "Current"
            ),
            30,
            "generation 2 to be observed and Current",
        )
    finally:
        archiver.send_signal(signal.SIGTERM)
        assert archiver.wait(60) == 0
    recorder.stop()

    sequence = recorder.kstatus_sequence()
    statuses = [s for _, _, s in sequence]
    assert statuses[0] == "InProgress" and "Current" in statuses, sequence
    first_current = statuses.index("Current")
    assert all(s == "InProgress" for s in statuses[:first_current]), sequence
    assert sequence[-1][0:2] == (2, 2) and statuses[-1] == "Current", sequence
    assert "Failed" not in statuses, sequence
    ready = [v for v in recorder.versions if v.get("status", {}).get("conditions")]
    times = {_condition(v, "Ready")["lastTransitionTime"] for v in ready if _condition(v, "Ready")["status"] == "True"}
    assert len(times) == 1, "Ready's lastTransitionTime must stay put while Ready stays True"

    # deletionPolicy: Delete removes this archive's objects, and nothing of another topic or another prefix.
    s3 = stack_s3.client(s3_server)
    neighbours = [f"{prefix}/{head_key('another-topic', 0)}", f"elsewhere-{prefix}/{head_key(topic, 0)}"]
    for key in neighbours:
        s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"{}")
    assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/{ROOT_PREFIX}data/topic={topic}/")["KeyCount"]
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "e2e")
    wait_until(lambda: custom(api, ns, "topicarchives", "e2e") is None, 60, "the TopicArchive to be deleted")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/").get("Contents", [])]
    assert left == [neighbours[0]]
    s3.head_object(Bucket=s3_server.bucket, Key=neighbours[1])

    _assert_no_credential(api, ns, s3_server.secret_key, operator.log_text(), (tmp_path / "archiver.log").read_text())


def test_replay_job_runs_an_indexed_job_to_success(
    crds, operator_namespace, operator, kafka, s3_server, s3_secret, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    source, target = new_topic(partitions=2), new_topic(partitions=2)
    produce_numbered(kafka.bootstrap, source, 200, partitions=2)
    prefix = f"replay-{uuid.uuid4().hex[:8]}"
    storage = s3_storage(s3_server, prefix)

    # Archive the source with the archiver command a TopicArchive would run.
    archive_spec = topic_archive("replay-source", kafka.bootstrap, source, storage, segment={"age": "1s"})
    archive_spec["metadata"] |= {"namespace": ns, "uid": "0"}
    archive_spec["spec"]["metricsPort"] = free_port()
    from pyrostore.operator.manifests import archiver_statefulset
    from pyrostore.operator.settings import OperatorSettings

    pod_spec = archiver_statefulset(archive_spec, OperatorSettings())["spec"]["template"]["spec"]
    archiver = run_container(api, ns, pod_spec, tmp_path / "archiver.log", {"POD_NAME": "replay-source-archiver-0"})
    try:
        s3 = stack_s3.client(s3_server)

        def archived() -> bool:
            from pyrostore.archive import open_archive

            archive = open_archive(
                storage["url"],
                endpoint_url=s3_server.endpoint,
                access_key_id=s3_server.access_key,
                secret_access_key=s3_server.secret_key,
            )
            try:
                return all(archive.partition(source, p).next_offset == 100 for p in (0, 1))
            except Exception:
                return False

        wait_until(archived, 90, "the source topic to be archived", interval=1)
        assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{prefix}/")["KeyCount"]
    finally:
        archiver.send_signal(signal.SIGTERM)
        assert archiver.wait(60) == 0

    replay = replay_job("backfill", source, storage, kafka.bootstrap, target, parallelism=2)
    recorder = StatusRecorder(api, ns, "replayjobs", "backfill")
    create_custom(api, ns, "replayjobs", replay)
    job = wait_until(
        lambda: client.BatchV1Api(api).list_namespaced_job(ns, label_selector="pyrostore.io/replay-job=backfill").items,
        30,
        "the replay Job",
    )[0]
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 2, 2)
    assert job.metadata.owner_references[0].kind == "ReplayJob"
    wait_until(
        lambda: (
            (b := custom(api, ns, "replayjobs", "backfill")).get("status", {}).get("phase") in ("Pending", "Running")
            and b
        ),
        30,
        "the ReplayJob's first phase",
    )

    pods = wait_until(lambda: len(p := pods_of(api, ns, job.metadata.name)) == 2 and p, 30, "the Job's two pods")
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        pod_spec = api.sanitize_for_serialization(pod.spec)
        worker = run_container(api, ns, pod_spec, tmp_path / f"replay-{index}.log", {"JOB_COMPLETION_INDEX": index})
        assert worker.wait(120) == 0, (tmp_path / f"replay-{index}.log").read_text()[-3000:]
        report_exit(api, ns, pod, 0)

    def succeeded():
        b = custom(api, ns, "replayjobs", "backfill")
        return b.get("status", {}).get("phase") == "Succeeded" and b

    done = wait_until(succeeded, 60, "the ReplayJob to succeed")
    recorder.stop()
    progress = done["status"]["progress"]
    assert progress["recordsDone"] == progress["recordsTotal"] == 200
    assert progress["percent"] == "100%"
    assert _condition(done, "Ready")["status"] == "True"
    assert kstatus(done) == "Current"
    statuses = [s for _, _, s in recorder.kstatus_sequence()]
    assert statuses[0] == "InProgress" and statuses[-1] == "Current", statuses

    copied = kafka_rows(kafka.bootstrap, target, 2)
    assert sorted(len(rows) for rows in copied.values()) == [100, 100]
    _assert_no_credential(
        api,
        ns,
        s3_server.secret_key,
        operator.log_text(),
        (tmp_path / "replay-0.log").read_text(),
        (tmp_path / "replay-1.log").read_text(),
    )


def test_unarchived_records_near_retention_make_the_archive_at_risk(
    crds, operator_namespace, operator, kafka, s3_server, s3_secret
):
    api, ns = crds.api_client(), operator_namespace
    topic = topic_near_retention(kafka.bootstrap)
    storage = s3_storage(s3_server, f"risk-{uuid.uuid4().hex[:8]}")
    create_custom(api, ns, "topicarchives", topic_archive("at-risk", kafka.bootstrap, topic, storage))

    def at_risk():
        b = custom(api, ns, "topicarchives", "at-risk")
        return b.get("status", {}).get("conditions") and _condition(b, "Ready")["reason"] == "AtRisk" and b

    body = wait_until(at_risk, 30, "the AtRisk reason")
    assert body["status"]["partitions"][0]["atRisk"] is True
    assert body["status"]["lag"] == 5
    assert _condition(body, "Reconciling")["status"] == "True"
    assert kstatus(body) == "InProgress"


def test_a_failed_replay_job_is_failed_and_stalled(
    crds, operator_namespace, operator, kafka, s3_server, s3_secret, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    storage = s3_storage(s3_server, f"empty-{uuid.uuid4().hex[:8]}")  # nothing archived there: the replay fails
    replay = replay_job("doomed", "never-archived", storage, kafka.bootstrap, new_topic(), backoffLimit=0)
    create_custom(api, ns, "replayjobs", replay)
    pod = wait_until(lambda: pods_of(api, ns, "doomed-replay"), 30, "the Job's pod")[0]
    worker = run_container(api, ns, api.sanitize_for_serialization(pod.spec), tmp_path / "replay.log")
    exit_code = worker.wait(120)
    assert exit_code != 0
    report_exit(api, ns, pod, exit_code)

    def failed():
        b = custom(api, ns, "replayjobs", "doomed")
        return b.get("status", {}).get("phase") == "Failed" and b

    body = wait_until(failed, 60, "the ReplayJob to fail")
    assert _condition(body, "Stalled")["status"] == "True"
    assert _condition(body, "Ready")["status"] == "False"
    assert kstatus(body) == "Failed"
