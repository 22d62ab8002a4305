"""The operator's own store and Kafka settings from a resource and its Secrets, and archive deletion."""

from __future__ import annotations

from pyrostore.layout import head_key, segment_key, topic_key
from pyrostore.operator.deletion import delete_topic_archive
from pyrostore.operator.status import kafka_config, store_options

SECRET = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key", "OTHER": "x"}


def test_s3_credentials_come_from_the_secret_beside_the_spec_options():
    storage = {"url": "s3://b/p", "options": {"region": "eu-west-1"}}
    deadline = {"retry_deadline": "10.0"}  # the operator never waits for ever on a store
    assert store_options(storage, SECRET) == {
        "region": "eu-west-1",
        "access_key_id": "id",
        "secret_access_key": "key",
        **deadline,
    }
    gcs = {"url": "gs://b/p", "options": {"project": "p", "credentials_file": "/var/run/secrets/pyrostore/storage/k"}}
    assert store_options(gcs, SECRET) == {"project": "p", **deadline}


def test_kafka_config_layers_file_then_spec_then_bootstrap():
    kafka = {"bootstrapServers": "k:9092", "properties": {"client.rack": "a", "security.protocol": "SSL"}}
    text = "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
    assert kafka_config(kafka, text) == {
        "security.protocol": "SSL",
        "sasl.mechanism": "PLAIN",
        "client.rack": "a",
        "bootstrap.servers": "k:9092",
    }


def test_delete_topic_archive_removes_one_topic_only(file_store):
    digest = "0" * 64
    mine = [head_key("orders", 0), segment_key("orders", 0, 0, digest), topic_key("orders")]
    others = [head_key("orders-v2", 0), segment_key("orders-v2", 0, 0, digest), topic_key("orders-v2"), "notes.txt"]
    for key in mine + others:
        file_store.put(key, b"x")
    assert delete_topic_archive(file_store, "orders") == 3
    assert sorted(info.key for info in file_store.list("")) == sorted(others)
