"""The operator against the stack's real API server and controller manager: children, drift, validation."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from pyrostore.operator.manifests import ARCHIVE_LABEL, archiver_name
from tests.operator_helpers import GROUP, VERSION, create_custom, custom, read_or_none, topic_archive, wait_until


def _archive(name: str, **spec) -> dict:
    storage = {
        "url": "s3://archive-bucket/team-a",
        "options": {"endpoint_url": "http://minio.example:9000"},
        "credentialsSecret": {"name": "archive-credentials"},
    }
    return topic_archive(name, "kafka.example:9092", "orders", storage, **spec)


def _statefulset(kube, namespace: str, name: str):
    return read_or_none(client.AppsV1Api(kube.api_client()).read_namespaced_stateful_set, name, namespace)


def _pod(kube, namespace: str, name: str):
    return read_or_none(client.CoreV1Api(kube.api_client()).read_namespaced_pod, name, namespace)


def test_topic_archive_owns_an_archiver_statefulset_that_follows_it(crds, operator_namespace, operator):
    kube, ns = crds, operator_namespace
    api = kube.api_client()
    apps = client.AppsV1Api(api)
    objects = client.CustomObjectsApi(api)
    created = create_custom(api, ns, "topicarchives", _archive("orders"))

    statefulset = wait_until(lambda: _statefulset(kube, ns, "orders-archiver"), 30, "the archiver StatefulSet")
    owner = statefulset.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "TopicArchive",
        "orders",
        created["metadata"]["uid"],
        True,
    )
    container = statefulset.spec.template.spec.containers[0]
    assert container.image == "registry.example/pyrostore:test"
    assert container.command[:2] == ["pyrostore", "archive"]
    assert " --topic orders " in " ".join(container.command) + " "
    assert container.command[container.command.index("--store") :][:2] == ["--store", "s3://archive-bucket/team-a"]
    assert container.env_from[0].secret_ref.name == "archive-credentials"
    assert container.ports[0].container_port == 9108
    assert statefulset.spec.replicas == 1
    assert statefulset.spec.pod_management_policy == "Parallel"
    # The API server took it without a serviceName; the controller manager's StatefulSet controller makes its pod,
    # whose command names it as the static group member (the kubelet would expand $(POD_NAME)).
    pod = wait_until(lambda: _pod(kube, ns, "orders-archiver-0"), 30, "the StatefulSet's pod")
    command = pod.spec.containers[0].command
    assert command[command.index("--instance-id") + 1] == "$(POD_NAME)"
    assert pod.spec.containers[0].env[0].value_from.field_ref.field_path == "metadata.name"
    assert pod.metadata.owner_references[0].kind == "StatefulSet"
    status = wait_until(lambda: custom(api, ns, "topicarchives", "orders").get("status"), 30, "the first status")
    assert status["statefulSet"] == "orders-archiver" and "deployment" not in status

    # Editing the resource updates the StatefulSet.
    patch = {"spec": {"replicas": 2, "segment": {"age": "5s"}, "resources": {"limits": {"memory": "512Mi"}}}}
    objects.patch_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "orders", patch)

    def updated():
        d = _statefulset(kube, ns, "orders-archiver")
        command = d.spec.template.spec.containers[0].command
        return d.spec.replicas == 2 and command[command.index("--segment-age") + 1] == "5s" and d

    statefulset = wait_until(updated, 30, "the StatefulSet to follow the edit")
    assert statefulset.spec.template.spec.containers[0].resources.limits == {"memory": "512Mi"}
    wait_until(lambda: _pod(kube, ns, "orders-archiver-1"), 30, "the second replica's pod, under its own name")

    # A hand edit of a managed field is undone.
    apps.patch_namespaced_stateful_set("orders-archiver", ns, {"spec": {"replicas": 7}})
    wait_until(lambda: _statefulset(kube, ns, "orders-archiver").spec.replicas == 2, 30, "the hand edit to be undone")

    # A deleted StatefulSet comes back (a new object).
    uid = statefulset.metadata.uid
    apps.delete_namespaced_stateful_set("orders-archiver", ns)
    wait_until(
        lambda: (d := _statefulset(kube, ns, "orders-archiver")) is not None and d.metadata.uid != uid,
        30,
        "the deleted StatefulSet to be restored",
    )

    # Suspending scales to zero; resuming scales back.
    objects.patch_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "orders", {"spec": {"suspend": True}})
    wait_until(lambda: _statefulset(kube, ns, "orders-archiver").spec.replicas == 0, 30, "suspend to scale to 0")
    status = wait_until(
        lambda: (
            (c := custom(api, ns, "topicarchives", "orders"))
            and c.get("status", {}).get("observedGeneration") == c["metadata"]["generation"]
            and c["status"]
        ),
        30,
        "the status of the suspended archive",
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    # The Kafka address is fictional: the status says what is wrong rather than Ready.
    assert ready["status"] == "False"

    # Deleting the TopicArchive deletes its StatefulSet (the garbage collector follows the owner reference).
    objects.delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "orders")
    # The controller manager's collector acts on its own schedule; a loaded machine (a full run) has seen it take
    # more than a minute.
    wait_until(
        lambda: _statefulset(kube, ns, "orders-archiver") is None, 180, "the StatefulSet to be garbage-collected"
    )
    wait_until(lambda: custom(api, ns, "topicarchives", "orders") is None, 30, "the TopicArchive to go")
    assert "Traceback" not in operator.log_text()


def _rejection(call) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 422, refused.value.body
    return refused.value.body


def test_api_server_rejects_invalid_resources_naming_the_field(crds, operator_namespace):
    api, ns = crds.api_client(), operator_namespace
    objects = client.CustomObjectsApi(api)

    bad_scheme = _archive("bad-scheme")
    bad_scheme["spec"]["storage"]["url"] = "http://archive-bucket/team-a"
    body = _rejection(lambda: create_custom(api, ns, "topicarchives", bad_scheme))
    assert "spec.storage.url" in body and "s3://, gs:// or file:///" in body

    in_spec = _archive("secret-in-spec")
    in_spec["spec"]["storage"]["options"]["secret_access_key"] = "x"
    body = _rejection(lambda: create_custom(api, ns, "topicarchives", in_spec))
    assert "spec.storage.options" in body and "credentialsSecret" in body

    create_custom(api, ns, "topicarchives", _archive("immutable"))
    body = _rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "topicarchives", "immutable", {"spec": {"kafka": {"topic": "payments"}}}
        )
    )
    assert "spec.kafka.topic" in body and "immutable" in body
    body = _rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "topicarchives", "immutable", {"spec": {"storage": {"url": "s3://other/x"}}}
        )
    )
    assert "spec.storage.url" in body and "immutable" in body

    replay = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReplayJob",
        "metadata": {"name": "both-bounds"},
        "spec": {
            "source": {"topic": "orders", "storage": {"url": "gs://archive-bucket/team-a"}},
            "target": {"bootstrapServers": "kafka.example:9092", "topic": "orders-copy"},
            "range": {"from": {"offset": 10, "time": "2026-11-24T12:00:00Z"}},
        },
    }
    body = _rejection(lambda: create_custom(api, ns, "replayjobs", replay))
    assert "spec.range.from" in body and "offset or a time, not both" in body


def test_archives_with_long_or_dotted_names_get_archiver_pods(crds, operator_namespace, operator):
    # The StatefulSet controller labels pods with <set name>-<revision hash>, at most 63 characters, and names them
    # <set name>-<ordinal>, a DNS label: the operator shortens such set names, or no pod would ever be made.
    api, ns = crds.api_client(), operator_namespace
    names = ["archive-of-the-orders-topic-of-the-eu-west-1-region", "orders.eu-west-1"]
    for name in names:
        create_custom(api, ns, "topicarchives", _archive(name))
    for name in names:
        statefulset = archiver_name(name)
        assert statefulset != f"{name}-archiver"
        pod = wait_until(lambda s=statefulset: _pod(crds, ns, f"{s}-0"), 30, f"the pod of {statefulset}")
        assert pod.metadata.labels[ARCHIVE_LABEL] == name
        wait_until(
            lambda n=name, s=statefulset: (
                (custom(api, ns, "topicarchives", n).get("status") or {}).get("statefulSet") == s
            ),
            30,
            "status.statefulSet",
        )
        client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", name)
    assert "Traceback" not in operator.log_text()
