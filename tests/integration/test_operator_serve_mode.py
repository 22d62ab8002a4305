"""ReplayJob serve mode against the real API server and Job controller: the operator makes a Job whose pod runs the
user's consumer (kcat) beside the ``pyrostore serve`` sidecar of a TopicArchive. With no kubelet, the test runs the
pod's two commands as local processes (the sidecar's, then the consumer's) and reports the pod's end as a kubelet
would; the ReplayJob follows the Job: Succeeded when the consumer exits 0, Failed and Stalled when it does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.stack import clients
from e2e.stack.process import free_port
from pyrostore.operator.conditions import kstatus
from tests.consumer_helpers import S3Archive, create_topic, delete_head
from tests.kafka_helpers import kafka_rows, produce_numbered
from tests.operator_helpers import (
    GROUP,
    VERSION,
    create_credentials_secret,
    create_custom,
    custom,
    report_pod_end,
    run_container,
    topic_archive,
    wait_until,
)

SIDECAR = "pyrostore-serve"


@pytest.fixture(scope="module")
def archived(crds, operator_namespace, kafka, s3_server, tmp_path_factory) -> tuple[str, S3Archive, list[str]]:
    """A two-partition topic archived into MinIO, a live tail after it, then the archived head deleted from Kafka;
    its Secret and TopicArchive ``source`` in the module's namespace; and every record as kcat's ``%p %o %s``."""
    clients.kcat_folder()  # a missing client fails here, naming its build log
    topic = create_topic(kafka.bootstrap, 2)
    produce_numbered(kafka.bootstrap, topic, 100, partitions=2)
    archive = S3Archive(s3_server)
    archived_rows = archive.archive(kafka.bootstrap, topic, 2, tmp_path_factory.mktemp("serve-mode") / "archiver.log")
    produce_numbered(kafka.bootstrap, topic, 10, partitions=2, start=100)
    everything = kafka_rows(kafka.bootstrap, topic, 2)
    delete_head(kafka.bootstrap, topic, {p: rows[-1][0] + 1 for p, rows in archived_rows.items()})
    lines = sorted(f"{p} {row[0]} {row[4].decode()}" for p, rows in everything.items() for row in rows)
    assert len(lines) == 110
    api = crds.api_client()
    create_credentials_secret(api, operator_namespace, "s3-credentials", s3_server)
    create_custom(
        api, operator_namespace, "topicarchives", topic_archive("source", kafka.bootstrap, topic, _storage(archive))
    )
    return topic, archive, lines


def _storage(archive: S3Archive) -> dict:
    return {
        "url": archive.url,
        "options": {"endpoint_url": archive.server.endpoint, "region": archive.server.region},
        "credentialsSecret": {"name": "s3-credentials"},
    }


def _serve_replay(name: str, archive_name: str, port: int, topic: str, **spec) -> dict:
    """A serve-mode ReplayJob whose consumer is kcat reading the whole of ``topic`` from the sidecar."""
    kcat = ["kcat", "-C", "-b", f"localhost:{port}", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\\n"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReplayJob",
        "metadata": {"name": name},
        "spec": {
            "serve": {
                "topicArchive": archive_name,
                "port": port,
                "template": {
                    "metadata": {"labels": {"app": "reader"}},
                    "spec": {"containers": [{"name": "reader", "image": "registry.example/kcat:1", "command": kcat}]},
                },
            },
            "backoffLimit": 0,
            **spec,
        },
    }


def _job_pod(api: client.ApiClient, namespace: str, job: str) -> dict:
    pods = wait_until(
        lambda: client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={job}").items,
        30,
        f"the pod of Job {job}",
    )
    return api.sanitize_for_serialization(pods[0])


def _run_pod(api: client.ApiClient, namespace: str, pod: dict, logs: Path) -> subprocess.CompletedProcess:
    """Run the pod as a kubelet would: the native sidecar first, until its startup probe passes, then the consumer;
    the sidecar is stopped once the consumer has exited. Returns the consumer's run."""
    spec = pod["spec"]
    sidecar = run_container(api, namespace, spec, logs / "sidecar.log", name=SIDECAR)
    try:
        probe = spec["initContainers"][0]["startupProbe"]["exec"]["command"]
        probe = [sys.executable if part == "python" else part for part in probe]
        wait_until(lambda: subprocess.run(probe, capture_output=True).returncode == 0, 60, "the startup probe", 0.5)
        command, env = clients.kcat_command(*spec["containers"][0]["command"][1:])
        return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    finally:
        sidecar.terminate()
        assert sidecar.wait(60) == 0, (logs / "sidecar.log").read_text()[-2000:]


