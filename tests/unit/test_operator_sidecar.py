"""The serve sidecar added to annotated pods, and the webhook's self-managed certificates (pure functions)."""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from pyrostore.errors import InvalidSetting
from pyrostore.operator.certificates import ca_bundle_patch, issue
from pyrostore.operator.manifests import serve_job
from pyrostore.operator.settings import OperatorSettings
from pyrostore.operator.sidecar import (
    SidecarRefused,
    SidecarSettings,
    has_sidecar,
    missing_archive,
    requested_archive,
    requested_port,
    serve_pod,
    with_sidecar,
)
from pyrostore.operator.webhook_server import WebhookSettings

SETTINGS = OperatorSettings(image="img:1", image_pull_policy="Always")
RESOURCES = {"requests": {"cpu": "50m"}}


def _archive() -> dict:
    return {
        "kind": "TopicArchive",
        "metadata": {"name": "orders", "namespace": "team-a", "uid": "u-1"},
        "spec": {
            "kafka": {
                "bootstrapServers": "kafka:9092",
                "topic": "orders",
                "properties": {"client.rack": "a"},
                "propertiesSecret": {"name": "kafka-client"},
            },
            "storage": {
                "url": "s3://bucket/prefix",
                "options": {"region": "eu-west-1"},
                "credentialsSecret": {"name": "archive-credentials"},
            },
        },
    }


def _pod(**annotations: str) -> dict:
    return {
        "metadata": {"name": "app", "annotations": annotations},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "app:1"}],
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "storage-credentials", "emptyDir": {}}],
        },
    }


def test_the_sidecar_comes_first_as_a_native_sidecar_serving_the_archive_and_its_live_topic():
    pod = _pod()
    spec = with_sidecar(pod["spec"], _archive(), SETTINGS, 19092, RESOURCES)
    serve, migrate = spec["initContainers"]
    assert migrate == pod["spec"]["initContainers"][0]
    assert spec["containers"] == pod["spec"]["containers"]
    assert serve["name"] == "pyrostore-serve" and serve["restartPolicy"] == "Always"
    assert serve["image"] == "img:1" and serve["resources"] == RESOURCES
    text = " ".join(serve["command"])
    assert serve["command"][:2] == ["pyrostore", "serve"]
    for expected in (
        "--store s3://bucket/prefix",
        "--topic orders",
        "--bootstrap-servers kafka:9092",
        "--listen 127.0.0.1:19092",
        "-o region=eu-west-1",
        "-X client.rack=a",
        "--kafka-properties /etc/pyrostore/kafka/client.properties",
    ):
        assert expected in text
    assert "--advertise" not in text  # clients are told the listen address: 127.0.0.1:19092
    assert serve["envFrom"] == [{"secretRef": {"name": "archive-credentials"}}]
    assert "ports" not in serve
    for probe in (serve["startupProbe"], serve["readinessProbe"]):
        assert probe["exec"]["command"][:2] == ["python", "-c"]
        assert "('127.0.0.1', 19092)" in probe["exec"]["command"][2]
    assert serve["securityContext"]["runAsNonRoot"] is True


def test_the_sidecar_volumes_are_prefixed_and_hold_secret_references_only():
    pod = _pod()
    spec = with_sidecar(pod["spec"], _archive(), SETTINGS, 9092, RESOURCES)
    names = [v["name"] for v in spec["volumes"]]
    assert names[:2] == ["tmp", "storage-credentials"]  # the user's, untouched
    assert names[2:] == [
        "pyrostore-serve-tmp",
        "pyrostore-serve-storage-credentials",
        "pyrostore-serve-kafka-properties",
    ]
    mounts = {m["name"] for m in spec["initContainers"][0]["volumeMounts"]}
    assert mounts == set(names[2:])
    secrets = [v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v]
    assert secrets == ["archive-credentials", "kafka-client"]
    assert "password" not in json.dumps(spec).lower()


