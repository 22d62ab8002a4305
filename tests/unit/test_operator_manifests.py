"""The archiver StatefulSet and replay Job built from custom resources (pure functions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pyrostore.operator.manifests import (
    archiver_command,
    archiver_name,
    archiver_statefulset,
    drifted,
    replay_command,
    replay_job,
    serve_container,
)
from pyrostore.operator.settings import OperatorSettings
from pyrostore.settings import parse_time
from tests.operator_helpers import expand

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = OperatorSettings(image="img:1", image_pull_policy="Always", service_account="archiver")


def _archive(**spec) -> dict:
    return {
        "kind": "TopicArchive",
        "metadata": {"name": "orders", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092", "topic": "orders", "properties": {"security.protocol": "SSL"}},
            "storage": {
                "url": "s3://b/p",
                "options": {"region": "eu-west-1", "endpoint_url": "http://s3"},
                "credentialsSecret": {"name": "creds"},
            },
            **spec,
        },
    }


def _replay(**spec) -> dict:
    return {
        "kind": "ReplayJob",
        "metadata": {"name": "backfill", "namespace": "team-a", "uid": "abcdef123456"},
        "spec": {
            "source": {"topic": "orders", "storage": {"url": "gs://b/p", "credentialsSecret": {"name": "gcs"}}},
            "target": {"bootstrapServers": "k:9092", "topic": "orders-copy"},
            **spec,
        },
    }


def test_archiver_command_carries_every_setting_but_no_secret():
    command = archiver_command(_archive(segment={"bytes": "8MiB", "age": "5s"}, acceptLoss=True, metricsPort=9200))
    assert command[:2] == ["pyrostore", "archive"]
    text = " ".join(command)
    for expected in (
        "--bootstrap-servers k:9092",
        "--topic orders",
        "--store s3://b/p",
        "--group pyrostore-team-a-orders",
        "--segment-bytes 8MiB",
        "--segment-age 5s",
        "--metrics-port 9200",
        "--accept-loss",
        "-o endpoint_url=http://s3 -o region=eu-west-1",
        "-X security.protocol=SSL",
    ):
        assert expected in text


def test_archiver_statefulset_is_owned_labelled_and_takes_credentials_from_the_secret():
    statefulset = archiver_statefulset(_archive(replicas=3, resources={"limits": {"memory": "1Gi"}}), SETTINGS)
    assert (statefulset["kind"], statefulset["metadata"]["name"]) == ("StatefulSet", "orders-archiver")
    assert statefulset["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "pyrostore.io/v1alpha1",
            "kind": "TopicArchive",
            "name": "orders",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    # Replicas are peers: they start and stop together; updates replace one pod at a time under its own name.
    assert (spec["podManagementPolicy"], spec["updateStrategy"]) == ("Parallel", {"type": "RollingUpdate"})
    assert "serviceName" not in spec  # nobody resolves archivers by DNS; Kubernetes 1.34 checks it only when set
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == ("img:1", "Always")
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert pod["serviceAccountName"] == "archiver"
    assert pod["volumes"][1]["secret"]["secretName"] == "creds"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_serve_container_serves_the_archive_and_its_live_topic_with_secret_references_only():
    archive = _archive(kafka={"bootstrapServers": "k:9092", "topic": "orders", "propertiesSecret": {"name": "kp"}})
    container, volumes = serve_container(
        archive, SETTINGS, name="serve", listen="127.0.0.1:9092", advertise=None, resources={"limits": {"cpu": "1"}}
    )
    command = container["command"]
    assert command[:2] == ["pyrostore", "serve"]
    for flag, value in [("--store", "s3://b/p"), ("--topic", "orders"), ("--bootstrap-servers", "k:9092")]:
        assert command[command.index(flag) + 1] == value
    assert command[command.index("--listen") + 1] == "127.0.0.1:9092" and "--advertise" not in command
    assert command[command.index("--kafka-properties") + 1].endswith("/client.properties")
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert container["readinessProbe"]["tcpSocket"] == {"port": 9092}
    assert container["resources"] == {"limits": {"cpu": "1"}}
    assert {v["name"] for v in volumes} == {"tmp", "storage-credentials", "kafka-properties"}
    advertised, _ = serve_container(
        archive, SETTINGS, name="serve", listen="0.0.0.0:9092", advertise="svc.ns.svc:9092", resources={}
    )
    assert advertised["command"][advertised["command"].index("--advertise") + 1] == "svc.ns.svc:9092"


def test_each_archiver_pod_is_a_static_group_member_named_after_itself():
    container = archiver_statefulset(_archive(), SETTINGS)["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    # The kubelet expands $(POD_NAME) from the container's env: the pod's stable name, <set>-0, <set>-1, ...
    assert command[command.index("--instance-id") + 1] == "$(POD_NAME)"
    assert container["env"] == [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}
    ]
    expanded = [expand(arg, {"POD_NAME": "orders-archiver-1"}) for arg in command]
    assert expanded[expanded.index("--instance-id") + 1] == "orders-archiver-1"
    # terminationGracePeriodSeconds covers the archiver's 25 s --shutdown-grace.
    assert archiver_statefulset(_archive(), SETTINGS)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 40


@pytest.mark.parametrize(
    ("written", "expanded"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)", "x1y$(B)"),  # an undefined reference stays as written
        ("$$(A)", "$(A)"),  # $$ escapes
        ("$$$(A)", "$1"),
        ("$(A", "$(A"),
        ("a$b$", "a$b$"),
        ("$()", "$()"),
    ],
)
def test_the_test_kubelet_expands_references_as_kubernetes_does(written, expanded):
    assert expand(written, {"A": "1"}) == expanded


@pytest.mark.parametrize(
    "archive",
    ["orders", "a" * 43, "a" * 44, "b" * 63, "orders.eu-west-1", "x" * 33 + "-" + "y" * 20],
)
def test_archiver_name_fits_the_statefulset_controllers_labels(archive):
    name = archiver_name(archive)
    # The controller labels pods with <name>-<revision hash of up to 10 characters>: at most 63 characters.
    assert len(name) + 11 <= 63 and name.endswith("-archiver")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name  # a DNS label
    if len(archive) <= 43 and "." not in archive:
        assert name == f"{archive}-archiver"
    else:
        assert name != archiver_name(archive + "z") and name.startswith(archive[:20].replace(".", "-"))


def test_suspend_scales_to_zero():
    assert archiver_statefulset(_archive(replicas=3, suspend=True), SETTINGS)["spec"]["replicas"] == 0


def test_kafka_properties_secret_is_mounted_and_passed_as_a_file():
    body = _archive()
    body["spec"]["kafka"]["propertiesSecret"] = {"name": "sasl", "key": "props"}
    statefulset = archiver_statefulset(body, SETTINGS)
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["--kafka-properties", "/etc/pyrostore/kafka/client.properties"]
    volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "kafka-properties")
    assert volume["secret"] == {"secretName": "sasl", "items": [{"key": "props", "path": "client.properties"}]}


def test_replay_command_maps_every_field():
    body = _replay(
        range={"from": {"offset": 10}, "to": {"time": "2026-11-24T12:00:00Z"}},
        partitions=[0, 3],
        partitioning="key-hash",
        rateLimit={"bytesPerSecond": 1000, "recordsPerSecond": 50},
        exactlyOnce=True,
        provenanceHeaders=True,
        parallelism=4,
    )
    body["spec"]["target"]["createTopic"] = True
    text = " ".join(replay_command(body))
    for expected in (
        "pyrostore replay --store gs://b/p --topic orders --to-topic orders-copy --bootstrap-servers k:9092",
        "--replay-id team-a-backfill-abcdef12",
        "--parallelism 4",
        "--from-offset 10",
        f"--to-time {parse_time('2026-11-24T12:00:00Z')}",
        "--partitions 0,3",
        "--partitioning key-hash",
        "--rate-limit 1000",
        "--records-per-second 50",
        "--exactly-once",
        "--provenance-headers",
        "--create-topic",
    ):
        assert expected in text
    assert parse_time("2026-11-24T12:00:00Z") == 1_795_521_600_000


@pytest.mark.parametrize(("parallelism", "indexed"), [(1, False), (3, True)])
def test_replay_job_is_indexed_only_when_parallel(parallelism, indexed):
    job = replay_job(_replay(parallelism=parallelism), SETTINGS)
    assert job["metadata"]["name"] == "backfill-replay"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ReplayJob"
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (parallelism, parallelism)
    assert (job["spec"].get("completionMode") == "Indexed") is indexed
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "gcs"}}]


def test_drift_ignores_server_defaults_and_extra_named_items_but_not_changes():
    desired = archiver_statefulset(_archive(), SETTINGS)
    actual = yaml.safe_load(yaml.safe_dump(desired))
    actual["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 0}
    actual["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    actual["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "EXTRA", "value": "1"})
    assert not drifted(desired, actual)
    actual["spec"]["replicas"] = 5
    assert drifted(desired, actual)
    actual["spec"]["replicas"] = 1
    actual["spec"]["template"]["spec"]["containers"][0]["command"].append("--accept-loss")
    assert drifted(desired, actual)
    del actual["spec"]["template"]["spec"]["volumes"]
    assert drifted(desired, actual)


def test_chart_carries_the_same_crds():
    for source in (ROOT / "crds").glob("*.yaml"):
        assert (ROOT / "charts" / "pyrostore" / "crds" / source.name).read_text() == source.read_text()
