"""Test helpers for the operator: CRDs on the stack's API server, the operator as a process, pods run locally.

The stack has no kubelet, so :func:`run_container` runs a pod's container command as a local process with
the environment the kubelet would give it (its Secret's keys from ``envFrom``, its pod's name from the downward
API with :func:`field_env`) and its ``$(VAR)`` references expanded from that environment, as the kubelet does.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import urllib3
import yaml
from confluent_kafka import Producer
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from pyrostore.operator.conditions import kstatus
from tests.consumer_helpers import create_topic

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION = "pyrostore.io", "v1alpha1"


def apply_crds(api: client.ApiClient, folder: Path = ROOT / "crds") -> None:
    """Create or replace every CRD in ``folder`` and wait until each is established."""
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            current = extensions.read_custom_resource_definition(crd["metadata"]["name"])
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)
        except ApiException as exc:
            if exc.status != 404:
                raise
            extensions.create_custom_resource_definition(crd)
    for path in sorted(folder.glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]

        def established(name: str = name) -> bool:
            conditions = extensions.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_until(established, 30, f"CRD {name} to be established")
    wait_for_garbage_collector(api)


def wait_for_garbage_collector(api: client.ApiClient, namespace: str = "default") -> None:
    """Wait until the garbage collector follows owner references to TopicArchives (tests rely on it).

    kube-controller-manager's garbage collector looks for new resources every 30 s; until it found the CRD, a
    child of a TopicArchive deleted then is collected only after a backoff of a minute or more.
    """
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    deadline = time.monotonic() + 90
    while True:
        name = f"gc-probe-{uuid.uuid4().hex[:8]}"
        body = topic_archive(name, "probe.invalid:9092", "probe", {"url": "file:///probe"})
        owner = create_custom(api, namespace, "topicarchives", body)
        reference = {key: owner[key] for key in ("apiVersion", "kind")} | {
            "name": name,
            "uid": owner["metadata"]["uid"],
        }
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "ownerReferences": [reference]}})
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "topicarchives", name)
        gone = time.monotonic() + 3
        while time.monotonic() < gone and read_or_none(core.read_namespaced_config_map, name, namespace):
            time.sleep(0.2)
        if read_or_none(core.read_namespaced_config_map, name, namespace) is None:
            return
        read_or_none(core.delete_namespaced_config_map, name, namespace)  # None: collected meanwhile
        assert time.monotonic() < deadline, "the garbage collector never collected a TopicArchive's child"


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until ``condition`` returns something truthy and return it; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(interval)


class OperatorProcess:
    """``pyrostore operator`` as a child process with a kubeconfig, its JSON log in a file."""

    def __init__(
        self, kubeconfig: Path, namespaces: list[str], log: Path, command: list[str] | None = None, **env: str
    ) -> None:
        self.log = log
        args = [sys.executable, "-m", "pyrostore", "operator", "--log-format", "json"]
        for namespace in namespaces:
            args += ["--namespace", namespace]
        if command:  # a container's command, e.g. the Helm chart's
            assert command[0] == "pyrostore", command
            args = [sys.executable, "-m", *command]
        environment = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": str(ROOT),
            "PYROSTORE_STATUS_INTERVAL": "1",
            "PYROSTORE_IMAGE": "registry.example/pyrostore:test",
            **env,
        }
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environment)

    def log_text(self) -> str:
        """Everything the operator logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if kopf does not stop within 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def pod_container(pod_spec: Mapping, name: str | None = None) -> Mapping:
    """The pod's container (or init container) called ``name``; its first container when no name is given."""
    if name is None:
        return pod_spec["containers"][0]
    found = [c for c in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]] if c["name"] == name]
    assert found, f"the pod has no container {name}"
    return found[0]


