"""The Helm chart: it lints, renders objects the real API server accepts, and its RBAC is enough for the
operator (run with a token of the chart's ServiceAccount) to do all its work without a permission error.

Schemas: kubeconform cannot download Kubernetes' schemas here (no network), so rendered manifests are
validated by the stack's kube-apiserver itself with a server-side dry run, the strictest check there is;
kubeconform validates the examples against the JSON schemas of our CRDs, offline.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from e2e.stack import builds
from e2e.stack.kube import write_user_kubeconfig
from e2e.stack.process import free_port
from tests.operator_helpers import (
    GROUP,
    ROOT,
    VERSION,
    OperatorProcess,
    create_credentials_secret,
    create_custom,
    custom,
    replay_job,
    topic_archive,
    wait_until,
)

CHART = ROOT / "charts" / "pyrostore"


def _tool(build) -> Path:
    try:
        return build()
    except builds.BuildError as exc:
        pytest.fail(f"cannot build a chart tool: {exc}", pytrace=False)


def _run(*cmd: str | Path) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def render(namespace: str, *sets: str, release: str = "pyrostore") -> list[dict]:
    """``helm template`` of the chart into ``namespace`` with ``--set`` values, as a list of objects."""
    args = [a for value in sets for a in ("--set", value)]
    text = _run(_tool(builds.helm), "template", release, CHART, "--namespace", namespace, *args)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("values", [[], ["watchNamespaces={team-a,team-b}", "serviceAccount.name=archiver-op"]])
def test_chart_lints(values):
    args = [a for value in values for a in ("--set", value)]
    _run(_tool(builds.helm), "lint", CHART, "--strict", *args)


def test_values_schema_rejects_bad_values():
    done = subprocess.run(
        [str(_tool(builds.helm)), "template", "x", str(CHART), "--set", "image.pullPolicy=Sometimes"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "pullPolicy" in done.stderr


def _create_all(api: client.ApiClient, docs: list[dict], dry_run: bool) -> None:
    resources = dynamic.DynamicClient(api).resources
    for doc in docs:
        kind = resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        params = {"dry_run": "All"} if dry_run else {}
        kind.create(body=doc, namespace=doc["metadata"].get("namespace"), **params)


def _namespaces(api: client.ApiClient, *names: str) -> None:
    for name in names:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})


@pytest.mark.parametrize("scope", ["cluster", "namespaces"])
def test_rendered_chart_passes_server_side_validation(crds, scope):
    api = crds.api_client()
    suffix = uuid.uuid4().hex[:6]
    release, watched = f"pyro-sys-{suffix}", f"pyro-watch-{suffix}"
    _namespaces(api, release, watched)
    sets = [f"watchNamespaces={{{watched}}}"] if scope == "namespaces" else []
    docs = render(release, *sets, "podAnnotations.team=data", "nodeSelector.disk=ssd")
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]
    expected += ["ClusterRole", "ClusterRoleBinding"] if scope == "cluster" else ["Role", "RoleBinding"]
    expected += ["Service", "MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"]  # the webhook
    assert kinds == sorted(expected)
    webhook = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail" and webhook["clientConfig"]["service"]["path"] == "/sidecar"
    selector = webhook.get("namespaceSelector", {}).get("matchExpressions")
    assert selector == (
        [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [watched]}] if sets else None
    )
    _create_all(api, docs, dry_run=True)  # the API server validates every field and reference, stores nothing
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["spec"]["names"]["categories"] == ["pyrostore"]


def test_webhook_values_failure_policy_cert_manager_and_off(crds):
    api = crds.api_client()
    release = f"pyro-cm-{uuid.uuid4().hex[:6]}"
    _namespaces(api, release)
    docs = render(release, "webhook.certManager.enabled=true", "webhook.failurePolicy=Ignore")
    by_kind = {d["kind"]: d for d in docs}
    configuration = by_kind["MutatingWebhookConfiguration"]
    assert configuration["webhooks"][0]["failurePolicy"] == "Ignore"
    service = by_kind["Service"]["metadata"]["name"]
    assert configuration["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"{release}/{service}"}
    certificate = by_kind["Certificate"]
    assert f"{service}.{release}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": by_kind["Issuer"]["metadata"]["name"], "kind": "Issuer"}
    operator = by_kind["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in operator["containers"][0]["env"]}
    assert (
        env["PYROSTORE_WEBHOOK_CERT_DIR"] == "/etc/pyrostore/webhook" and "PYROSTORE_WEBHOOK_CONFIGURATION" not in env
    )
    assert {"name": "webhook-tls", "secret": {"secretName": certificate["spec"]["secretName"]}} in operator["volumes"]
    # cert-manager's own kinds are not known to the stack's API server; everything else must be valid.
    assert not [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-webhook")]
    _create_all(api, [d for d in docs if d["kind"] not in ("Certificate", "Issuer")], dry_run=True)

    issuer = render(
        release,
        "webhook.certManager.enabled=true",
        "webhook.certManager.issuerRef.name=corp-ca",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert "Issuer" not in {d["kind"] for d in issuer}
    assert next(d for d in issuer if d["kind"] == "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
    }

    off = render(release, "webhook.enabled=false")
    assert not {"Service", "MutatingWebhookConfiguration"} & {d["kind"] for d in off}
    env = next(d for d in off if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "PYROSTORE_WEBHOOK_PORT" not in {e["name"] for e in env} and "PYROSTORE_SERVE_PORT" in {
        e["name"] for e in env
    }
    for bad, field in (("webhook.failurePolicy=Sometimes", "failurePolicy"), ("sidecar.port=0", "port")):
        done = subprocess.run(
            [str(_tool(builds.helm)), "template", "x", str(CHART), "--set", bad], capture_output=True, text=True
        )
        assert done.returncode != 0 and field in done.stderr


def _schema_folder(tmp: Path) -> Path:
    """Each CRD version's openAPIV3Schema as a JSON schema file, named as kubeconform looks them up."""
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            name = f"{crd['spec']['names']['kind'].lower()}_{version['name']}.json"
            (tmp / name).write_text(json.dumps(schema))
    return tmp


