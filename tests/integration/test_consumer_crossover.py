"""pyrostore.Consumer beyond what Kafka alone can do: history Kafka deleted, holes, reading with Kafka stopped."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.serialization import StringDeserializer

import pyrostore
from tests.consumer_helpers import EOF, S3Archive, delete_head, read_to_end
from tests.kafka_helpers import (
    ArchiverProcess,
    archive_rows,
    archive_until_caught_up,
    kafka_rows,
    produce_numbered,
    wait_for,
)


def test_reads_from_offset_zero_after_kafka_deleted_the_head_while_writing_and_archiving(
    kafka, s3_server, new_topic, tmp_path
):
    topic, partitions = new_topic(partitions=2), 2
    archive = S3Archive(s3_server)
    produce_numbered(kafka.bootstrap, topic, 3000, partitions)
    head = kafka_rows(kafka.bootstrap, topic, partitions)  # what Kafka held before it deleted the head
    assert [len(rows) for rows in head.values()] == [1500] * partitions
    archiver = archive.archiver(kafka.bootstrap, topic, tmp_path / "archiver.log", "--segment-age", "300ms").start()
    try:
        wait_for(
            lambda: archive_rows(archive.url, topic, partitions, **archive.store_options) == head,
            90,
            "the archive to hold the head exactly as Kafka does",
        )
        delete_head(kafka.bootstrap, topic, {p: 1000 for p in range(partitions)})

        def produce_more() -> None:  # the tail keeps growing while the consumer reads
            for start in range(3000, 5000, 100):
                produce_numbered(kafka.bootstrap, topic, 100, partitions, start=start)
                time.sleep(0.1)

        producer = threading.Thread(target=produce_more)
        producer.start()
        consumer = pyrostore.Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": f"crossover-{topic}",
                "auto.offset.reset": "earliest",
                **archive.consumer_conf,
            }
        )
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        consumer.subscribe([topic])
        deadline = time.monotonic() + 120
        while sum(len(v) for v in got.values()) < 5000:
            assert time.monotonic() < deadline, f"read {sum(len(v) for v in got.values())} of 5000 records"
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got[message.partition()].append((message.offset(), message.value()))
        producer.join()
        counts = consumer.source_counts()
        consumer.close()
    finally:
        archiver.stop()
    tail = kafka_rows(kafka.bootstrap, topic, partitions)  # offsets 1000.. on: Kafka deleted the head
    for p in range(partitions):  # first what Kafka held: the consumer must give exactly that, wherever it read it
        assert [row for row in tail[p] if row[0] < 1500] == head[p][1000:]  # the same records as before
        held = [(row[0], row[4]) for row in head[p]] + [(row[0], row[4]) for row in tail[p] if row[0] >= 1500]
        assert got[p] == held, f"partition {p}: pyrostore.Consumer read other records than Kafka held"
    for p in range(partitions):  # every record exactly once, in order: record i went to partition i % 2
        assert got[p] == [(offset, b"v%d" % (offset * partitions + p)) for offset in range(2500)], (
            f"partition {p}: Kafka itself held the records out of produce order"
        )
    assert counts["archive"] >= 2000 and counts["kafka"] > 0, counts
    low, _ = consumer_watermarks(kafka.bootstrap, topic)
    assert low == 1000  # Kafka really had deleted the head


def consumer_watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    """Kafka's own watermarks of partition 0, through a plain consumer."""
    plain = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return plain.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        plain.close()


def test_kafka_preferred_reads_only_what_kafka_lost_from_the_archive(kafka, s3_server, new_topic, tmp_path):
    topic = new_topic()
    archive = S3Archive(s3_server)
    produce_numbered(kafka.bootstrap, topic, 300)
    archive.archive(kafka.bootstrap, topic, 1, tmp_path / "archiver.log")
    delete_head(kafka.bootstrap, topic, {0: 120})
    consumer = pyrostore.Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"preferred-{topic}",
            "enable.partition.eof": True,
            "pyrostore.read.mode": "kafka-preferred",
            **archive.consumer_conf,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    views = read_to_end(consumer, {(topic, 0)})[(topic, 0)]
    assert [v[0] for v in views[:-1]] == list(range(300))
    assert consumer.source_counts() == {"archive": 120, "kafka": 180}
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 300)
    consumer.close()


