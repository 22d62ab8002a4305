"""``spec.serve`` of a TopicArchive against the stack's real API server and controller manager: the serve
Deployment and its Service follow the spec, come back after deletion or a hand edit, go when the field goes; and
the Deployment's own container command, run as a local process (no kubelet here), serves the archive and the live
tail to confluent_kafka from the stack's Kafka and MinIO.
"""

from __future__ import annotations

import json
import signal
import socket
import uuid

from confluent_kafka import Consumer
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.stack import s3 as stack_s3
from e2e.stack.process import free_port
from pyrostore.layout import ROOT_PREFIX
from tests.consumer_helpers import delete_head
from tests.kafka_helpers import kafka_rows, produce_numbered
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
    statefulset_pod,
    topic_archive,
    wait_until,
)

ARCHIVE_LABEL = f"{GROUP}/topic-archive"


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _patch_archive(api, namespace: str, name: str, spec: dict) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "topicarchives", name, {"spec": spec}
    )


def _printed_endpoint(api, namespace: str, name: str) -> str:
    """The Endpoint column of ``kubectl get topicarchive``: the server's Table rendering of the printer columns."""
    request = api.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/topicarchives/{name}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()
    table = json.loads(response.data)
    names = [column["name"] for column in table["columnDefinitions"]]
    return table["rows"][0]["cells"][names.index("Endpoint")]


