"""``pyrostore.Consumer`` over Kafka's SASL_SSL listener: the archive, then Kafka past its end, with the
application's properties; a refusal reaches the application as confluent_kafka reports it (the error callback,
or an error message), naming the problem."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException

from pyrostore import Consumer
from tests.kafka_helpers import produce_numbered
from tests.replay_helpers import build_archive
from tests.security_helpers import refused_properties, restricted_topic

ARCHIVED, LIVE = 20, 10
# What the application sees for each refusal: the error's name, and words of its text.
SEEN = {
    "wrong-password": ("_AUTHENTICATION", "Authentication failed"),
    "untrusted-ca": ("_SSL", "certificate verify failed"),
    "missing-acl": ("TOPIC_AUTHORIZATION_FAILED", "authorization failed"),
}


def _consume(conf: dict, topic: str, count: int, timeout: float) -> tuple[list[int], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    consumer = Consumer({**conf, "error_cb": lambda e: errors.append((e.name(), e.str()))})
    consumer.subscribe([topic])
    offsets: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(offsets) < count and time.monotonic() < deadline:
            try:
                message = consumer.poll(0.5)
            except KafkaException as exc:
                errors.append((exc.args[0].name(), exc.args[0].str()))
                continue
            if message is None:
                continue
            if message.error() is not None:
                errors.append((message.error().name(), message.error().str()))
            else:
                offsets.append(message.offset())
    finally:
        consumer.close()
    return offsets, errors


def _setup(kafka, tmp_path) -> tuple[str, dict]:
    topic = restricted_topic(kafka)
    produce_numbered(kafka.bootstrap, topic, ARCHIVED + LIVE)
    build_archive(str(tmp_path / "archive"), topic, 1, ARCHIVED)
    base = {
        "bootstrap.servers": kafka.sasl_bootstrap,
        "group.id": f"secure-{topic}",
        "auto.offset.reset": "earliest",
        "pyrostore.store.url": str(tmp_path / "archive"),
    }
    return topic, base


def test_consumer_reads_the_archive_then_kafka_over_sasl_ssl(kafka, tmp_path):
    topic, base = _setup(kafka, tmp_path)
    offsets, errors = _consume({**base, **kafka.sasl_properties("pyrostore")}, topic, ARCHIVED + LIVE, 60)
    assert offsets == list(range(ARCHIVED + LIVE)), errors


@pytest.mark.parametrize("case", sorted(SEEN))
def test_consumer_reports_each_refusal_by_name(kafka, tmp_path, case):
    topic, base = _setup(kafka, tmp_path)
    offsets, errors = _consume({**base, **refused_properties(kafka, case)}, topic, 1, 15)
    name, words = SEEN[case]
    assert any(n == name and words in text for n, text in errors), errors
    assert not any(password in text for password in kafka.users.values() for _, text in errors)
    assert offsets == [] or case == "missing-acl"  # archived records may be read before Kafka refuses the topic