def test_a_hole_is_an_error_naming_the_range_never_a_silent_jump(kafka, s3_server, new_topic, tmp_path):
    topic = new_topic()
    archive = S3Archive(s3_server)
    produce_numbered(kafka.bootstrap, topic, 100)
    archive.archive(kafka.bootstrap, topic, 1, tmp_path / "archiver.log")
    produce_numbered(kafka.bootstrap, topic, 100, start=100)  # never archived ...
    delete_head(kafka.bootstrap, topic, {0: 150})  # ... and 100..149 deleted from Kafka: a hole
    consumer = pyrostore.Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": f"hole-{topic}", **archive.consumer_conf}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    offsets, error = [], None
    deadline = time.monotonic() + 30
    while error is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            if message.error() is None:
                offsets.append(message.offset())
            else:
                error = message
    assert offsets == list(range(100))
    assert error is not None and error.error().code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert (error.topic(), error.partition(), error.offset()) == (topic, 0, 100)
    assert f"{topic} [0]: offsets 100..149" in error.error().str()
    assert consumer.poll(1.0) is None  # halted at the hole: no jump
    consumer.seek(TopicPartition(topic, 0, 150))
    after = [consumer.poll(10) for _ in range(50)]
    assert [m.offset() for m in after] == list(range(150, 200))
    consumer.close()


def test_archive_only_mode_reads_history_with_kafka_stopped(own_kafka, tmp_path):
    stack, kafka = own_kafka
    topic = "stopped"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    base = (int(time.time()) - 3600) * 1000  # recent, or retention.ms would let Kafka delete the records
    for i in range(300):
        producer.produce(topic, f"value ü {i}", f"key {i}", partition=i % 3, timestamp=base + i)
    assert producer.flush(30) == 0
    url = str(tmp_path / "archive")
    expected = kafka_rows(kafka.bootstrap, topic, 3)
    archive_until_caught_up(ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "archiver.log"), topic, 3, expected)
    stack.stop()  # Kafka is gone from here on

    conf = {"pyrostore.store.url": url, "pyrostore.read.mode": "archive-only", "enable.partition.eof": True}
    consumer = pyrostore.Consumer(conf)
    keys = {(topic, p) for p in range(3)}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    got = read_to_end(consumer, keys, timeout=30)
    for p in range(3):
        assert [(v[0], v[1], v[2]) for v in got[(topic, p)][:-1]] == [(r[0], r[3], r[4]) for r in expected[p]]
        assert got[(topic, p)][-1][-1] == EOF
        assert consumer.get_watermark_offsets(TopicPartition(topic, p)) == (0, 100)
    assert [tp.offset for tp in consumer.offsets_for_times([TopicPartition(topic, 1, base + 100)])] == [33]
    assert sorted(consumer.list_topics().topics[topic].partitions) == [0, 1, 2]
    for refused in (lambda: consumer.subscribe([topic]), lambda: consumer.commit()):
        with pytest.raises(KafkaException, match="archive-only"):
            refused()
    consumer.close()

    batches_consumer = pyrostore.Consumer(conf)
    batches_consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    batches = []
    while sum(b.num_rows for b in batches) < 300:
        batches += batches_consumer.consume_batches(timeout=5)
    rows = {
        (b["partition"][i].as_py(), b["offset"][i].as_py()): b["value"][i].as_py()
        for b in batches
        for i in range(b.num_rows)
    }
    assert rows == {(p, r[0]): r[4] for p in range(3) for r in expected[p]}
    assert {b["topic"][0].as_py() for b in batches} == {topic}
    batches_consumer.close()

    strings = pyrostore.DeserializingConsumer(
        {**conf, "key.deserializer": StringDeserializer(), "value.deserializer": StringDeserializer()}
    )
    strings.assign([TopicPartition(topic, 0, 1)])
    message = strings.poll(10)
    assert (message.key(), message.value()) == ("key 3", "value ü 3")
    strings.close()


