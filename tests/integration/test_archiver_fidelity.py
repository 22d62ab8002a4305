"""The archiver keeps everything a read_committed consumer sees, byte for byte, with the right offsets."""

from __future__ import annotations

import os
import uuid

from confluent_kafka import Producer

from pyrostore.index.tree import NodeStore
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.kafka_helpers import (
    COMPACTED,
    EDGE_CASES,
    EDGE_HEADERS,
    ArchiverProcess,
    archive_rows,
    archive_until_caught_up,
    fill_compacted,
    kafka_rows,
)


def _archive_and_compare(kafka, topic: str, partitions: int, tmp_path) -> dict[int, list]:
    """Run the archiver until the archive holds what Kafka holds; compare record by record; verify."""
    expected = kafka_rows(kafka.bootstrap, topic, partitions)
    url = str(tmp_path / "archive")
    archive_until_caught_up(
        ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "archiver.log"), topic, partitions, expected
    )
    assert archive_rows(url, topic, partitions) == expected
    store = open_store(url)
    for p in range(partitions):
        assert verify_partition(store, NodeStore(store, topic), topic, p).ok
    return expected


def test_every_kind_of_record_is_kept(kafka, new_topic, tmp_path):
    # segment.bytes above the stack's 1 MiB default: a segment must hold the largest batch.
    topic = new_topic(
        partitions=3,
        config={"max.message.bytes": str(4 * 1024 * 1024), "segment.bytes": str(16 * 1024 * 1024)},
    )
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "enable.idempotence": True,
            "message.max.bytes": 4 * 1024 * 1024,
            "linger.ms": 5,
        }
    )
    big = os.urandom(1024 * 1024 + 17)
    cases = [*EDGE_CASES, (b"big", big), (b"bigger", big + big[:300_000])]
    failures = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(error)

    for round_ in range(30):
        for i, (key, value) in enumerate(cases if round_ < 2 else EDGE_CASES):
            producer.produce(
                topic,
                value,
                key,
                partition=(round_ + i) % 3,
                headers=EDGE_HEADERS if i % 2 else None,
                on_delivery=delivered,
            )
        producer.produce(
            topic,
            b"stamped",
            b"t",
            partition=round_ % 3,
            timestamp=1_600_000_000_000 - round_ * 1000,
            on_delivery=delivered,
        )
    assert producer.flush(60) == 0
    assert failures == []
    rows = _archive_and_compare(kafka, topic, 3, tmp_path)
    assert sum(len(r) for r in rows.values()) == 2 * 7 + 28 * 5 + 30
    assert any(row[4] == big for r in rows.values() for row in r)


def test_log_append_time_topic(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=1, config={"message.timestamp.type": "LogAppendTime"})
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    for i in range(50):
        producer.produce(topic, b"v%d" % i, timestamp=1_000 + i)  # the broker overrides these
    producer.flush(30)
    rows = _archive_and_compare(kafka, topic, 1, tmp_path)
    assert {row[1] for row in rows[0]} == {1}  # LogAppendTime
    assert all(row[2] > 1_700_000_000_000 for row in rows[0])


def test_compacted_topic_keeps_its_gaps(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=1, config=COMPACTED)
    fill_compacted(kafka.bootstrap, topic)
    rows = _archive_and_compare(kafka, topic, 1, tmp_path)
    offsets = [row[0] for row in rows[0]]
    assert len(offsets) < offsets[-1] + 1  # the archive holds the same gaps


def test_transactions_keep_committed_and_drop_aborted(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    for outcome, count in (("commit", 20), ("abort", 15), ("commit", 5), ("abort", 7), ("commit", 3)):
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, f"{outcome}-{i}".encode(), partition=i % 2)
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    rows = _archive_and_compare(kafka, topic, 2, tmp_path)
    values = [row[4] for r in rows.values() for row in r]
    assert len(values) == 28 and not any(v.startswith(b"abort") for v in values)
    offsets = [row[0] for row in rows[0]]
    assert offsets[-1] + 1 > len(offsets)  # aborted records and transaction markers left gaps
