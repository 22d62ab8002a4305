"""The operator's own pods against Kafka's SASL_SSL listener and MinIO over HTTPS, under the running operator: the
TopicArchive names Secrets only; its archiver pod, run as the kubelet would run it (Secrets mounted as files and
given as environment), archives over SASL_SSL, and the status the operator writes reaches the archive's head. With
a wrong password the pod stops with one line and the status says ``KafkaAccessDenied``. No password or key
appears in the pod's spec, the process listing, the pod's log, the operator's log, the status or the events."""

from __future__ import annotations

import json
import signal
import uuid

from kubernetes import client

from tests.kafka_helpers import produce_numbered
from tests.operator_helpers import (
    create_credentials_secret,
    create_custom,
    custom,
    field_env,
    run_container,
    statefulset_pod,
    topic_archive,
    wait_until,
    with_secret_mounts,
)
from tests.security_helpers import (
    REFUSALS,
    assert_no_secret,
    assert_one_line_error,
    command_line,
    properties_secret,
    restricted_topic,
    tls_storage,
)


def _archive(api, ns: str, name: str, kafka, s3_tls_server, topic: str, properties: dict[str, str]) -> dict:
    """Create a TopicArchive of ``topic`` over the SASL_SSL listener into the HTTPS MinIO, Secrets only."""
    prefix = uuid.uuid4().hex[:10]
    create_credentials_secret(api, ns, f"s3-{prefix}", s3_tls_server)
    body = topic_archive(
        name, kafka.sasl_bootstrap, topic, tls_storage(s3_tls_server, prefix, f"s3-{prefix}"), segment={"age": "200ms"}
    )
    body["spec"]["kafka"]["propertiesSecret"] = {"name": properties_secret(api, ns, properties)}
    return create_custom(api, ns, "topicarchives", body)


def _everything_said(api, ns: str, name: str, pod: dict, operator) -> str:
    """The pod's spec, the resource with its status, the namespace's events and the operator's log."""
    events = client.CoreV1Api(api).list_namespaced_event(ns).items
    said = [json.dumps(pod), json.dumps(custom(api, ns, "topicarchives", name)), operator.log_text()]
    return "\n".join(said + [f"{e.reason}: {e.message}" for e in events])


def test_the_archiver_pod_archives_over_sasl_ssl_and_the_status_follows(
    crds, operator_namespace, operator, kafka, s3_tls_server, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    secrets = [*kafka.users.values(), s3_tls_server.secret_key]
    topic = restricted_topic(kafka, partitions=2)  # only the archiver's user may read it
    produce_numbered(kafka.bootstrap, topic, 40, partitions=2)
    _archive(api, ns, "sasl", kafka, s3_tls_server, topic, kafka.sasl_properties("pyrostore"))
    pod = statefulset_pod(api, ns, "sasl-archiver")
    log = tmp_path / "archiver.log"
    spec = with_secret_mounts(api, ns, pod["spec"], tmp_path / "mounts")
    archiver = run_container(api, ns, spec, log, field_env(pod))
    try:

        def caught_up() -> bool:
            status = custom(api, ns, "topicarchives", "sasl").get("status") or {}
            partitions = status.get("partitions") or []
            return len(partitions) == 2 and all(p.get("archivedOffset") == 20 and p["lag"] == 0 for p in partitions)

        wait_until(caught_up, 90, f"the status to show the archive caught up (log {log})", interval=1.0)
        assert_no_secret(command_line(archiver.pid), *secrets)
    finally:
        archiver.send_signal(signal.SIGTERM)
        assert archiver.wait(60) == 0, log.read_text()[-2000:]
    assert_no_secret(log.read_text() + _everything_said(api, ns, "sasl", pod, operator), *secrets)
    assert "Traceback" not in operator.log_text()


def test_a_wrong_password_stops_the_pod_with_one_line_and_the_status_says_so(
    crds, operator_namespace, operator, kafka, s3_tls_server, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    secrets = [*kafka.users.values(), s3_tls_server.secret_key, "not-" + kafka.users["pyrostore"]]
    topic = restricted_topic(kafka)
    wrong = kafka.sasl_properties("pyrostore", "not-" + kafka.users["pyrostore"])
    _archive(api, ns, "refused", kafka, s3_tls_server, topic, wrong)
    pod = statefulset_pod(api, ns, "refused-archiver")
    log = tmp_path / "archiver.log"
    spec = with_secret_mounts(api, ns, pod["spec"], tmp_path / "mounts")
    archiver = run_container(api, ns, spec, log, field_env(pod))
    assert archiver.wait(60) == 1, log.read_text()[-2000:]
    assert_one_line_error(log.read_text(), REFUSALS["wrong-password"], *secrets)

    def denied() -> dict | None:
        status = custom(api, ns, "topicarchives", "refused").get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        return ready if ready and ready.get("reason") == "KafkaAccessDenied" else None

    ready = wait_until(denied, 60, "the status to say KafkaAccessDenied", interval=1.0)
    assert ready["status"] == "False" and REFUSALS["wrong-password"] in ready["message"], ready
    assert_no_secret(_everything_said(api, ns, "refused", pod, operator), *secrets)
