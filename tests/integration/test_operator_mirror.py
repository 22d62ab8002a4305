"""``spec.mirrors`` of a TopicArchive against the stack's real API server, Kafka and two MinIO servers with
different credentials: the operator makes a Deployment per mirror, whose own container command (run as a local
process: no kubelet here, its Secret volume written to a folder as a kubelet would mount it) copies the archive
into the second server; ``status.mirrors`` shows the lag until the copy has caught up; removing the entry removes
the Deployment (a deleted one is restored before). Bad target credentials are one status line that never shows them."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

from kubernetes import client

from pyrostore.index.commits import read_head
from pyrostore.mirror import diff_archives
from pyrostore.store import open_store
from tests.kafka_helpers import produce_numbered
from tests.operator_helpers import (
    GROUP,
    VERSION,
    create_credentials_secret,
    create_custom,
    custom,
    everything_in,
    field_env,
    read_or_none,
    run_container,
    s3_storage,
    statefulset_pod,
    topic_archive,
    wait_until,
    with_secret_mounts,
)


def _mirror(server, prefix: str, secret: str) -> dict:
    """A ``spec.mirrors`` entry copying into ``prefix`` of ``server`` (the stack's HTTPS MinIO) with ``secret``."""
    options = {"endpoint_url": server.endpoint, "region": server.region, "ca_bundle": str(server.ca_file)}
    return {
        "name": "dr",
        "url": f"s3://{server.bucket}/{prefix}",
        "options": options,
        "credentialsSecret": {"name": secret},
        "interval": "1s",
    }


def _run_mirror(api, namespace: str, deployment: str, folder: Path, log: Path) -> subprocess.Popen:
    """Run the mirror Deployment's container: its Secret volumes written under ``folder`` (one file per key, as a
    kubelet mounts it) and the command pointed there instead of the pod's mount path."""
    read = client.AppsV1Api(api).read_namespaced_deployment
    template = api.sanitize_for_serialization(read(deployment, namespace).spec.template.spec)
    pod = with_secret_mounts(api, namespace, template, folder)
    assert pod["containers"][0]["command"] != template["containers"][0]["command"]
    return run_container(api, namespace, pod, log)


def _mirror_status(api, namespace: str, name: str) -> dict:
    return ((custom(api, namespace, "topicarchives", name) or {}).get("status") or {}).get("mirrors") or [{}]


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def test_the_operator_mirrors_the_archive_and_reports_its_lag_until_the_copy_is_equal(
    crds, operator_namespace, operator, kafka, s3_server, s3_tls_server, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    create_credentials_secret(api, ns, "s3-credentials", s3_server)
    create_credentials_secret(api, ns, "dr-credentials", s3_tls_server)  # not the archive's: another server's
    topic = new_topic(partitions=2)
    produce_numbered(kafka.bootstrap, topic, 200, partitions=2)
    prefix = f"mirror-{uuid.uuid4().hex[:8]}"
    storage, mirror = s3_storage(s3_server, prefix), _mirror(s3_tls_server, prefix, "dr-credentials")
    body = topic_archive("copy", kafka.bootstrap, topic, storage, segment={"age": "1s"}, mirrors=[mirror])
    create_custom(api, ns, "topicarchives", body)

    apps = client.AppsV1Api(api)
    deployment = wait_until(
        lambda: read_or_none(apps.read_namespaced_deployment, "copy-mirror-dr", ns), 30, "the mirror Deployment"
    )
    assert deployment.spec.strategy.type == "Recreate" and deployment.spec.replicas == 1
    source = open_store(storage["url"], **storage["options"], **_keys(s3_server))
    target = open_store(mirror["url"], **mirror["options"], **_keys(s3_tls_server))

    archiver_pod = statefulset_pod(api, ns, "copy-archiver")
    archiver = run_container(api, ns, archiver_pod["spec"], tmp_path / "archiver.log", field_env(archiver_pod))
    try:

        def archived() -> bool:
            heads = [read_head(source, topic, p) for p in (0, 1)]
            return all(h is not None and h.next_offset == 100 for h in heads)

        wait_until(archived, 90, "the archiver to archive every record")
    finally:
        assert _stop(archiver) == 0, (tmp_path / "archiver.log").read_text()[-3000:]
    # Nothing has run the mirror yet: the status counts every commit of both partitions as missing.
    missing = sum(read_head(source, topic, p).seq + 1 for p in (0, 1))
    behind = wait_until(
        lambda: _mirror_status(api, ns, "copy")[0].get("lagCommits") == missing and _mirror_status(api, ns, "copy"),
        30,
        f"status.mirrors to show the copy {missing} commits behind",
    )
    assert behind[0]["lagSeconds"] > 0 and "error" not in behind[0] and behind[0]["url"] == mirror["url"]

    running = _run_mirror(api, ns, "copy-mirror-dr", tmp_path / "dr-secret", tmp_path / "mirror.log")
    try:
        caught_up = wait_until(
            lambda: _mirror_status(api, ns, "copy")[0].get("lagCommits") == 0 and _mirror_status(api, ns, "copy"),
            60,
            "status.mirrors to show the copy caught up",
        )
    finally:
        code = _stop(running)
    assert code == 0, (tmp_path / "mirror.log").read_text()[-3000:]
    assert caught_up == [{"name": "dr", "url": mirror["url"], "lagCommits": 0, "lagSeconds": 0}]
    diffs = diff_archives(source, target, (topic,))
    assert [(d.partition, d.roots_equal, d.same) for d in diffs] == [(0, True, True), (1, True, True)]

    # A deleted mirror Deployment is restored; removing the entry removes it and status.mirrors; the copy stays.
    apps.delete_namespaced_deployment("copy-mirror-dr", ns)

    def restored():
        again = read_or_none(apps.read_namespaced_deployment, "copy-mirror-dr", ns)
        return again is not None and again.metadata.uid != deployment.metadata.uid

    wait_until(restored, 30, "the deleted mirror Deployment to be restored")
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "topicarchives", "copy", {"spec": {"mirrors": None}}
    )
    wait_until(lambda: not read_or_none(apps.read_namespaced_deployment, "copy-mirror-dr", ns), 30, "it to go")
    wait_until(lambda: "mirrors" not in custom(api, ns, "topicarchives", "copy")["status"], 30, "status.mirrors to go")
    assert read_head(target, topic, 0) is not None
    assert "Traceback" not in operator.log_text()


def test_bad_target_credentials_are_one_status_line_that_never_shows_them(
    crds, operator_namespace, operator, kafka, s3_server, s3_tls_server, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    wrong = f"wrong-{uuid.uuid4().hex}"
    data = {"AWS_ACCESS_KEY_ID": s3_tls_server.access_key, "AWS_SECRET_ACCESS_KEY": wrong}
    client.CoreV1Api(api).create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="bad-dr"), string_data=data)
    )
    create_credentials_secret(api, ns, "bad-source", s3_server)
    prefix = f"denied-{uuid.uuid4().hex[:8]}"
    storage, mirror = s3_storage(s3_server, prefix, "bad-source"), _mirror(s3_tls_server, prefix, "bad-dr")
    create_custom(
        api, ns, "topicarchives", topic_archive("denied", kafka.bootstrap, new_topic(), storage, mirrors=[mirror])
    )

    status = wait_until(lambda: _mirror_status(api, ns, "denied")[0].get("error"), 60, "status.mirrors error")
    entry = _mirror_status(api, ns, "denied")[0]
    assert entry.keys() == {"name", "url", "error"}, entry
    assert "\n" not in status and "denied" in status.lower(), status
    assert s3_tls_server.bucket in status, status  # names the target, not its keys

    log = tmp_path / "mirror.log"
    running = _run_mirror(api, ns, "denied-mirror-dr", tmp_path / "bad-secret", log)
    try:
        wait_until(lambda: "retrying" in log.read_text(), 60, "the mirror to report the refusal")
    finally:
        _stop(running)
    for text in (everything_in(api, ns), operator.log_text(), log.read_text()):
        assert wrong not in text


def _keys(server) -> dict[str, str]:
    return {"access_key_id": server.access_key, "secret_access_key": server.secret_key}


def test_the_api_server_refuses_bad_mirror_lists(crds, operator_namespace):
    api, ns = crds.api_client(), operator_namespace
    dr = {"name": "dr", "url": "s3://copy/p"}
    for name, mirrors, expected in (
        ("twice", [dr, dr | {"url": "gs://other/p"}], "Duplicate value"),
        ("keyed", [dr | {"options": {"secret_access_key": "x"}}], "credentials belong in the mirror's"),
        ("upper", [dr | {"name": "DR"}], "spec.mirrors[0].name"),
        ("ftp", [dr | {"url": "ftp://copy/p"}], "mirror URL must use the scheme"),
        ("many", [dr | {"name": f"m{i}"} for i in range(9)], "spec.mirrors"),
    ):
        body = topic_archive(name, "k:9092", "orders", {"url": "s3://b/p"}, mirrors=mirrors)
        try:
            create_custom(api, ns, "topicarchives", body)
        except client.ApiException as exc:
            assert exc.status == 422 and expected in exc.body, exc.body
        else:
            raise AssertionError(f"spec.mirrors {mirrors} was accepted")