def test_examples_validate_with_kubeconform_against_the_crd_schemas(tmp_path):
    kubeconform = _tool(builds.kubeconform)
    schemas = _schema_folder(tmp_path)
    location = f"{schemas}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"
    examples = [ROOT / "examples" / name for name in ("topicarchive.yaml", "replayjob.yaml", "replayjob-serve.yaml")]
    out = _run(kubeconform, "-strict", "-summary", "-schema-location", location, *examples)
    assert "Valid: 3" in out
    broken = yaml.safe_load((ROOT / "examples" / "topicarchive.yaml").read_text())
    broken["spec"]["replicas"] = "two"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    done = subprocess.run(
        [str(kubeconform), "-strict", "-schema-location", location, str(tmp_path / "broken.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "replicas" in done.stdout


def test_examples_are_accepted_by_the_api_server(crds):
    api = crds.api_client()
    namespace = f"examples-{uuid.uuid4().hex[:6]}"
    _namespaces(api, namespace)
    docs = [
        yaml.safe_load((ROOT / "examples" / name).read_text())
        for name in ("secret.yaml", "topicarchive.yaml", "replayjob.yaml", "replayjob-serve.yaml")
    ]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    _create_all(api, docs, dry_run=True)


PERMISSION_WORDS = ("forbidden", "(403)", "permission")  # "(403)": as the API client prints it, not a timestamp


@pytest.mark.parametrize("scope", ["namespaces", "cluster"])
def test_operator_works_with_the_chart_service_account_token(crds, kafka, s3_server, new_topic, tmp_path, scope):
    api = crds.api_client()
    suffix = uuid.uuid4().hex[:6]
    release, watched = f"pyro-sys-{suffix}", f"pyro-watch-{suffix}"
    _namespaces(api, release, watched)
    webhook_port = free_port()
    sets = [f"livenessPort={free_port()}", "statusInterval=1", f"webhook.port={webhook_port}"]
    sets.append("webhook.extraHosts={127.0.0.1}")  # the stack has no Service routing: the API server calls a URL
    if scope == "namespaces":
        sets.append(f"watchNamespaces={{{watched}}}")
    docs = render(release, *sets, release=f"op-{suffix}")
    _create_all(api, docs, dry_run=False)
    configuration = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")["metadata"]["name"]
    client.AdmissionregistrationV1Api(api).patch_mutating_webhook_configuration(
        configuration,
        [
            {
                "op": "replace",
                "path": "/webhooks/0/clientConfig",
                "value": {"url": f"https://127.0.0.1:{webhook_port}/sidecar"},
            }
        ],
    )
    operator_doc = next(d for d in docs if d["kind"] == "Deployment")
    pod = operator_doc["spec"]["template"]["spec"]
    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(
            pod["serviceAccountName"], release, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    kubeconfig = write_user_kubeconfig(tmp_path / "kubeconfig", crds.server, crds.ca_file, token, "operator")
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    operator = OperatorProcess(kubeconfig, [], tmp_path / "operator.log", pod["containers"][0]["command"], **env)
    try:
        _exercise_operator(api, watched, kafka, s3_server, new_topic)
        _exercise_webhook(api, watched, configuration)
    finally:
        operator.stop()
        _delete_cluster_scoped(api, docs)
    log = operator.log_text()
    assert "created StatefulSet" in log and "created Deployment" in log and "created Service" in log
    assert "deleted Service" in log
    problems = [line for line in log.splitlines() if any(word in line.lower() for word in PERMISSION_WORDS)]
    assert problems == [], "\n".join(problems[:5])


def _delete_cluster_scoped(api: client.ApiClient, docs: list[dict]) -> None:
    resources = dynamic.DynamicClient(api).resources
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"):
            resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).delete(name=doc["metadata"]["name"])


def _exercise_operator(api: client.ApiClient, namespace: str, kafka, s3_server, new_topic) -> None:
    """Everything the operator does: children (the endpoint's Service too), status, Secrets, a finalizer, archive
    deletion, a Job."""
    create_credentials_secret(api, namespace, "creds", s3_server)
    topic = new_topic(partitions=1)
    storage = {
        "url": f"s3://{s3_server.bucket}/chart-{uuid.uuid4().hex[:6]}",
        "options": {"endpoint_url": s3_server.endpoint},
        "credentialsSecret": {"name": "creds"},
    }
    archive = topic_archive("chart", kafka.bootstrap, topic, storage, deletionPolicy="Delete", serve={})
    create_custom(api, namespace, "topicarchives", archive)
    replay = replay_job("chart", topic, storage, kafka.bootstrap, f"{topic}-copy")
    create_custom(api, namespace, "replayjobs", replay)
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
    wait_until(lambda: apps.list_namespaced_stateful_set(namespace).items, 30, "the archiver StatefulSet")
    wait_until(lambda: batch.list_namespaced_job(namespace).items, 30, "the replay Job")
    wait_until(
        lambda: custom(api, namespace, "topicarchives", "chart").get("status", {}).get("conditions"),
        30,
        "the TopicArchive's status",
    )
    wait_until(lambda: custom(api, namespace, "replayjobs", "chart").get("status", {}).get("phase"), 30, "a phase")
    core = client.CoreV1Api(api)
    wait_until(lambda: core.list_namespaced_service(namespace).items, 30, "the serve Service")
    core.delete_namespaced_service("chart-serve", namespace)  # restored: the operator watches Services
    wait_until(lambda: core.list_namespaced_service(namespace).items, 30, "the serve Service restored")
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "topicarchives", "chart", {"spec": {"serve": None}}
    )
    wait_until(lambda: not core.list_namespaced_service(namespace).items, 30, "the serve Service removed")
    wait_until(lambda: not apps.list_namespaced_deployment(namespace).items, 30, "the serve Deployment removed")
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "topicarchives", "chart")
    wait_until(lambda: custom(api, namespace, "topicarchives", "chart") is None, 60, "the TopicArchive's deletion")


def _exercise_webhook(api: client.ApiClient, namespace: str, configuration: str) -> None:
    """The webhook: the operator sets its configuration's caBundle, then the API server has it add a sidecar."""
    admission = client.AdmissionregistrationV1Api(api)
    wait_until(
        lambda: admission.read_mutating_webhook_configuration(configuration).webhooks[0].client_config.ca_bundle,
        60,
        "the operator to set the caBundle",
    )
    create_custom(api, namespace, "topicarchives", topic_archive("served", "k:9092", "served", {"url": "s3://b/p"}))
    pod = {
        "metadata": {"name": "served", "annotations": {"pyrostore.io/serve": "served"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }

    def created() -> Any:
        try:
            return client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
        except ApiException as exc:
            if "failed calling webhook" in exc.body:  # still starting (kopf serves once its resources are scanned)
                return None
            raise

    stored = wait_until(created, 60, "the webhook to admit the annotated pod")
    assert [c.name for c in stored.spec.init_containers] == ["pyrostore-serve"]