def secret_env(api: client.ApiClient, namespace: str, pod_spec: Mapping, name: str | None = None) -> dict[str, str]:
    """The environment a kubelet gives a container of the pod (its first by default) from its ``env`` and
    ``envFrom`` Secrets."""
    container = pod_container(pod_spec, name)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        secret = client.CoreV1Api(api).read_namespaced_secret(source["secretRef"]["name"], namespace)
        env |= {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
    env |= {item["name"]: item["value"] for item in container.get("env") or [] if "value" in item}
    return env


def field_env(pod: Mapping, name: str | None = None) -> dict[str, str]:
    """The environment a kubelet gives a container of ``pod`` (a Pod object) from the downward API: ``env`` items
    whose ``valueFrom.fieldRef`` is the pod's ``metadata.name`` or ``metadata.namespace``."""
    env = {}
    for item in pod_container(pod["spec"], name).get("env") or []:
        path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if path:
            assert path in ("metadata.name", "metadata.namespace"), f"field_env does not know {path}"
            env[item["name"]] = pod["metadata"][path.split(".")[1]]
    return env


_REFERENCE = re.compile(r"\$(?:\$|\(([^)]*)\))")


def expand(text: str, env: Mapping[str, str]) -> str:
    """``text`` with its ``$(VAR)`` references replaced from ``env``, as the kubelet expands a container's command
    (Kubernetes' ``third_party/forked/golang/expansion``): ``$$`` is a literal ``$``, and a reference to an
    undefined variable stays as written."""
    return _REFERENCE.sub(lambda m: "$" if m[1] is None else env.get(m[1], m[0]), text)


def run_container(
    api: client.ApiClient,
    namespace: str,
    pod_spec: Mapping,
    log: Path,
    extra_env: dict[str, str] | None = None,
    name: str | None = None,
) -> subprocess.Popen:
    """Start a container's command of the pod (its first by default) locally (``pyrostore`` run from this
    checkout), as a kubelet would: ``extra_env`` stands for what the kubelet adds beyond the Secrets (the
    downward API's :func:`field_env`, a Job's completion index)."""
    container_env = {**secret_env(api, namespace, pod_spec, name), **(extra_env or {})}
    written = pod_container(pod_spec, name)["command"]
    # A kubelet would pass an undefined $(VAR) on as written; here it means the test forgot to give the variable.
    undefined = {m[1] for arg in written for m in _REFERENCE.finditer(arg) if m[1] is not None} - container_env.keys()
    assert not undefined, f"the command refers to variables its env does not define: {sorted(undefined)}"
    command = [expand(arg, container_env) for arg in written]
    assert command[0] == "pyrostore", command
    env = {**os.environ, "PYTHONPATH": str(ROOT), **container_env}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", *command], stdout=out, stderr=subprocess.STDOUT, env=env)


def report_pod_end(api: client.ApiClient, namespace: str, pod: Mapping, exit_codes: Mapping[str, int]) -> None:
    """What a kubelet reports when the pod's containers exited with ``exit_codes`` (by name; its native sidecars,
    init containers with ``restartPolicy: Always``, are ended by the kubelet after them with SIGTERM's 143)."""

    def status(container: Mapping, code: int) -> dict:
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": terminated},
        }

    spec = pod["spec"]
    codes = [exit_codes[c["name"]] for c in spec["containers"]]
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    body = {
        "status": {
            "phase": "Succeeded" if not any(codes) else "Failed",
            "initContainerStatuses": [status(c, 143) for c in sidecars],
            "containerStatuses": [status(c, code) for c, code in zip(spec["containers"], codes, strict=True)],
        }
    }
    client.CoreV1Api(api).patch_namespaced_pod_status(pod["metadata"]["name"], namespace, body)


def read_or_none(read: Callable[..., Any], *args: str) -> Any:
    """What ``read(*args)`` (a client's read call) returns, or None when the object does not exist."""
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def custom(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict | None:
    """A custom resource of ``pyrostore.io`` as a dict, or None when it does not exist."""
    return read_or_none(
        client.CustomObjectsApi(api).get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
    )


def create_custom(api: client.ApiClient, namespace: str, plural: str, body: dict) -> dict:
    """Create a custom resource, retrying while its freshly established API still answers 404."""
    objects = client.CustomObjectsApi(api)
    for _ in range(100):
        try:
            return objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.1)
    raise AssertionError(f"the {plural} API never appeared")


def everything_in(api: client.ApiClient, namespace: str) -> str:
    """Every object the operator could have written in ``namespace`` (Secrets aside), as one JSON text."""
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    objects = client.CustomObjectsApi(api)
    found: list[Any] = [
        objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        for plural in ("topicarchives", "replayjobs")
    ]
    for listing in (
        apps.list_namespaced_deployment,
        apps.list_namespaced_replica_set,
        apps.list_namespaced_stateful_set,
        apps.list_namespaced_controller_revision,
        batch.list_namespaced_job,
        core.list_namespaced_pod,
        core.list_namespaced_service,
        core.list_namespaced_event,
        core.list_namespaced_config_map,
    ):
        found.append(api.sanitize_for_serialization(listing(namespace)))
    return json.dumps(found)


def create_credentials_secret(api: client.ApiClient, namespace: str, name: str, s3_server) -> None:
    """A Secret holding the stack's S3 credentials under the standard AWS environment variable names."""
    data = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


