"""The shared history endpoint of a TopicArchive (``spec.serve``): its Deployment, Service and status (pure)."""

from __future__ import annotations

import yaml

from pyrostore.operator.endpoint import (
    endpoint_address,
    serve_deployment,
    serve_selector,
    serve_service,
    serve_status,
    serving,
)
from pyrostore.operator.manifests import archiver_statefulset, drifted
from pyrostore.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(image="img:1", image_pull_policy="Always", service_account="archiver")


def _archive(serve: dict | None = None, **spec) -> dict:
    body = {
        "kind": "TopicArchive",
        "metadata": {"name": "orders", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092", "topic": "orders", "propertiesSecret": {"name": "kp"}},
            "storage": {"url": "s3://b/p", "options": {"region": "r"}, "credentialsSecret": {"name": "creds"}},
            **spec,
        },
    }
    if serve is not None:
        body["spec"]["serve"] = serve
    return body


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_serving_means_the_field_is_there_even_empty():
    assert serving(_archive({})) and serving(_archive({"replicas": 2}))
    assert not serving(_archive())


def test_endpoint_is_the_service_dns_name_unless_advertise_is_given():
    assert endpoint_address(_archive({})) == "orders-serve.team-a.svc:9092"
    assert endpoint_address(_archive({"service": {"port": 19092}})) == "orders-serve.team-a.svc:19092"
    assert endpoint_address(_archive({"advertise": "kafka-history.example.com:443"})) == (
        "kafka-history.example.com:443"
    )


def test_serve_deployment_runs_serve_on_every_interface_advertising_the_service():
    serve = {"replicas": 3, "resources": {"limits": {"cpu": "2"}}, "service": {"port": 19092}}
    body = _archive(serve, metricsPort=9200)
    deployment = serve_deployment(body, SETTINGS)
    assert deployment["metadata"]["name"] == "orders-serve"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    command = container["command"]
    assert command[:2] == ["pyrostore", "serve"]
    assert _arg(command, "--listen") == "0.0.0.0:9092"
    assert _arg(command, "--advertise") == "orders-serve.team-a.svc:19092"
    assert (_arg(command, "--topic"), _arg(command, "--store"), _arg(command, "--bootstrap-servers")) == (
        "orders",
        "s3://b/p",
        "k:9092",
    )
    assert _arg(command, "--metrics-port") == "9200"
    assert _arg(command, "--kafka-properties").endswith("/client.properties")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"kafka": 9092, "metrics": 9200}
    assert container["resources"] == {"limits": {"cpu": "2"}}
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert "env" not in container  # Secret references only
    assert pod["serviceAccountName"] == "archiver"
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "storage-credentials", "kafka-properties"}
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_serve_keeps_running_while_archiving_is_suspended():
    body = _archive({"replicas": 2}, suspend=True)
    assert serve_deployment(body, SETTINGS)["spec"]["replicas"] == 2
    assert archiver_statefulset(body, SETTINGS)["spec"]["replicas"] == 0


def test_service_selects_serve_pods_only_and_keeps_each_client_on_one_replica():
    body = _archive({"service": {"type": "NodePort", "port": 19092, "nodePort": 30092}})
    service = serve_service(body)
    assert service["metadata"]["name"] == "orders-serve"
    assert service["metadata"]["ownerReferences"][0]["kind"] == "TopicArchive"
    spec = service["spec"]
    assert spec["type"] == "NodePort"
    port = {"name": "kafka", "port": 19092, "targetPort": "kafka", "protocol": "TCP", "nodePort": 30092}
    assert spec["ports"] == [port]
    assert spec["sessionAffinity"] == "ClientIP"
    serve_pods = serve_deployment(body, SETTINGS)["spec"]["template"]["metadata"]["labels"]
    archiver_pods = archiver_statefulset(body, SETTINGS)["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"] == serve_selector(body)
    assert spec["selector"].items() <= serve_pods.items()
    assert not spec["selector"].items() <= archiver_pods.items()
    # The archiver's own selector does not pick the serve pods either.
    archiver_selector = archiver_statefulset(body, SETTINGS)["spec"]["selector"]["matchLabels"]
    assert not archiver_selector.items() <= serve_pods.items()


def test_defaults_make_a_cluster_ip_service_on_9092():
    spec = serve_service(_archive({}))["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "kafka", "port": 9092, "targetPort": "kafka", "protocol": "TCP"}]


def test_service_drift_ignores_what_the_server_fills_in_but_not_a_changed_port():
    desired = serve_service(_archive({}))
    actual = yaml.safe_load(yaml.safe_dump(desired))
    actual["spec"] |= {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ipFamilies": ["IPv4"]}
    actual["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    assert not drifted(desired, actual)
    actual["spec"]["ports"][0]["port"] = 1234
    assert drifted(desired, actual)


def test_status_shows_the_endpoint_and_the_replicas_last_seen():
    body = _archive({"replicas": 2})
    assert serve_status(body, None) == {
        "endpoint": "orders-serve.team-a.svc:9092",
        "service": "orders-serve",
        "replicas": 2,
        "readyReplicas": 0,
    }
    assert serve_status(body, {"status": {"readyReplicas": 1, "replicas": 2}})["readyReplicas"] == 1