def test_spec_serve_makes_a_deployment_and_a_service_kept_as_declared(crds, operator_namespace, operator):
    api, ns = crds.api_client(), operator_namespace
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    storage = {"url": "s3://archive-bucket/team-a", "credentialsSecret": {"name": "archive-credentials"}}
    body = topic_archive(
        "hist", "kafka.example:9092", "orders", storage, serve={"replicas": 2, "service": {"port": 19092}}
    )
    created = create_custom(api, ns, "topicarchives", body)

    def deployment():
        return read_or_none(apps.read_namespaced_deployment, "hist-serve", ns)

    def service():
        return read_or_none(core.read_namespaced_service, "hist-serve", ns)

    served = wait_until(deployment, 30, "the serve Deployment")
    front = wait_until(service, 30, "the serve Service")
    for child in (served, front):
        owner = child.metadata.owner_references[0]
        assert owner.controller and (owner.kind, owner.uid) == ("TopicArchive", created["metadata"]["uid"])
    command = served.spec.template.spec.containers[0].command
    assert command[:2] == ["pyrostore", "serve"]
    assert (_arg(command, "--listen"), _arg(command, "--advertise")) == ("0.0.0.0:9092", f"hist-serve.{ns}.svc:19092")
    assert (_arg(command, "--topic"), _arg(command, "--store")) == ("orders", "s3://archive-bucket/team-a")
    assert served.spec.replicas == 2
    assert served.spec.template.spec.containers[0].env_from[0].secret_ref.name == "archive-credentials"
    port = front.spec.ports[0]
    assert (front.spec.type, front.spec.session_affinity) == ("ClusterIP", "ClientIP")
    assert [(port.name, port.port, port.target_port, port.protocol)] == [("kafka", 19092, "kafka", "TCP")]

    # The controller manager makes the pods: the Service selects the two serve pods, not the archiver's.
    wait_until(
        lambda: len(core.list_namespaced_pod(ns, label_selector=f"{ARCHIVE_LABEL}=hist").items) == 3,
        60,
        "two serve pods and one archiver pod",
    )
    selector = ",".join(f"{key}={value}" for key, value in front.spec.selector.items())
    selected = core.list_namespaced_pod(ns, label_selector=selector).items
    assert [p.metadata.labels["app.kubernetes.io/name"] for p in selected] == ["pyrostore-serve"] * 2

    status = wait_until(lambda: custom(api, ns, "topicarchives", "hist").get("status", {}).get("serve"), 60, "status")
    assert status == {
        "endpoint": f"hist-serve.{ns}.svc:19092",
        "service": "hist-serve",
        "replicas": 2,
        "readyReplicas": 0,
    }
    assert _printed_endpoint(api, ns, "hist") == f"hist-serve.{ns}.svc:19092"

    # Deleted, each comes back as a new object.
    apps.delete_namespaced_deployment("hist-serve", ns)
    wait_until(lambda: (d := deployment()) and d.metadata.uid != served.metadata.uid, 30, "the Deployment back")
    core.delete_namespaced_service("hist-serve", ns)
    wait_until(lambda: (s := service()) and s.metadata.uid != front.metadata.uid, 30, "the Service back")

    # Hand edits of fields the operator sets are undone.
    edit = {"spec": {"template": {"spec": {"containers": [{"name": "serve", "command": ["pyrostore", "serve"]}]}}}}
    apps.patch_namespaced_deployment("hist-serve", ns, edit)
    wait_until(lambda: deployment().spec.template.spec.containers[0].command == command, 30, "the command restored")
    core.patch_namespaced_service(
        "hist-serve",
        ns,
        [{"op": "replace", "path": "/spec/ports/0/port", "value": 1234}],
        _content_type="application/json-patch+json",
    )
    wait_until(lambda: [p.port for p in service().spec.ports] == [19092], 30, "the Service port restored")
    core.patch_namespaced_service("hist-serve", ns, {"spec": {"type": "NodePort", "sessionAffinity": "None"}})
    wait_until(
        lambda: (s := service().spec).type == "ClusterIP" and s.session_affinity == "ClientIP",
        30,
        "the Service type and affinity restored",
    )

    # Spec changes follow: another type and port, fewer replicas; and back to ClusterIP (its node port goes).
    _patch_archive(api, ns, "hist", {"serve": {"replicas": 1, "service": {"type": "NodePort", "port": 19093}}})
    front = wait_until(
        lambda: (s := service()).spec.type == "NodePort" and s.spec.ports[0].port == 19093 and s, 30, "NodePort"
    )
    assert front.spec.ports[0].node_port
    served = wait_until(lambda: (d := deployment()).spec.replicas == 1 and d, 30, "one serve replica")
    assert _arg(served.spec.template.spec.containers[0].command, "--advertise") == f"hist-serve.{ns}.svc:19093"
    _patch_archive(api, ns, "hist", {"serve": {"service": {"type": "ClusterIP"}}})
    front = wait_until(lambda: (s := service()).spec.type == "ClusterIP" and s, 30, "back to ClusterIP")
    assert front.spec.ports[0].node_port is None

    # Suspending the archive stops archiving, not serving (serving only reads).
    _patch_archive(api, ns, "hist", {"suspend": True})
    wait_until(lambda: apps.read_namespaced_stateful_set("hist-archiver", ns).spec.replicas == 0, 30, "no archiver")
    assert deployment().spec.replicas == 1

    # Removing spec.serve removes the Deployment, the Service and status.serve; the archiver stays.
    _patch_archive(api, ns, "hist", {"serve": None})
    wait_until(lambda: deployment() is None and service() is None, 30, "the serve children to go")
    wait_until(lambda: "serve" not in custom(api, ns, "topicarchives", "hist")["status"], 30, "status.serve to go")
    assert apps.read_namespaced_stateful_set("hist-archiver", ns)
    assert _printed_endpoint(api, ns, "hist") is None
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "hist")
    assert "Traceback" not in operator.log_text()


def test_a_name_that_cannot_name_a_service_is_refused_with_serve(crds, operator_namespace):
    api, ns = crds.api_client(), operator_namespace
    body = topic_archive("9-lives", "kafka.example:9092", "orders", {"url": "s3://b/p"}, serve={})
    try:
        create_custom(api, ns, "topicarchives", body)
    except ApiException as exc:
        assert exc.status == 422 and "spec.serve needs a name" in exc.body
    else:
        raise AssertionError("a TopicArchive named 9-lives with spec.serve was accepted")
    del body["spec"]["serve"]
    create_custom(api, ns, "topicarchives", body)  # without an endpoint the name is fine


def _with_flags(command: list[str], **flags: str) -> list[str]:
    """``command`` with the values of ``--flag`` options replaced (``listen="127.0.0.1:1"``)."""
    changed = list(command)
    for name, value in flags.items():
        changed[changed.index(f"--{name.replace('_', '-')}") + 1] = value
    return changed


