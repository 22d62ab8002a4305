"""``pyrostore serve --bootstrap-servers``: the archive, then live Kafka past its end, as one partition.

Against the stack's real Kafka and MinIO, with the real archiver and the real command: a plain
``confluent_kafka.Consumer`` reads through the server what it read from Kafka before Kafka deleted the head,
plus the live tail, with no gap and no duplicate; offsets neither side holds are an error, logged; with Kafka
stopped the archive is still served.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from tests.consumer_helpers import S3Archive, create_topic, delete_head
from tests.kafka_helpers import kafka_rows, produce_numbered, wait_for
from tests.serve_helpers import ServeProcess, free_port
from tests.served_topics import serve_archive

NO_COMMIT = {"enable.auto.commit": False}  # readers that assign: nothing to commit on close


def _serve(archive: S3Archive, bootstrap: str, log: Path, *more: str) -> ServeProcess:
    """The archive served with small batches (fetches start inside batches), live Kafka past its end."""
    return serve_archive(archive, archive.server, log, "--batch-bytes", "4KiB", "--bootstrap-servers", bootstrap, *more)


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's Prometheus samples: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _transactions(bootstrap: str, topic: str, partition: int) -> None:
    """Committed and aborted transactions: aborted records and markers take offsets."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    for outcome, count in (("commit", 5), ("abort", 4), ("commit", 3), ("abort", 2), ("commit", 2)):
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, b"%s %d" % (outcome.encode(), i), b"tx", partition=partition)
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)


