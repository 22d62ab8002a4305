"""The archiver's pure decisions and configuration."""

from __future__ import annotations

import pytest

from pyrostore.archiver.config import ArchiverConfig, consumer_config
from pyrostore.archiver.decisions import largest, should_roll, start_position
from pyrostore.archiver.identity import TopicIdentity, check_identity
from pyrostore.errors import InvalidKafkaProperties, TopicIdentityMismatch
from pyrostore.index.commits import Commit
from pyrostore.kafka import parse_properties


def _head(next_offset: int) -> Commit:
    return Commit("t", 0, 3, None, None, next_offset, next_offset, 2, "w", "2026-11-24T00:00:00.000+00:00")


def test_start_position_resumes_at_the_archive_and_names_losses():
    assert start_position(_head(100), log_start=40) == start_position(_head(100), 100)
    assert start_position(_head(100), log_start=40).offset == 100
    lost = start_position(_head(100), log_start=150)
    assert (lost.offset, lost.lost_from, lost.lost) == (150, 100, 50)
    assert start_position(_head(0), log_start=0).lost == 0


def test_segments_roll_on_size_or_age_but_never_empty():
    assert should_roll(64, 0.0, segment_bytes=64, segment_age=10)
    assert should_roll(1, 10.0, segment_bytes=64, segment_age=10)
    assert not should_roll(0, 99.0, segment_bytes=64, segment_age=10)
    assert not should_roll(63, 9.9, segment_bytes=64, segment_age=10)
    assert largest({0: 5, 1: 9, 2: 1}) == 1 and largest({}) is None


def test_consumer_config_keeps_what_correctness_needs():
    config = ArchiverConfig("k:9092", "orders", "/tmp/a", kafka_properties={"security.protocol": "SSL"})
    built = consumer_config(config, "me")
    assert built["isolation.level"] == "read_committed" and built["enable.auto.commit"] == "false"
    assert built["group.id"] == "pyrostore-orders" and built["security.protocol"] == "SSL"
    assert built["fetch.queue.backoff.ms"] == "20"  # librdkafka's 1 s default idles a reader that was briefly slow
    assert "group.instance.id" not in built  # dynamic membership unless an instance id is given
    static = ArchiverConfig("k:9092", "orders", "/tmp/a", instance_id="orders-archiver-0")
    assert consumer_config(static, "me")["group.instance.id"] == "orders-archiver-0"
    slower = ArchiverConfig("k:9092", "orders", "/tmp/a", kafka_properties={"fetch.queue.backoff.ms": "500"})
    assert consumer_config(slower, "me")["fetch.queue.backoff.ms"] == "500"
    for key, value in (("isolation.level", "read_uncommitted"), ("enable.auto.commit", "true")):
        with pytest.raises(ValueError, match=key):
            consumer_config(ArchiverConfig("k", "t", "/a", kafka_properties={key: value}), "me")


def test_properties_files_parse_as_java_properties_and_name_bad_ones():
    text = (
        "# TLS\nsecurity.protocol=SSL\n! old comment\nssl.ca.location = /etc/ca.pem\n\n"
        "sasl.mechanism: PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \\\n"
        '    required username="u" password="p\\u00e9";\n'
    )
    assert parse_properties(text, "client.properties") == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/etc/ca.pem",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" '
        'password="p\u00e9";',
    }
    with pytest.raises(InvalidKafkaProperties, match=r"client.properties: Invalid \\u escape"):
        parse_properties("a=\\uZZZZ\n", "client.properties")
    with pytest.raises(InvalidKafkaProperties, match=r"client.properties: a line has a value but no key"):
        parse_properties("a=b\n=oops\n", "client.properties")


def test_a_recreated_topic_or_another_cluster_is_refused():
    archived = TopicIdentity("orders", "cluster-a", "id-1")
    check_identity(archived, TopicIdentity("orders", "cluster-a", "id-1"))
    with pytest.raises(TopicIdentityMismatch, match="deleted and recreated"):
        check_identity(archived, TopicIdentity("orders", "cluster-a", "id-2"))
    with pytest.raises(TopicIdentityMismatch, match="cluster"):
        check_identity(archived, TopicIdentity("orders", "cluster-b", "id-1"))
