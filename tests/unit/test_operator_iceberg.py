"""The Iceberg sync of a TopicArchive (``spec.iceberg``): its Deployment, catalog settings and status (pure)."""

from __future__ import annotations

import pytest
import yaml

from pyrostore.errors import InvalidSetting
from pyrostore.operator.iceberg import (
    CATALOG_DIR,
    catalog_settings,
    iceberg_status,
    sensitive,
    sync_deployment,
    syncing,
)
from pyrostore.operator.manifests import archiver_statefulset, selector_labels
from pyrostore.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(image="img:1", image_pull_policy="Always", service_account="archiver")
CONFIG = """
catalog:
  prod:
    type: sql
    uri: postgresql+psycopg2://sync:s3cret-pw@db:5432/iceberg
    warehouse: s3://b/warehouse
"""


def _archive(iceberg: dict | None = None) -> dict:
    body = {
        "kind": "TopicArchive",
        "metadata": {"name": "orders", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092", "topic": "orders.v1", "propertiesSecret": {"name": "kp"}},
            "storage": {"url": "s3://b/p", "options": {"region": "r"}, "credentialsSecret": {"name": "creds"}},
        },
    }
    if iceberg is not None:
        body["spec"]["iceberg"] = iceberg
    return body


def _container(body: dict) -> dict:
    return sync_deployment(body, SETTINGS)["spec"]["template"]["spec"]["containers"][0]


def test_syncing_means_the_field_is_there():
    assert syncing(_archive({"table": "kafka.orders", "catalogUri": "http://rest:8181"}))
    assert not syncing(_archive())


def test_the_sync_runs_follow_with_the_catalog_file_mounted_from_its_secret():
    body = _archive(
        {
            "table": "kafka.orders",
            "catalog": "prod",
            "catalogSecret": {"name": "iceberg"},
            "interval": "30s",
            "properties": {"warehouse": "s3://b/w"},
        }
    )
    deployment = sync_deployment(body, SETTINGS)
    assert deployment["metadata"]["name"] == "orders-iceberg"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == [
        "pyrostore", "iceberg", "sync", "s3://b/p", "--table", "kafka.orders", "--topic", "orders.v1",
        "--catalog", "prod", "--follow", "--interval", "30s", "-p", "warehouse=s3://b/w", "-o", "region=r",
    ]  # fmt: skip
    assert container["env"] == [{"name": "PYICEBERG_HOME", "value": CATALOG_DIR}]
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]  # storage credentials, never Kafka's
    catalog_volume = next(v for v in pod["volumes"] if v["name"] == "iceberg-catalog")
    assert catalog_volume["secret"] == {
        "secretName": "iceberg",
        "items": [{"key": ".pyiceberg.yaml", "path": ".pyiceberg.yaml"}],
    }
    assert {"name": "iceberg-catalog", "mountPath": CATALOG_DIR, "readOnly": True} in container["volumeMounts"]
    assert "s3cret" not in yaml.safe_dump(deployment)


def test_a_catalog_uri_needs_no_secret_and_defaults_apply():
    container = _container(_archive({"table": "kafka.orders", "catalogUri": "http://rest:8181"}))
    command = container["command"]
    assert command[command.index("--catalog-uri") + 1] == "http://rest:8181"
    assert command[command.index("--interval") + 1] == "60s"
    assert "--catalog" not in command and "env" not in container


def test_sync_pods_are_selected_apart_from_the_archiver_pods():
    body = _archive({"table": "kafka.orders", "catalogUri": "http://rest:8181"})
    sync = sync_deployment(body, SETTINGS)["spec"]["selector"]["matchLabels"]
    archiver = archiver_statefulset(body, SETTINGS)["spec"]["selector"]["matchLabels"]
    assert sync != archiver
    assert sync == selector_labels(sync_deployment(body, SETTINGS)["spec"]["template"]["metadata"]["labels"])


def test_catalog_settings_come_from_the_named_catalog_of_the_file_then_the_spec():
    body = _archive(
        {"table": "kafka.orders", "catalog": "prod", "catalogSecret": {"name": "iceberg"}, "properties": {"a": "1"}}
    )
    name, properties = catalog_settings(body, {".pyiceberg.yaml": CONFIG})
    assert name == "prod"
    assert properties == {
        "type": "sql",
        "uri": "postgresql+psycopg2://sync:s3cret-pw@db:5432/iceberg",
        "warehouse": "s3://b/warehouse",
        "a": "1",
    }
    assert catalog_settings(_archive({"table": "n.t", "catalogUri": "http://r"}), {}) == (
        "pyrostore",
        {"uri": "http://r"},
    )


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ({}, "Secret iceberg key .pyiceberg.yaml is missing"),
        ({".pyiceberg.yaml": "catalog: [unclosed"}, "is not YAML"),
        ({".pyiceberg.yaml": CONFIG.replace("prod", "dev")}, "configures no catalog 'prod'"),
    ],
)
def test_a_catalog_file_that_does_not_configure_the_catalog_is_one_clear_line(secret, problem):
    body = _archive({"table": "kafka.orders", "catalog": "prod", "catalogSecret": {"name": "iceberg"}})
    with pytest.raises(InvalidSetting, match=problem) as caught:
        catalog_settings(body, secret)
    assert "s3cret" not in str(caught.value)


def test_sensitive_values_include_a_uri_password_and_keys():
    found = sensitive(
        {"uri": "postgresql://u:pw-123@h/db", "s3.secret-access-key": "sk", "s3.endpoint": "http://minio:9000"}
    )
    assert set(found.values()) == {"pw-123", "sk"}


def test_status_names_the_table_and_the_snapshot_or_the_error_with_every_field_present():
    body = _archive({"table": "kafka.orders", "catalogUri": "http://r"})
    unknown = {"snapshotId": None, "syncedAt": None, "records": None, "partitions": None}
    assert iceberg_status(body, None) == {"table": "kafka.orders", "error": None, **unknown}
    snapshot = {"snapshotId": 7, "syncedAt": "2026-12-01T00:00:00Z", "records": 5, "partitions": []}
    assert iceberg_status(body, snapshot) == {"table": "kafka.orders", "error": None, **snapshot}
    assert iceberg_status(body, None, "no route") == {"table": "kafka.orders", "error": "no route", **unknown}
