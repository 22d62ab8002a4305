"""The sidecar webhook as the real kube-apiserver calls it, over TLS with the operator's self-managed certificate:
annotated Pods are stored with the ``pyrostore serve`` sidecar, others unchanged, a missing TopicArchive is refused,
and with the webhook down the configuration's failurePolicy decides. The stored sidecar's own command, run as a
local process (the stack has no kubelet), serves an archive whose head Kafka deleted to kcat, plus the live tail.

The webhook configuration is the chart's, rendered by Helm; only its clientConfig changes to a URL, since the
stack has no Service routing.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.stack import clients
from e2e.stack.process import free_port
from tests.consumer_helpers import S3Archive, create_topic, delete_head
from tests.integration.test_chart import render
from tests.kafka_helpers import EDGE_HEADERS
from tests.operator_helpers import (
    OperatorProcess,
    create_credentials_secret,
    create_custom,
    everything_in,
    run_container,
    topic_archive,
    wait_until,
)
from tests.served_topics import BIG_TOPIC, archive_all, fill_edge

SIDECAR = "pyrostore-serve"


@dataclass
class Webhook:
    """The operator serving the webhook, and the configuration that sends annotated Pods to it."""

    operator: OperatorProcess
    configuration: str
    port: int


def _ca_bundle(api: client.ApiClient, name: str) -> bytes | None:
    configuration = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(name)
    bundle = configuration.webhooks[0].client_config.ca_bundle
    return base64.b64decode(bundle) if bundle else None


def _answers_tls(port: int, ca: bytes) -> bool:
    context = ssl.create_default_context(cadata=ca.decode())
    try:
        with (
            socket.create_connection(("127.0.0.1", port), 2) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1"),
        ):
            return True
    except ConnectionError:
        return False


@pytest.fixture(scope="module")
def webhook(crds, operator_namespace, tmp_path_factory) -> Iterator[Webhook]:
    """The chart's MutatingWebhookConfiguration (limited to the module's namespace), pointed at an operator that
    serves the webhook on 127.0.0.1 and sets the configuration's caBundle itself."""
    api = crds.api_client()
    admission = client.AdmissionregistrationV1Api(api)
    port, name = free_port(), f"pyrostore-test-{uuid.uuid4().hex[:6]}"
    docs = render("pyrostore-system", f"watchNamespaces={{{operator_namespace}}}")
    configuration = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
    configuration["metadata"]["name"] = name
    configuration["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{port}/sidecar"}
    admission.create_mutating_webhook_configuration(configuration)
    env = {
        "PYROSTORE_WEBHOOK_PORT": str(port),
        "PYROSTORE_WEBHOOK_ADDRESS": "127.0.0.1",
        "PYROSTORE_WEBHOOK_CONFIGURATION": name,
        "PYROSTORE_WEBHOOK_HOSTS": "127.0.0.1",
        "PYROSTORE_WEBHOOK_CHECK_INTERVAL": "1",
    }
    log = tmp_path_factory.mktemp("webhook") / "operator.log"
    operator = OperatorProcess(crds.kubeconfig, [operator_namespace], log, **env)
    try:
        ca = wait_until(lambda: _ca_bundle(api, name), 60, "the operator to set the caBundle")
        wait_until(lambda: _answers_tls(port, ca), 60, "the webhook to answer over TLS with that CA")
        yield Webhook(operator, name, port)
    finally:
        operator.stop()
        admission.delete_mutating_webhook_configuration(name)


