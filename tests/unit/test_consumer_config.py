"""A pyrostore.Consumer configuration splits into Pyrostore's settings and the inner consumer's, with clear errors."""

from __future__ import annotations

import pytest

from pyrostore.consumer.config import parse_settings
from pyrostore.consumer.decisions import ReadMode
from pyrostore.errors import ConsumerConfigError

BASE = {"bootstrap.servers": "localhost:9092", "group.id": "g", "pyrostore.store.url": "s3://bucket/prefix"}


def test_splits_pyrostore_settings_from_the_inner_consumers():
    settings = parse_settings(
        {
            **BASE,
            "pyrostore.store.endpoint_url": "http://minio:9000",
            "pyrostore.read.mode": "kafka-preferred",
            "pyrostore.prefetch.segments": "4",
            "enable.partition.eof": "true",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    assert settings.store_url == "s3://bucket/prefix"
    assert settings.store_options == {"endpoint_url": "http://minio:9000", "retry_deadline": "30.0"}
    given = parse_settings({**BASE, "pyrostore.store.retry_deadline": "inf"})
    assert given.store_options == {"retry_deadline": "inf"}
    assert settings.mode is ReadMode.KAFKA_PREFERRED
    assert (settings.prefetch_segments, settings.partition_eof, settings.cooperative) == (4, True, True)
    assert settings.auto_offset_reset == "earliest" and settings.auto_offset_store
    assert not any(key.startswith("pyrostore.") for key in settings.kafka)
    # The wrapper stores offsets itself and decides what an out-of-range offset means.
    assert settings.kafka["enable.auto.offset.store"] is False and settings.kafka["auto.offset.reset"] == "error"
    assert settings.kafka["group.id"] == "g"


def test_archive_only_needs_no_broker_and_keeps_only_callbacks():
    def on_error(error) -> None: ...

    settings = parse_settings(
        {"pyrostore.store.url": "/data", "pyrostore.read.mode": "archive-only", "error_cb": on_error}
    )
    assert settings.mode is ReadMode.ARCHIVE_ONLY and settings.kafka == {"error_cb": on_error}


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ({"bootstrap.servers": "k:9092"}, "pyrostore.store.url is required"),
        ({**BASE, "pyrostore.read.mode": "sometimes"}, "'sometimes' is not one of archive-preferred"),
        ({**BASE, "pyrostore.prefetch.segment": "2"}, "unknown setting 'pyrostore.prefetch.segment'"),
        ({**BASE, "pyrostore.prefetch.segments": "0"}, "pyrostore.prefetch.segments must be a positive"),
        ({**BASE, "auto.offset.reset": "oldest"}, "auto.offset.reset 'oldest'"),
        ({**BASE, "enable.partition.eof": "maybe"}, "enable.partition.eof must be true or false"),
    ],
)
def test_bad_settings_are_named(conf, named):
    with pytest.raises(ConsumerConfigError, match=named):
        parse_settings(conf)


def test_bootstrap_servers_may_be_left_out_as_confluent_kafka_allows():
    settings = parse_settings({"pyrostore.store.url": "/data", "group.id": "g"})
    assert "bootstrap.servers" not in settings.kafka and "bootstrap.servers" not in settings.admin
    assert settings.admin == {}  # group.id is the consumer's alone


def test_the_admin_client_gets_connection_settings_without_the_applications_callbacks():
    def error_cb(error):
        raise AssertionError(error)

    conf = {**BASE, "security.protocol": "SASL_SSL", "error_cb": error_cb, "enable.auto.commit": False}
    admin = parse_settings(conf).admin
    assert admin == {"bootstrap.servers": BASE["bootstrap.servers"], "security.protocol": "SASL_SSL"}