def _phase(api: client.ApiClient, namespace: str, name: str, phase: str) -> dict:
    def reached():
        body = custom(api, namespace, "replayjobs", name)
        return body.get("status", {}).get("phase") == phase and body

    return wait_until(reached, 60, f"ReplayJob {name} to be {phase}")


def _condition(body: dict, kind: str) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def test_a_serve_mode_replay_succeeds_when_its_kcat_consumer_exits_0(
    crds, operator_namespace, operator, archived, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    topic, _, lines = archived
    port = free_port()
    create_custom(api, ns, "replayjobs", _serve_replay("reads-all", "source", port, topic))
    job = wait_until(
        lambda: client.BatchV1Api(api).list_namespaced_job(ns, label_selector=f"{GROUP}/replay-job=reads-all").items,
        30,
        "the Job",
    )[0]
    assert job.metadata.name == "reads-all-replay" and job.metadata.owner_references[0].kind == "ReplayJob"
    pod = _job_pod(api, ns, job.metadata.name)
    spec = pod["spec"]
    serve = spec["initContainers"][0]
    assert [c["name"] for c in spec["initContainers"]] == [SIDECAR] and serve["restartPolicy"] == "Always"
    assert f"--listen 127.0.0.1:{port}" in " ".join(serve["command"])
    assert [c["name"] for c in spec["containers"]] == ["reader"] and spec["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["app"] == "reader"

    consumer = _run_pod(api, ns, pod, tmp_path)
    assert consumer.returncode == 0, consumer.stderr[-2000:]
    assert sorted(consumer.stdout.splitlines()) == lines  # the archived head and the live tail
    report_pod_end(api, ns, pod, {"reader": 0})

    done = _phase(api, ns, "reads-all", "Succeeded")
    assert _condition(done, "Ready")["status"] == "True" and kstatus(done) == "Current"
    assert done["status"]["job"] == "reads-all-replay" and "progress" not in done["status"]


def test_a_serve_mode_replay_waits_for_its_archive_and_fails_when_its_consumer_fails(
    crds, operator_namespace, operator, archived, kafka, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    topic, archive, _ = archived
    create_custom(api, ns, "replayjobs", _serve_replay("misreads", "late", free_port(), "not-served"))

    def blocked():
        body = custom(api, ns, "replayjobs", "misreads")
        return body.get("status", {}).get("conditions") and body

    waiting = wait_until(blocked, 30, "the first status")
    assert _condition(waiting, "Stalled")["status"] == "True"
    assert _condition(waiting, "Stalled")["reason"] == "TopicArchiveNotFound"
    assert "'late'" in _condition(waiting, "Stalled")["message"] and waiting["status"]["phase"] == "Pending"
    assert not client.BatchV1Api(api).list_namespaced_job(ns, label_selector=f"{GROUP}/replay-job=misreads").items

    create_custom(api, ns, "topicarchives", topic_archive("late", kafka.bootstrap, topic, _storage(archive)))
    pod = _job_pod(api, ns, "misreads-replay")
    consumer = _run_pod(api, ns, pod, tmp_path)
    assert consumer.returncode != 0 and "not-served" in consumer.stderr
    report_pod_end(api, ns, pod, {"reader": consumer.returncode})

    failed = _phase(api, ns, "misreads", "Failed")
    assert _condition(failed, "Stalled")["status"] == "True" and _condition(failed, "Ready")["status"] == "False"
    assert kstatus(failed) == "Failed"


def test_the_api_server_takes_either_a_target_or_serve(crds, operator_namespace):
    api, ns = crds.api_client(), operator_namespace
    serve = _serve_replay(f"x-{uuid.uuid4().hex[:4]}", "source", 9092, "t")
    both = {**serve, "spec": {**serve["spec"], "target": {"bootstrapServers": "k:9092", "topic": "t"}}}
    neither = {**serve, "spec": {"backoffLimit": 1}}
    parallel = {**serve, "spec": {**serve["spec"], "parallelism": 2}}
    for body, message in (
        (both, "source and target"),
        (neither, "source and target"),
        (parallel, "parallelism must be 1"),
    ):
        with pytest.raises(ApiException) as refused:
            create_custom(api, ns, "replayjobs", body)
        assert refused.value.status == 422 and message in refused.value.body