def test_a_pod_with_the_sidecar_is_not_given_two_and_the_input_is_not_changed():
    pod = _pod()
    before = json.dumps(pod)
    once = with_sidecar(pod["spec"], _archive(), SETTINGS, 9092, RESOURCES)
    assert json.dumps(pod) == before
    assert has_sidecar(once) and not has_sidecar(pod["spec"])
    assert with_sidecar(once, _archive(), SETTINGS, 9092, RESOURCES) == once


def test_a_user_volume_with_a_sidecar_volume_name_is_refused_by_name():
    pod = _pod()
    pod["spec"]["volumes"].append({"name": "pyrostore-serve-tmp", "emptyDir": {}})
    with pytest.raises(SidecarRefused, match="pyrostore-serve-tmp"):
        with_sidecar(pod["spec"], _archive(), SETTINGS, 9092, RESOURCES)


def test_annotations_name_the_archive_and_the_port():
    assert requested_archive({"metadata": {}}) is None
    assert requested_archive(_pod(**{"pyrostore.io/serve": "orders"})) == "orders"
    with pytest.raises(SidecarRefused, match=r"pyrostore\.io/serve is empty"):
        requested_archive(_pod(**{"pyrostore.io/serve": " "}))
    assert requested_port(_pod(), 9092) == 9092
    assert requested_port(_pod(**{"pyrostore.io/serve-port": "19092"}), 9092) == 19092
    for bad in ("x", "0", "70000", "-1"):
        with pytest.raises(SidecarRefused, match=r"pyrostore\.io/serve-port must be a port number"):
            requested_port(_pod(**{"pyrostore.io/serve-port": bad}), 9092)
    assert "'orders'" in missing_archive("team-a", "orders") and "team-a" in missing_archive("team-a", "orders")


def test_settings_come_from_the_environment():
    assert SidecarSettings.from_env({}) == SidecarSettings()
    got = SidecarSettings.from_env({"PYROSTORE_SERVE_PORT": "9093", "PYROSTORE_SERVE_RESOURCES": json.dumps(RESOURCES)})
    assert (got.port, got.resources) == (9093, RESOURCES)
    assert not WebhookSettings.from_env({}).enabled
    webhook = WebhookSettings.from_env(
        {
            "PYROSTORE_WEBHOOK_PORT": "9443",
            "PYROSTORE_WEBHOOK_CONFIGURATION": "pyrostore",
            "PYROSTORE_WEBHOOK_HOSTS": "pyrostore-webhook.sys.svc, 127.0.0.1",
        }
    )
    assert webhook.enabled and webhook.port == 9443 and webhook.address == "0.0.0.0"
    assert webhook.hosts == ("pyrostore-webhook.sys.svc", "127.0.0.1") and webhook.cert_dir is None
    assert WebhookSettings.from_env({"PYROSTORE_WEBHOOK_PORT": "9443", "PYROSTORE_WEBHOOK_CERT_DIR": "/c"}).enabled
    for env, named in (
        ({"PYROSTORE_WEBHOOK_PORT": "http"}, "PYROSTORE_WEBHOOK_PORT"),
        ({"PYROSTORE_WEBHOOK_PORT": "9443"}, "PYROSTORE_WEBHOOK_HOSTS"),
        ({"PYROSTORE_SERVE_PORT": "0"}, "PYROSTORE_SERVE_PORT"),
        ({"PYROSTORE_SERVE_RESOURCES": "{cpu"}, "PYROSTORE_SERVE_RESOURCES"),
        ({"PYROSTORE_SERVE_RESOURCES": "[]"}, "PYROSTORE_SERVE_RESOURCES"),
    ):
        with pytest.raises(InvalidSetting, match=named):
            (WebhookSettings if "WEBHOOK" in named else SidecarSettings).from_env(env)


