"""``spec.iceberg`` of a TopicArchive against the stack's real API server, Kafka, MinIO and PostgreSQL: the
operator makes the sync Deployment, whose own container command (run as a local process: no kubelet here, its
catalog Secret mounted as a kubelet would) keeps the table in sync with the archive; the status shows the last
synced commit of each partition; removing the field removes the Deployment and the status."""

from __future__ import annotations

import signal
import uuid

import yaml
from kubernetes import client
from pyiceberg.catalog import load_catalog

from pyrostore.index.commits import read_head
from pyrostore.store import open_store
from tests.kafka_helpers import produce_numbered
from tests.operator_helpers import (
    GROUP,
    VERSION,
    create_credentials_secret,
    create_custom,
    custom,
    field_env,
    run_container,
    s3_storage,
    statefulset_pod,
    topic_archive,
    wait_until,
    with_secret_mounts,
)


def _pod(api, namespace: str, name: str) -> dict:
    deployment = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return api.sanitize_for_serialization(deployment.spec.template.spec)


def test_the_operator_keeps_the_table_in_sync_and_reports_the_last_synced_commit(
    crds, operator_namespace, operator, kafka, s3_server, postgres_server, new_topic, tmp_path
):
    api, ns = crds.api_client(), operator_namespace
    create_credentials_secret(api, ns, "s3-credentials", s3_server)
    config = {"catalog": {"warehouse": {"type": "sql", "uri": postgres_server.sqlalchemy_url()}}}
    client.CoreV1Api(api).create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="iceberg-catalog"), string_data={"catalog.yaml": yaml.safe_dump(config)}
        ),
    )
    topic = new_topic(partitions=2)
    produce_numbered(kafka.bootstrap, topic, 200, partitions=2)
    storage = s3_storage(s3_server, f"iceberg-{uuid.uuid4().hex[:8]}")
    table = f"kafka.{topic}"
    iceberg = {
        "table": table,
        "catalog": "warehouse",
        "catalogSecret": {"name": "iceberg-catalog", "key": "catalog.yaml"},
        "interval": "1s",
    }
    create_custom(
        api,
        ns,
        "topicarchives",
        topic_archive("lake", kafka.bootstrap, topic, storage, segment={"age": "1s"}, iceberg=iceberg),
    )

    apps = client.AppsV1Api(api)
    wait_until(lambda: _exists(apps, "lake-iceberg", ns), 30, "the sync Deployment")
    sync_pod = with_secret_mounts(api, ns, _pod(api, ns, "lake-iceberg"), tmp_path / "mounts")
    sync_container = sync_pod["containers"][0]
    assert sync_container["command"][:3] == ["pyrostore", "iceberg", "sync"]
    mount = next(m for m in sync_container["volumeMounts"] if m["name"] == "iceberg-catalog")
    catalog_dir = tmp_path / "mounts" / mount["mountPath"].strip("/")
    archiver_pod = statefulset_pod(api, ns, "lake-archiver")
    archiver = run_container(api, ns, archiver_pod["spec"], tmp_path / "archiver.log", field_env(archiver_pod))
    sync = run_container(api, ns, sync_pod, tmp_path / "sync.log", {"PYICEBERG_HOME": str(catalog_dir)})
    store = open_store(storage["url"], **storage["options"], **_s3_keys(s3_server))
    try:

        def synced_to_the_archive_heads():
            status = (custom(api, ns, "topicarchives", "lake").get("status") or {}).get("iceberg") or {}
            heads = {p: read_head(store, topic, p) for p in (0, 1)}
            if any(h is None or h.next_offset < 100 for h in heads.values()):
                return None
            wanted = [{"partition": p, "commit": h.seq, "offset": h.next_offset} for p, h in heads.items()]
            return status if status.get("partitions") == wanted else None

        status = wait_until(synced_to_the_archive_heads, 120, "status.iceberg at the archive's heads")
    finally:
        for process in (archiver, sync):
            process.send_signal(signal.SIGTERM)
        codes = [archiver.wait(60), sync.wait(60)]
    assert codes == [0, 0], (tmp_path / "sync.log").read_text()[-3000:]
    assert status["table"] == table and status["records"] == 200 and "error" not in status, status
    properties = {
        "uri": postgres_server.sqlalchemy_url(),
        "s3.endpoint": s3_server.endpoint,
        "s3.region": s3_server.region,
        "s3.access-key-id": s3_server.access_key,
        "s3.secret-access-key": s3_server.secret_key,
    }
    loaded = load_catalog("warehouse", **properties).load_table(("kafka", topic))
    assert status["snapshotId"] == loaded.current_snapshot().snapshot_id
    assert loaded.scan().to_arrow().num_rows == 200

    # Removing the field removes the sync Deployment and status.iceberg; the table stays.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "topicarchives", "lake", {"spec": {"iceberg": None}}
    )
    wait_until(lambda: not _exists(apps, "lake-iceberg", ns), 30, "the sync Deployment to go")
    wait_until(lambda: "iceberg" not in custom(api, ns, "topicarchives", "lake")["status"], 30, "status.iceberg to go")
    assert "Traceback" not in operator.log_text()


def test_a_catalog_secret_without_the_catalog_is_reported_in_status(crds, operator_namespace, operator, s3_server):
    api, ns = crds.api_client(), operator_namespace
    secret = {".pyiceberg.yaml": yaml.safe_dump({"catalog": {"other": {"uri": "postgresql://u:hunter22@h/db"}}})}
    client.CoreV1Api(api).create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="wrong-catalog"), string_data=secret)
    )
    storage = {"url": f"s3://{s3_server.bucket}/none", "options": {"endpoint_url": s3_server.endpoint}}
    iceberg = {"table": "kafka.orders", "catalog": "prod", "catalogSecret": {"name": "wrong-catalog"}}
    create_custom(api, ns, "topicarchives", topic_archive("lost", "127.0.0.1:1", "orders", storage, iceberg=iceberg))
    status = wait_until(
        lambda: (custom(api, ns, "topicarchives", "lost").get("status") or {}).get("iceberg"), 60, "status.iceberg"
    )
    assert status == {
        "table": "kafka.orders",
        "error": "Secret wrong-catalog key .pyiceberg.yaml configures no catalog 'prod' (catalog: {prod: {...}})",
    }  # the fields a merge patch set to null are gone
    assert "hunter22" not in operator.log_text()


def test_spec_iceberg_needs_exactly_one_catalog(crds, operator_namespace):
    api, ns = crds.api_client(), operator_namespace
    for name, iceberg in (
        ("neither", {"table": "kafka.orders"}),
        ("both", {"table": "kafka.orders", "catalogUri": "http://r", "catalogSecret": {"name": "s"}}),
    ):
        body = topic_archive(name, "k:9092", "orders", {"url": "s3://b/p"}, iceberg=iceberg)
        try:
            create_custom(api, ns, "topicarchives", body)
        except client.ApiException as exc:
            assert exc.status == 422 and "exactly one of catalogSecret and catalogUri" in exc.body
        else:
            raise AssertionError(f"spec.iceberg {iceberg} was accepted")


def _exists(apps, name: str, namespace: str) -> bool:
    try:
        apps.read_namespaced_deployment(name, namespace)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _s3_keys(s3_server) -> dict[str, str]:
    return {"access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key}