def test_archive_preferred_reads_the_history_while_kafka_is_down_then_the_live_tail(own_kafka, tmp_path):
    _, kafka = own_kafka
    topic, partitions = "outage", 2
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(60)
    produce_numbered(kafka.bootstrap, topic, 200, partitions)
    url = str(tmp_path / "archive")
    history = kafka_rows(kafka.bootstrap, topic, partitions)
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "archiver.log")
    archive_until_caught_up(archiver, topic, partitions, history)
    kafka.stop()  # down from here until restart(): same port, same data

    starts = {"pyrostore from OFFSET_BEGINNING": OFFSET_BEGINNING, "pyrostore from 0": 0, "confluent_kafka": None}
    errors: dict[str, list[int]] = {name: [] for name in starts}
    got: dict[str, dict[int, list[tuple[int, bytes]]]] = {name: {p: [] for p in range(partitions)} for name in starts}
    report: dict[str, dict[str, Any]] = {name: {} for name in starts}
    consumers: dict[str, Any] = {}
    for name, start in starts.items():
        conf = {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"outage-{len(consumers)}",
            "error_cb": lambda err, name=name: errors[name].append(err.code()),
        }
        consumer = Consumer(conf) if start is None else pyrostore.Consumer({**conf, "pyrostore.store.url": url})
        consumers[name] = consumer
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING if start is None else start) for p in range(partitions)]
        began = time.monotonic()
        try:
            consumer.assign(tps)
            report[name]["assign"] = "returned"
        except KafkaException as exc:
            report[name]["assign"] = f"raised {exc.args[0].name()}: {exc.args[0].str()}"
        report[name]["assign took (s)"] = round(time.monotonic() - began, 1)

    def read(goals: dict[str, int], at_least: float, timeout: float) -> dict[str, float]:
        """Poll each consumer in turn until each holds as many records as its goal (and ``at_least`` seconds
        passed); how long each took to hold them."""
        started = time.monotonic()
        took: dict[str, float] = {}
        while time.monotonic() - started < at_least or len(took) < len(goals):
            if time.monotonic() - started > timeout:
                break
            for name, total in goals.items():
                message = consumers[name].poll(0.2)
                if message is not None and message.error() is not None:
                    errors[name].append(message.error().code())  # reports of Kafka's absence: recorded, not fatal
                elif message is not None:
                    got[name][message.partition()].append((message.offset(), message.value()))
                if name not in took and sum(map(len, got[name].values())) >= total:
                    took[name] = round(time.monotonic() - started, 1)
        return took

    reading = [name for name in starts if report[name]["assign"] == "returned"]
    goals = {name: 0 if name == "confluent_kafka" else 200 for name in reading}  # confluent_kafka can read nothing
    took = read(goals, at_least=5, timeout=60)
    for name in starts:
        report[name]["error codes while Kafka was down"] = sorted(set(errors[name]))
        report[name]["records while Kafka was down"] = sum(map(len, got[name].values()))
        report[name]["history took (s)"] = took.get(name)
    consumers.pop("confluent_kafka").close()

    kafka.restart()
    produce_numbered(kafka.bootstrap, topic, 100, partitions, start=200)
    kafka_held = kafka_rows(kafka.bootstrap, topic, partitions)
    took = read({name: 300 for name in reading if name in consumers}, at_least=0, timeout=90)
    for name, consumer in consumers.items():
        report[name]["whole tail after the restart took (s)"] = took.get(name)
        report[name]["source_counts"] = consumer.source_counts()
        report[name]["records"] = {p: len(rows) for p, rows in got[name].items()}
        consumer.close()

    expected = {p: [(row[0], row[4]) for row in kafka_held[p]] for p in range(partitions)}
    assert [len(rows) for rows in expected.values()] == [150] * partitions  # Kafka kept its data across the restart
    plain = report.pop("confluent_kafka")
    assert plain["assign"] == "returned" and plain["records while Kafka was down"] == 0, plain
    wrong = {}
    for name, found in report.items():
        checks = {
            "assign returned": found["assign"] == "returned",
            "read the whole history while Kafka was down": found["records while Kafka was down"] == 200,
            "every offset once, in order, as Kafka holds it": got[name] == expected,
            "source_counts: 200 from the archive, 100 from Kafka": found["source_counts"]
            == {"archive": 200, "kafka": 100},
            "reported Kafka's absence with confluent_kafka's error codes": found["error codes while Kafka was down"]
            == plain["error codes while Kafka was down"],
        }
        if failed := [check for check, passed in checks.items() if not passed]:
            wrong[name] = {"failed": failed, **found}
    assert not wrong, f"{wrong}\nconfluent_kafka.Consumer while Kafka was down: {plain}"