def test_the_serve_command_serves_the_archive_and_the_live_tail(
    crds, operator_namespace, operator, kafka, s3_server, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    create_credentials_secret(api, ns, "s3-credentials", s3_server)
    topic = new_topic(partitions=2)
    produce_numbered(kafka.bootstrap, topic, 200, partitions=2)
    storage = {
        "url": f"s3://{s3_server.bucket}/endpoint-{uuid.uuid4().hex[:8]}",
        "options": {"endpoint_url": s3_server.endpoint, "region": s3_server.region},
        "credentialsSecret": {"name": "s3-credentials"},
    }
    body = topic_archive(
        "history", kafka.bootstrap, topic, storage, segment={"age": "1s"}, serve={}, deletionPolicy="Delete"
    )
    body["spec"]["metricsPort"] = free_port()
    create_custom(api, ns, "topicarchives", body)

    apps = client.AppsV1Api(api)
    pod = statefulset_pod(api, ns, "history-archiver")
    archiver = run_container(api, ns, pod["spec"], tmp_path / "archiver.log", field_env(pod))
    try:

        def archived():
            parts = custom(api, ns, "topicarchives", "history").get("status", {}).get("partitions") or []
            return len(parts) == 2 and all(p.get("archivedOffset") == 100 for p in parts)

        wait_until(archived, 90, "the first 200 records archived")
    finally:
        archiver.send_signal(signal.SIGTERM)
        assert archiver.wait(60) == 0
    # A live tail past the archive's end, and Kafka forgets the archived head: only the archive has it now.
    produce_numbered(kafka.bootstrap, topic, 50, partitions=2, start=200)
    expected = kafka_rows(kafka.bootstrap, topic, 2)
    assert [len(rows) for rows in expected.values()] == [125, 125]
    delete_head(kafka.bootstrap, topic, {0: 100, 1: 100})

    status = custom(api, ns, "topicarchives", "history")["status"]
    assert status["serve"]["endpoint"] == f"history-serve.{ns}.svc:9092"
    serve_pod = api.sanitize_for_serialization(apps.read_namespaced_deployment("history-serve", ns).spec.template.spec)
    port = free_port()
    local = f"127.0.0.1:{port}"  # no Service here: the local process listens and advertises itself
    container = serve_pod["containers"][0]
    container["command"] = _with_flags(
        container["command"], listen=local, advertise=local, metrics_port=str(free_port())
    )
    server = run_container(api, ns, serve_pod, tmp_path / "serve.log")
    try:

        def accepting() -> bool:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(accepting, 60, "the serve command to listen")
        assert kafka_rows(local, topic, 2) == expected

        # A consumer group through it: its committed offsets go to the archive's store with the Secret's keys.
        consumer = Consumer(
            {"bootstrap.servers": local, "group.id": "history-readers", "auto.offset.reset": "earliest"}
            | {"enable.auto.commit": False}
        )
        try:
            consumer.subscribe([topic])
            values: list[bytes] = []

            def read_all() -> bool:
                message = consumer.poll(1.0)
                if message is not None and message.error() is None:
                    values.append(message.value())
                return len(values) == 250

            wait_until(read_all, 90, "the group to read 250 records", interval=0)
            consumer.commit(asynchronous=False)
            committed = consumer.committed(consumer.assignment(), timeout=30)
            assert sorted(tp.offset for tp in committed) == [125, 125]
        finally:
            consumer.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    # Deleting the archive stops the serve pods too before the archive's objects go (its finalizer waits for them).
    s3 = stack_s3.client(s3_server)
    segments = f"{storage['url'].split('/', 3)[3]}/{ROOT_PREFIX}data/topic={topic}/"
    assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=segments)["KeyCount"]
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "history")
    wait_until(lambda: custom(api, ns, "topicarchives", "history") is None, 60, "the TopicArchive to be deleted")
    assert read_or_none(apps.read_namespaced_deployment, "history-serve", ns) is None
    assert not s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=segments)["KeyCount"]

    secret = s3_server.secret_key
    assert secret not in everything_in(api, ns), "a credential appears in a spec, status, event or Service"
    for log in (operator.log_text(), (tmp_path / "serve.log").read_text(), (tmp_path / "archiver.log").read_text()):
        assert log and secret not in log