def topic_archive(name: str, bootstrap: str, topic: str, storage: dict, **spec: Any) -> dict:
    """A TopicArchive resource archiving ``topic`` into ``storage`` (a spec's ``storage`` section)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TopicArchive",
        "metadata": {"name": name},
        "spec": {"kafka": {"bootstrapServers": bootstrap, "topic": topic}, "storage": storage, **spec},
    }


def replay_job(name: str, topic: str, storage: dict, bootstrap: str, to_topic: str, **spec: Any) -> dict:
    """A ReplayJob resource replaying the archive of ``topic`` in ``storage`` into ``to_topic``."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReplayJob",
        "metadata": {"name": name},
        "spec": {
            "source": {"topic": topic, "storage": storage},
            "target": {"bootstrapServers": bootstrap, "topic": to_topic},
            **spec,
        },
    }


def topic_near_retention(bootstrap: str, records: int = 5) -> str:
    """A new topic with a one-hour ``retention.ms`` holding ``records`` records 55 minutes old: past the operator's
    AtRisk mark (80% of the retention), not yet deleted by Kafka."""
    topic = create_topic(bootstrap, config={"retention.ms": str(3_600_000)})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    old = int(time.time() * 1000) - 55 * 60_000
    for i in range(records):
        producer.produce(topic, b"v%d" % i, timestamp=old + i)
    assert producer.flush(30) == 0
    return topic


def s3_storage(s3_server, prefix: str, secret: str = "s3-credentials") -> dict:
    """A spec's ``storage`` section for ``prefix`` of the stack's MinIO bucket, credentials from ``secret``."""
    return {
        "url": f"s3://{s3_server.bucket}/{prefix}",
        "options": {"endpoint_url": s3_server.endpoint, "region": s3_server.region},
        "credentialsSecret": {"name": secret},
    }


def statefulset_pod(api: client.ApiClient, namespace: str, statefulset: str, ordinal: int = 0) -> dict:
    """The pod ``<statefulset>-<ordinal>`` as the StatefulSet controller created it (waiting for it), as a dict."""
    read, name = client.CoreV1Api(api).read_namespaced_pod, f"{statefulset}-{ordinal}"
    pod = wait_until(lambda: read_or_none(read, name, namespace), 30, f"the StatefulSet controller to create {name}")
    return api.sanitize_for_serialization(pod)


def pods_of(api: client.ApiClient, namespace: str, job: str) -> list:
    """The pods the Job controller created for ``job``."""
    return client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={job}").items


def report_exit(api: client.ApiClient, namespace: str, pod, exit_code: int) -> None:
    """What a kubelet reports when a pod's only container exited with ``exit_code``."""
    terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
    client.CoreV1Api(api).patch_namespaced_pod_status(
        pod.metadata.name,
        namespace,
        {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": pod.spec.containers[0].name,
                        "image": pod.spec.containers[0].image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        },
    )


class StatusRecorder:
    """Every version of one custom resource the API server sends on a watch, in order."""

    def __init__(self, api: client.ApiClient, namespace: str, plural: str, name: str) -> None:
        self.versions: list[dict] = []
        self._stopped = False
        self._watch = watch.Watch()
        lister = client.CustomObjectsApi(api).list_namespaced_custom_object
        self._thread = threading.Thread(
            target=self._run, args=(lister, namespace, plural, f"metadata.name={name}"), daemon=True
        )
        self._thread.start()

    def _run(self, lister, namespace: str, plural: str, selector: str) -> None:
        try:
            for event in self._watch.stream(lister, GROUP, VERSION, namespace, plural, field_selector=selector):
                self.versions.append(event["object"])
        except urllib3.exceptions.ProtocolError:
            if not self._stopped:  # stopping cuts the stream mid-chunk; anything else is a failure
                raise

    def stop(self) -> None:
        """End the watch."""
        self._stopped = True
        self._watch.stop()

    def kstatus_sequence(self) -> list[tuple[int, int | None, str]]:
        """(generation, observedGeneration, kstatus) of each version with a status, repeats collapsed."""
        seen: list[tuple[int, int | None, str]] = []
        for body in self.versions:
            if not body.get("status", {}).get("conditions"):
                continue
            state = (body["metadata"]["generation"], body["status"].get("observedGeneration"), kstatus(body))
            if not seen or seen[-1] != state:
                seen.append(state)
        return seen


def with_secret_mounts(api: client.ApiClient, namespace: str, pod_spec: Mapping, root: Path) -> dict:
    """A copy of ``pod_spec`` whose first container's Secret volumes are written under ``root``, as the kubelet
    mounts them (a volume's ``items``, else every key), and whose command names those local copies instead of
    the mount paths, so that :func:`run_container` runs it here."""
    spec = copy.deepcopy(dict(pod_spec))
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        data = client.CoreV1Api(api).read_namespaced_secret(source["secretName"], namespace).data or {}
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        local = root / mount["mountPath"].strip("/")
        local.mkdir(parents=True, exist_ok=True)
        for item in items:
            (local / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
        container["command"] = [arg.replace(mount["mountPath"], str(local)) for arg in container["command"]]
    return spec