def test_the_serving_certificate_is_signed_by_the_ca_for_its_names():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    issued = issue(["pyrostore-webhook.sys.svc", "127.0.0.1"], now=now, lifetime=timedelta(days=90))
    ca = x509.load_pem_x509_certificate(issued.ca)
    leaf = x509.load_pem_x509_certificate(issued.certificate)
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pyrostore-webhook.sys.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert leaf.not_valid_before_utc < now < leaf.not_valid_after_utc == issued.not_after
    assert issued.not_after - now == timedelta(days=90)
    assert now + timedelta(days=59) < issued.renew_at < now + timedelta(days=61)
    assert b"PRIVATE KEY" in issued.key and b"PRIVATE KEY" not in issued.ca + issued.certificate
    assert issue(["a.example"]).ca != issue(["a.example"]).ca
    with pytest.raises(ValueError, match="host name"):
        issue([])


def test_the_ca_bundle_patch_sets_each_webhook_that_lacks_it():
    bundle = b"-----BEGIN CERTIFICATE-----\n...\n"
    encoded = base64.b64encode(bundle).decode()
    configuration = {
        "webhooks": [
            {"name": "a", "clientConfig": {"url": "https://x"}},
            {"name": "b", "clientConfig": {"service": {"name": "s"}, "caBundle": encoded}},
            {"name": "c", "clientConfig": {"caBundle": "b2xk"}},
        ]
    }
    assert ca_bundle_patch(configuration, bundle) == [
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": encoded},
        {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": encoded},
    ]
    configuration["webhooks"] = [configuration["webhooks"][1]]
    assert ca_bundle_patch(configuration, bundle) == []


def _serve_replay(**serve) -> dict:
    template = {
        "metadata": {"labels": {"app": "reader"}, "annotations": {"team": "data"}},
        "spec": {"containers": [{"name": "reader", "image": "kcat:1", "command": ["kcat", "-b", "localhost:9092"]}]},
    }
    return {
        "kind": "ReplayJob",
        "metadata": {"name": "reads", "namespace": "team-a", "uid": "abcdef123456"},
        "spec": {"serve": {"topicArchive": "orders", "template": template, **serve}, "backoffLimit": 2},
    }


def test_a_serve_mode_job_runs_the_consumer_once_beside_the_sidecar():
    body = _serve_replay(port=19092)
    job = serve_job(body, serve_pod(body, _archive(), SETTINGS, SidecarSettings()))
    assert job["metadata"]["name"] == "reads-replay"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ReplayJob"
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 2)
    assert "completionMode" not in job["spec"]
    template = job["spec"]["template"]
    assert template["metadata"]["labels"] == {"app": "reader", **job["metadata"]["labels"]}
    assert template["metadata"]["annotations"] == {"team": "data"}
    pod = template["spec"]
    assert pod["containers"] == body["spec"]["serve"]["template"]["spec"]["containers"]
    assert pod["restartPolicy"] == "Never" and "serviceAccountName" not in pod
    serve = pod["initContainers"][0]
    assert serve["name"] == "pyrostore-serve" and serve["restartPolicy"] == "Always"
    assert "--listen 127.0.0.1:19092" in " ".join(serve["command"])
    assert serve["resources"] == SidecarSettings().resources
    assert "initContainers" not in body["spec"]["serve"]["template"]["spec"]  # the ReplayJob is not changed


def test_a_serve_mode_pod_takes_the_replays_resources_the_default_port_and_the_workload_account():
    body = _serve_replay()
    body["spec"]["resources"] = RESOURCES
    body["spec"]["serve"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    settings = OperatorSettings(image="img:1", service_account="archive-reader")
    pod = serve_pod(body, _archive(), settings, SidecarSettings(port=9093))
    assert pod["spec"]["restartPolicy"] == "OnFailure" and pod["spec"]["serviceAccountName"] == "archive-reader"
    assert pod["spec"]["initContainers"][0]["resources"] == RESOURCES
    assert "--listen 127.0.0.1:9093" in " ".join(pod["spec"]["initContainers"][0]["command"])
    body["spec"]["serve"]["template"]["spec"]["serviceAccountName"] = "own"
    assert serve_pod(body, _archive(), settings, SidecarSettings())["spec"]["serviceAccountName"] == "own"
    assert missing_archive("team-a", "late", "spec.serve.topicArchive").startswith("spec.serve.topicArchive names")