def _read(bootstrap: str, topic: str, partition: int, offset: int, isolation: str) -> list[tuple]:
    """(offset, key, value) from ``offset`` to the end of one partition, as a plain consumer reads them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, partition, offset)])
    rows: list[tuple] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                return rows
            rows.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of {topic} [{partition}] from {bootstrap} within 60 s")


def test_history_and_live_tail_read_as_one_after_kafka_deleted_the_head(kafka, s3_server, tmp_path):
    bootstrap, partitions = kafka.bootstrap, 2
    topic = create_topic(bootstrap, partitions)
    archive = S3Archive(s3_server)
    produce_numbered(bootstrap, topic, 300, partitions)
    _transactions(bootstrap, topic, 1)
    history = archive.archive(bootstrap, topic, partitions, tmp_path / "archiver.log")
    archived_next = {p: rows[-1][0] + 1 for p, rows in history.items()}

    produce_numbered(bootstrap, topic, 100, partitions, start=300)  # the live tail, never archived
    _transactions(bootstrap, topic, 0)
    expected = kafka_rows(bootstrap, topic, partitions)
    uncommitted_tail = {p: _read(bootstrap, topic, p, archived_next[p], "read_uncommitted") for p in range(partitions)}
    delete_head(bootstrap, topic, {p: archived_next[p] - 20 for p in range(partitions)})

    metrics_port = free_port()
    server = _serve(archive, bootstrap, tmp_path / "serve.log", "--metrics-port", str(metrics_port))
    try:
        assert kafka_rows(server.bootstrap, topic, partitions) == expected
        samples = _metrics(metrics_port)
        served = {
            source: samples[("pyrostore_serve_records_total", (("source", source),))] for source in ("archive", "kafka")
        }
        # Whole batches are counted, the records below a fetch offset in the batch holding it included.
        assert served["archive"] >= sum(len(history[p]) for p in range(partitions))
        assert served["kafka"] >= sum(len(expected[p]) - len(history[p]) for p in range(partitions))
        assert samples[("pyrostore_serve_bytes_total", (("source", "kafka"),))] > 0
        assert samples[("pyrostore_serve_fetch_seconds_count", ())] > 0
        assert any(name == "pyrostore_serve_requests_total" and ("api", "Fetch") in labels for name, labels in samples)
        assert samples[("pyrostore_serve_connections_accepted_total", ())] >= 1
        for p in range(partitions):
            # Past the archive, Kafka's batches and aborted-transaction lists pass through: a read_uncommitted
            # reader sees the aborted records as it does on Kafka.
            assert _read(server.bootstrap, topic, p, archived_next[p], "read_uncommitted") == uncommitted_tail[p]
        assert any(value.startswith(b"abort") for _, _, value in uncommitted_tail[0])  # the tail's transactions

        watcher = Consumer({"bootstrap.servers": server.bootstrap, "group.id": f"w-{uuid.uuid4().hex}", **NO_COMMIT})
        direct = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex}", **NO_COMMIT})
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            low, high = watcher.get_watermark_offsets(tp, timeout=10)
            assert (low, high) == (0, direct.get_watermark_offsets(tp, timeout=10)[1])
        for p in range(partitions):  # one partition per call: a request names each partition once
            for i in (0, 100):  # archived: the first record at or after the time
                stamp = expected[p][i][2]
                asked = [TopicPartition(topic, p, stamp)]
                first = next(row[0] for row in expected[p] if row[2] >= stamp)
                assert watcher.offsets_for_times(asked, timeout=10)[0].offset == first
            for i in (-30, -1):  # in Kafka only: Kafka's answer (which counts aborted records and markers)
                asked = [TopicPartition(topic, p, expected[p][i][2])]
                on_kafka = direct.offsets_for_times(asked, timeout=10)[0].offset
                assert watcher.offsets_for_times(asked, timeout=10)[0].offset == on_kafka
            after_all = [TopicPartition(topic, p, expected[p][-1][2] + 60_000)]
            assert watcher.offsets_for_times(after_all, timeout=10)[0].offset == -1
            assert direct.offsets_for_times(after_all, timeout=10)[0].offset == -1
        direct.close()

        # A reader waiting at the live end gets new records as Kafka gets them.
        watcher.assign([TopicPartition(topic, 0, expected[0][-1][0] + 1)])
        produce_numbered(bootstrap, topic, 1, 1, start=1000)
        deadline, message = time.monotonic() + 20, None
        while message is None and time.monotonic() < deadline:
            message = watcher.poll(0.2)
        assert message is not None and message.error() is None and message.value() == b"v1000"
        watcher.close()
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


def test_offsets_neither_side_holds_are_out_of_range_and_logged(kafka, s3_server, tmp_path):
    bootstrap = kafka.bootstrap
    topic = create_topic(bootstrap, 1)
    archive = S3Archive(s3_server)
    produce_numbered(bootstrap, topic, 50)
    archive.archive(bootstrap, topic, 1, tmp_path / "archiver.log")
    produce_numbered(bootstrap, topic, 50, start=50)
    delete_head(bootstrap, topic, {0: 80})  # offsets 50..79: archived nowhere, deleted from Kafka

    def first_event(where: str, offset: int) -> tuple[int | None, int | None]:
        consumer = Consumer(
            {"bootstrap.servers": where, "group.id": f"h-{uuid.uuid4().hex}", "auto.offset.reset": "error", **NO_COMMIT}
        )
        consumer.assign([TopicPartition(topic, 0, offset)])
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None:
                    error = message.error()
                    return (error.code() if error else None), message.offset()
        finally:
            consumer.close()
        raise AssertionError(f"nothing from {where} within 30 s")

    metrics_port = free_port()
    server = _serve(archive, bootstrap, tmp_path / "serve.log", "--metrics-port", str(metrics_port))
    try:
        on_kafka = first_event(bootstrap, 60)
        assert on_kafka[0] == KafkaError._AUTO_OFFSET_RESET
        assert first_event(server.bootstrap, 60)[0] == on_kafka[0]
        assert first_event(server.bootstrap, 49) == (None, 49)  # the archive's last record
        assert first_event(server.bootstrap, 80) == (None, 80)  # Kafka's first
        wait_for(
            lambda: "offsets 50..79 are in neither the archive nor Kafka" in server.log_text(),
            timeout=10,
            what="the hole to be logged with its range",
        )
        holes = _metrics(metrics_port)[("pyrostore_serve_holes_total", (("partition", "0"), ("topic", topic)))]
        assert holes >= 1
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


def test_with_kafka_stopped_the_archive_is_still_served_then_the_tail_after_it_returns(own_kafka, s3_server, tmp_path):
    (_, kafka), topic, partitions = own_kafka, "outage", 2
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(60)
    archive = S3Archive(s3_server)
    produce_numbered(kafka.bootstrap, topic, 200, partitions)
    history = archive.archive(kafka.bootstrap, topic, partitions, tmp_path / "archiver.log")
    kafka.stop()

    server = _serve(archive, kafka.bootstrap, tmp_path / "serve.log")
    try:
        assert kafka_rows(server.bootstrap, topic, partitions) == history
        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": f"w-{uuid.uuid4().hex}", **NO_COMMIT})
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 100)
        consumer.close()

        kafka.restart()
        produce_numbered(kafka.bootstrap, topic, 20, partitions, start=200)
        expected = kafka_rows(kafka.bootstrap, topic, partitions)
        assert [len(rows) for rows in expected.values()] == [110, 110]
        wait_for(
            lambda: kafka_rows(server.bootstrap, topic, partitions) == expected,
            timeout=60,
            what="the server to serve Kafka's tail once Kafka is back",
            interval=2,
        )
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