def _pod(name: str, annotations: dict[str, str] | None = None, init: list[dict] | None = None) -> dict:
    spec: dict = {
        "containers": [
            {"name": "app", "image": "registry.example/app:1", "env": [{"name": "BOOTSTRAP", "value": "localhost"}]}
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


def _create_pod(api: client.ApiClient, namespace: str, pod: dict) -> dict:
    created = client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
    return api.sanitize_for_serialization(created)


def _refusal(api: client.ApiClient, namespace: str, pod: dict) -> str:
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
    return refused.value.body


def _storage(url: str, endpoint: str, region: str) -> dict:
    return {
        "url": url,
        "options": {"endpoint_url": endpoint, "region": region},
        "credentialsSecret": {"name": "s3-credentials"},
    }


def test_annotated_pods_are_stored_with_the_sidecar_others_unchanged(crds, operator_namespace, webhook, s3_server):
    api, ns = crds.api_client(), operator_namespace
    archive = topic_archive(
        "orders", "kafka.example:9092", "orders", _storage("s3://bucket/archive", "http://s3.example", "eu-west-1")
    )
    archive["spec"]["kafka"] |= {"properties": {"client.rack": "a"}, "propertiesSecret": {"name": "kafka-client"}}
    create_custom(api, ns, "topicarchives", archive)

    port = str(free_port())
    annotated = _pod("annotated", {"pyrostore.io/serve": "orders", "pyrostore.io/serve-port": port})
    stored = _create_pod(api, ns, annotated)
    spec = stored["spec"]
    serve = spec["initContainers"][0]
    assert len(spec["initContainers"]) == 1 and serve["name"] == SIDECAR and serve["restartPolicy"] == "Always"
    assert serve["image"] == "registry.example/pyrostore:test"  # the operator's own image
    command = serve["command"]
    assert command[:2] == ["pyrostore", "serve"]
    text = " ".join(command)
    for expected in (
        "--store s3://bucket/archive",
        "--topic orders",
        "--bootstrap-servers kafka.example:9092",
        f"--listen 127.0.0.1:{port}",
        "-o endpoint_url=http://s3.example -o region=eu-west-1",
        "-X client.rack=a",
        "--kafka-properties /etc/pyrostore/kafka/client.properties",
    ):
        assert expected in text, text
    assert serve["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert "env" not in serve
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert secrets == {
        f"{SIDECAR}-storage-credentials": "s3-credentials",
        f"{SIDECAR}-kafka-properties": "kafka-client",
    }
    assert spec["volumes"][0]["name"] == "tmp"  # the user's volume is kept, and keeps its name
    for probe in (serve["startupProbe"], serve["readinessProbe"]):
        assert f"('127.0.0.1', {port})" in probe["exec"]["command"][-1]
    assert serve["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    assert spec["containers"][0]["name"] == "app" and len(spec["containers"]) == 1

    # A pod that already carries the sidecar is not given a second one; its other init containers stay behind it.
    again = _pod("again", {"pyrostore.io/serve": "orders"}, init=[serve, {"name": "migrate", "image": "app:1"}])
    again["spec"]["volumes"] = spec["volumes"]
    stored_again = _create_pod(api, ns, again)["spec"]
    assert [c["name"] for c in stored_again["initContainers"]] == [SIDECAR, "migrate"]
    assert stored_again["volumes"] == spec["volumes"]
    first = _create_pod(
        api, ns, _pod("first", {"pyrostore.io/serve": "orders"}, init=[{"name": "migrate", "image": "a"}])
    )
    assert [c["name"] for c in first["spec"]["initContainers"]] == [SIDECAR, "migrate"]
    assert "--listen 127.0.0.1:9092" in " ".join(first["spec"]["initContainers"][0]["command"])  # the default port

    plain = _create_pod(api, ns, _pod("plain", {"team": "data"}))
    assert "initContainers" not in plain["spec"]
    assert plain["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert plain["spec"]["containers"][0]["env"] == [{"name": "BOOTSTRAP", "value": "localhost"}]
    assert plain["metadata"]["annotations"] == {"team": "data"}


def test_a_pod_naming_a_missing_archive_or_a_bad_port_is_refused_naming_it(crds, operator_namespace, webhook):
    api, ns = crds.api_client(), operator_namespace
    body = _refusal(api, ns, _pod("orphan", {"pyrostore.io/serve": "no-such-archive"}))
    assert "no-such-archive" in body and "pyrostore.io/serve" in body and "does not exist" in body
    assert "sidecar.pyrostore.io" in body  # the apiserver names the webhook that refused
    create_custom(api, ns, "topicarchives", topic_archive("ports", "k:9092", "ports", {"url": "s3://b/p"}))
    body = _refusal(api, ns, _pod("bad-port", {"pyrostore.io/serve": "ports", "pyrostore.io/serve-port": "http"}))
    assert "pyrostore.io/serve-port must be a port number" in body and "'http'" in body


def _produce_tail(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(12):
        producer.produce(topic, b"tail %d" % i, b"tail-%d" % i, partition=i % 2, headers=EDGE_HEADERS)
    assert producer.flush(30) == 0


def test_the_sidecar_command_serves_the_archive_with_kafkas_head_deleted_and_the_live_tail(
    crds, operator_namespace, webhook, kafka, s3_server, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    clients.kcat_folder()  # a missing client fails here, naming its build log
    topic = create_topic(kafka.bootstrap, 2, BIG_TOPIC)
    fill_edge(kafka.bootstrap, topic)
    archive = S3Archive(s3_server)
    rows = archive_all(archive, kafka.bootstrap, {topic: 2}, tmp_path)
    _produce_tail(kafka.bootstrap, topic)
    expected = clients.kcat_consume(kafka.bootstrap, topic)
    delete_head(kafka.bootstrap, topic, {p: kept[-1][0] + 1 for p, kept in rows[topic].items()})
    assert clients.kcat_consume(kafka.bootstrap, topic) != expected  # Kafka alone no longer has the head

    create_credentials_secret(api, ns, "s3-credentials", s3_server)
    storage = _storage(archive.url, s3_server.endpoint, s3_server.region)
    create_custom(api, ns, "topicarchives", topic_archive("edge", kafka.bootstrap, topic, storage))
    port = free_port()
    pod = _create_pod(api, ns, _pod("reader", {"pyrostore.io/serve": "edge", "pyrostore.io/serve-port": str(port)}))
    serve = pod["spec"]["initContainers"][0]

    sidecar = run_container(api, ns, pod["spec"], tmp_path / "sidecar.log", name=SIDECAR)
    try:
        probe = [sys.executable if part == "python" else part for part in serve["startupProbe"]["exec"]["command"]]
        wait_until(lambda: subprocess.run(probe, capture_output=True).returncode == 0, 60, "the startup probe", 0.5)
        assert sidecar.poll() is None, (tmp_path / "sidecar.log").read_text()[-2000:]
        assert clients.kcat_consume(f"127.0.0.1:{port}", topic) == expected
    finally:
        sidecar.terminate()
        assert sidecar.wait(60) == 0, (tmp_path / "sidecar.log").read_text()[-2000:]
    log = (tmp_path / "sidecar.log").read_text()
    assert all(json.loads(line)["level"] not in ("warning", "error") for line in log.splitlines()), log[-3000:]
    assert s3_server.secret_key not in everything_in(api, ns)
    assert s3_server.secret_key not in webhook.operator.log_text()


def test_with_the_webhook_down_the_failure_policy_decides_and_unannotated_pods_are_untouched(
    crds, operator_namespace, webhook
):
    api, ns = crds.api_client(), operator_namespace
    create_custom(api, ns, "topicarchives", topic_archive("down", "k:9092", "down", {"url": "s3://b/p"}))
    webhook.operator.stop()  # the last test of the module: the webhook stays down

    body = _refusal(api, ns, _pod("refused", {"pyrostore.io/serve": "down"}))  # the chart's default: Fail
    assert "failed calling webhook" in body and "sidecar.pyrostore.io" in body
    assert "initContainers" not in _create_pod(api, ns, _pod("unannotated"))["spec"]

    client.AdmissionregistrationV1Api(api).patch_mutating_webhook_configuration(
        webhook.configuration, [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]
    )
    admitted = wait_until(
        lambda: _admitted(api, ns, _pod(f"ignored-{uuid.uuid4().hex[:4]}", {"pyrostore.io/serve": "down"})),
        30,
        "failurePolicy Ignore to take effect",
    )
    assert "initContainers" not in admitted["spec"]  # started without its sidecar: what Ignore means


def _admitted(api: client.ApiClient, namespace: str, pod: dict) -> dict | None:
    try:
        return _create_pod(api, namespace, pod)
    except ApiException as exc:
        if "failed calling webhook" in exc.body:  # the apiserver's configuration cache is not updated yet
            return None
        raise
