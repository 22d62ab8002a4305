"""The operator's archivers as static group members (KIP-345): each StatefulSet pod's archiver joins under its own
pod name, so a SIGKILLed one restarted in the same pod commits again within seconds; and an older operator's
archiver Deployment makes way for the StatefulSet."""

from __future__ import annotations

import copy
import signal
import threading
import time
import uuid

from confluent_kafka.admin import AdminClient
from kubernetes import client

from e2e.stack.process import free_port
from pyrostore.index.commits import read_head
from pyrostore.operator.manifests import (
    ARCHIVE_LABEL,
    archiver_statefulset,
    consumer_group,
    legacy_deployment_name,
)
from pyrostore.operator.settings import OperatorSettings
from pyrostore.store import open_store
from tests.kafka_helpers import assert_archive_equals_topic, keep_producing
from tests.operator_helpers import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_custom,
    custom,
    field_env,
    read_or_none,
    run_container,
    statefulset_pod,
    topic_archive,
    wait_until,
)

SESSION_MS = 60_000  # a dynamic member's partitions would wait this long after a SIGKILL


def _heads(store, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """Per partition: (writer epoch, next offset) of the newest commit, (0, 0) before the first."""
    heads = {p: read_head(store, topic, p) for p in range(partitions)}
    return {p: (h.writer_epoch, h.next_offset) if h else (0, 0) for p, h in heads.items()}


def _instance_ids(bootstrap: str, group: str) -> list[str | None]:
    """The group.instance.id of each member of ``group``, as the group coordinator knows them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(30)
    return sorted(m.group_instance_id for m in description.members)


def test_a_sigkilled_archiver_pod_rejoins_under_its_pod_name_within_seconds(
    crds, operator_namespace, operator, kafka, new_topic, tmp_path, capsys
):
    api, ns = crds.api_client(), operator_namespace
    topic = new_topic(partitions=3)
    url = f"file://{tmp_path}/archive"
    properties = {"session.timeout.ms": str(SESSION_MS), "heartbeat.interval.ms": "1000"}
    body = topic_archive("static", kafka.bootstrap, topic, {"url": url}, segment={"age": "200ms"})
    body["spec"]["kafka"]["properties"] = properties
    body["spec"]["metricsPort"] = free_port()
    created = create_custom(api, ns, "topicarchives", body)

    # The StatefulSet controller made the pod; the downward API gives it its name, which the command expands.
    pod = statefulset_pod(api, ns, "static-archiver")
    assert field_env(pod) == {"POD_NAME": "static-archiver-0"}
    store = open_store(url)
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.005))
    producer.start()
    log = tmp_path / "archiver.log"
    archiver = run_container(api, ns, pod["spec"], log, field_env(pod))
    resumed_after = []
    try:
        wait_until(lambda: all(n > 0 for _, n in _heads(store, topic, 3).values()), 60, "every partition archived")
        group = consumer_group(created)
        assert _instance_ids(kafka.bootstrap, group) == ["static-archiver-0"]
        for _ in range(3):
            before = _heads(store, topic, 3)
            archiver.send_signal(signal.SIGKILL)
            archiver.wait(10)
            started = time.monotonic()
            archiver = run_container(api, ns, pod["spec"], log, field_env(pod))  # the kubelet restarts the container

            def resumed(before=before) -> bool:
                now = _heads(store, topic, 3)
                return all(now[p][0] > before[p][0] and now[p][1] > before[p][1] for p in now)

            # Every partition committed by the new process (a higher writer epoch) past where the killed one was.
            wait_until(resumed, SESSION_MS / 1000, f"the restarted archiver to resume (log {log})", interval=0.1)
            resumed_after.append(time.monotonic() - started)
        assert _instance_ids(kafka.bootstrap, group) == ["static-archiver-0"]
    finally:
        stop.set()
        producer.join()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 3, url, log)
    finally:
        archiver.send_signal(signal.SIGTERM)
        assert archiver.wait(60) == 0, log.read_text()[-3000:]
    with capsys.disabled():
        figures = ", ".join(f"{s:.1f}s" for s in resumed_after)
        print(f"\narchiver pod restart to every partition committing again: {figures}")
    # A dynamic member would get nothing back before the killed member's 60 s session timed out.
    assert max(resumed_after) < SESSION_MS / 1000 / 2, resumed_after
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "topicarchives", "static")
    assert "Traceback" not in operator.log_text()


def _archive(name: str) -> dict:
    storage = {"url": "s3://archive-bucket/legacy", "options": {"endpoint_url": "http://minio.example:9000"}}
    return topic_archive(name, "kafka.example:9092", "orders", storage)


def _legacy_deployment(archive: dict, owned: bool) -> dict:
    """The archiver Deployment an operator before static membership made for ``archive`` (or, not ``owned``, a copy
    of it that someone else made under the same name)."""
    statefulset = copy.deepcopy(archiver_statefulset(archive, OperatorSettings(image="registry.example/pyrostore:old")))
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    at = container["command"].index("--instance-id")
    del container["command"][at : at + 2]
    del container["env"]
    metadata = statefulset["metadata"] | {"name": legacy_deployment_name(archive["metadata"]["name"])}
    if not owned:
        del metadata["ownerReferences"]
    spec = {key: statefulset["spec"][key] for key in ("replicas", "selector", "template")}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def test_an_older_operators_archiver_deployment_makes_way_for_the_statefulset(crds, tmp_path):
    api = crds.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    ns = f"op-legacy-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    operator = None
    try:
        # What an older operator left: a TopicArchive with its archiver Deployment, whose pod exists.
        legacy = create_custom(api, ns, "topicarchives", _archive("legacy"))
        apps.create_namespaced_deployment(ns, _legacy_deployment(legacy, owned=True))
        # Someone else's Deployment under the archiver's old name: not the operator's to delete.
        neighbour = create_custom(api, ns, "topicarchives", _archive("neighbour"))
        apps.create_namespaced_deployment(ns, _legacy_deployment(neighbour, owned=False))

        def pods_of(archive: str) -> list:
            return core.list_namespaced_pod(ns, label_selector=f"{ARCHIVE_LABEL}={archive}").items

        wait_until(lambda: pods_of("legacy"), 30, "the old Deployment's pod")

        # The new operator starts (an upgrade): the StatefulSet comes and the old Deployment and its pod go.
        operator = OperatorProcess(crds.kubeconfig, [ns], tmp_path / "operator.log")
        wait_until(
            lambda: read_or_none(apps.read_namespaced_stateful_set, "legacy-archiver", ns), 30, "the StatefulSet"
        )
        wait_until(
            lambda: read_or_none(apps.read_namespaced_deployment, "legacy-archiver", ns) is None,
            30,
            "the old Deployment to go",
        )

        def only_statefulset_pods() -> bool:
            pods = pods_of("legacy")
            return bool(pods) and all(p.metadata.owner_references[0].kind == "StatefulSet" for p in pods)

        wait_until(only_statefulset_pods, 60, "the old archiver pod to be garbage-collected")

        wait_until(
            lambda: read_or_none(apps.read_namespaced_stateful_set, "neighbour-archiver", ns), 30, "its StatefulSet"
        )
        wait_until(
            lambda: (custom(api, ns, "topicarchives", "neighbour").get("status") or {}).get("observedGeneration"),
            30,
            "the neighbour's status",
        )
        assert read_or_none(apps.read_namespaced_deployment, "neighbour-archiver", ns) is not None

        # Re-applied while the operator runs (an old manifest, a GitOps sync): removed again on its event.
        apps.create_namespaced_deployment(ns, _legacy_deployment(legacy, owned=True))
        wait_until(
            lambda: read_or_none(apps.read_namespaced_deployment, "legacy-archiver", ns) is None,
            30,
            "the re-applied one to go",
        )
        assert read_or_none(apps.read_namespaced_deployment, "neighbour-archiver", ns) is not None
        log = operator.log_text()
        assert "deleted Deployment legacy-archiver" in log and "deleted Deployment neighbour-archiver" not in log
        assert "Traceback" not in log
    finally:
        if operator is not None:
            operator.stop()
        core.delete_namespace(ns)
