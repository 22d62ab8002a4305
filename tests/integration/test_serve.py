"""``pyrostore serve`` against the stack's real Kafka and MinIO: topics with every edge case are archived by the
real archiver, served by the real command, and read by a plain ``confluent_kafka.Consumer``, which must see
what it saw reading Kafka directly: offsets (gaps included), keys, values, headers, timestamps and their type."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.consumer_helpers import S3Archive, create_topic
from tests.kafka_helpers import COMPACTED, fill_compacted, kafka_rows, produce_numbered, row
from tests.serve_helpers import ServeProcess
from tests.served_topics import BIG, BIG_TOPIC, archive_all, fill_appended, fill_edge, serve_archive


@dataclass
class Served:
    """Archived topics, what Kafka held of them, and ``pyrostore serve`` serving the archive."""

    kafka: str
    archive: S3Archive
    server: ServeProcess
    edge: str  # partition 0: null/empty keys and values, tombstones, headers, a 1 MiB value; 1: transactions
    appended: str  # LogAppendTime
    compacted: str  # offset gaps from compaction
    grow: str  # grows while the server runs
    partitions: dict[str, int]
    rows: dict[str, dict[int, list]]  # what a read_committed consumer read from Kafka, before archiving


@pytest.fixture(scope="module")
def served(kafka, s3_server, tmp_path_factory) -> Iterator[Served]:
    logs = tmp_path_factory.mktemp("serve")
    bootstrap = kafka.bootstrap
    archive = S3Archive(s3_server)
    edge = create_topic(bootstrap, 2, BIG_TOPIC)
    appended = create_topic(bootstrap, 1, {"message.timestamp.type": "LogAppendTime"})
    compacted = create_topic(bootstrap, 1, COMPACTED)
    grow = create_topic(bootstrap, 1)
    fill_edge(bootstrap, edge)
    fill_appended(bootstrap, appended)
    fill_compacted(bootstrap, compacted)
    produce_numbered(bootstrap, grow, 5)
    partitions = {edge: 2, appended: 1, compacted: 1, grow: 1}
    rows = archive_all(archive, bootstrap, partitions, logs)
    # Small batches: fetches start inside batches and cross many of them.
    server = serve_archive(archive, s3_server, logs / "serve.log", "--batch-bytes", "4KiB")
    try:
        yield Served(bootstrap, archive, server, edge, appended, compacted, grow, partitions, rows)
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )


def _read_from(bootstrap: str, topic: str, partition: int, offset: int) -> list[tuple]:
    """What a consumer assigned at ``offset`` reads to the end: (offset, type, timestamp, key, value, headers,
    leader epoch), as ``kafka_rows`` gives them."""
    consumer = _consumer(bootstrap)
    consumer.assign([TopicPartition(topic, partition, offset)])
    rows: list[tuple] = []
    deadline = time.monotonic() + 60
    try:
        while True:
            assert time.monotonic() < deadline, f"no end of {topic} [{partition}] from {bootstrap} within 60 s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                return rows
            rows.append(row(message))
    finally:
        consumer.close()


def _topics(served: Served) -> Iterator[tuple[str, int]]:
    for topic, count in served.partitions.items():
        if topic != served.grow:
            for partition in range(count):
                yield topic, partition


def test_the_served_archive_reads_as_kafka_did(served):
    for topic, count in served.partitions.items():
        got = kafka_rows(served.server.bootstrap, topic, count)
        assert got == served.rows[topic], topic
    edge = served.rows[served.edge]
    assert any(row[4] == BIG for row in edge[0])
    assert {row[1] for row in served.rows[served.appended][0]} == {1}  # LogAppendTime kept
    for topic in (served.compacted,):
        offsets = [row[0] for row in served.rows[topic][0]]
        assert len(offsets) < offsets[-1] + 1  # there are gaps to skip
    txn_offsets = [row[0] for row in edge[1]]
    assert len(txn_offsets) == 18 < txn_offsets[-1] + 1  # aborted records and markers left gaps


def _starts(rows: list[tuple]) -> list[int]:
    """Offsets worth starting at: the first record, one in the middle, one inside a gap (if any), the last."""
    offsets = [row[0] for row in rows]
    held = set(offsets)
    gaps = [o for o in range(offsets[0], offsets[-1]) if o not in held]
    return sorted({offsets[0], offsets[len(offsets) // 2], offsets[-1], *gaps[len(gaps) // 2 : len(gaps) // 2 + 1]})


def test_reading_from_the_middle(served):
    for topic, partition in _topics(served):
        rows = served.rows[topic][partition]
        for start in _starts(rows):
            got = _read_from(served.server.bootstrap, topic, partition, start)
            assert got == [row for row in rows if row[0] >= start], (topic, partition, start)
            if topic != served.compacted:  # Kafka may have compacted further since; the rest must still match it
                assert got == _read_from(served.kafka, topic, partition, start), (topic, partition, start)


def _offsets_for_times(bootstrap: str, topic: str, partition: int, stamps: list[int]) -> list[int]:
    consumer = _consumer(bootstrap)
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, partition, t) for t in stamps], timeout=30)
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def test_offsets_for_times(served):
    for topic, partition in _topics(served):
        rows = served.rows[topic][partition]
        stamps = sorted({row[2] for row in rows})
        probes = [0, stamps[0], stamps[0] + 1, stamps[len(stamps) // 2], stamps[-1], stamps[-1] + 1]
        for probe in probes:  # one per request: librdkafka asks once per partition
            expected = next((row[0] for row in rows if row[2] >= probe), -1)
            assert _offsets_for_times(served.server.bootstrap, topic, partition, [probe]) == [expected], (topic, probe)
            # Kafka may have compacted further since; on the transactional partition Kafka also counts aborted
            # records and transaction markers, which have timestamps but are not archived (docs/decisions.md).
            if topic != served.compacted and (topic, partition) != (served.edge, 1):
                assert _offsets_for_times(served.kafka, topic, partition, [probe]) == [expected], (topic, probe)


def test_watermarks(served):
    for topic, partition in _topics(served):
        consumer = _consumer(served.server.bootstrap)
        live = _consumer(served.kafka)
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            kafka_low, kafka_high = live.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        finally:
            consumer.close()
            live.close()
        assert low == kafka_low == 0, topic
        if topic != served.compacted:  # the compacted topic's cleaner test keeps producing ticks
            assert high == kafka_high, (topic, partition)


def test_producing_through_the_server_is_refused(served):
    failures = []
    producer = Producer({"bootstrap.servers": served.server.bootstrap})
    producer.produce(served.edge, b"no", b"no", partition=0, on_delivery=lambda err, _: failures.append(err))
    assert producer.flush(30) == 0
    assert [error.code() for error in failures] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def _framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_broken_connections_do_not_disturb_a_reader(served):
    expected = served.rows[served.edge]
    reads: list[dict] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set() or len(reads) < 2:
            reads.append(kafka_rows(served.server.bootstrap, served.edge, 2))

    reader = threading.Thread(target=keep_reading)
    reader.start()
    before = served.server.log_text().count("closing connection")
    sends = [
        os.urandom(256 * 1024),
        struct.pack(">i", 2**31 - 1) + os.urandom(64),  # a 2 GiB length prefix
        _framed(struct.pack(">hhih", 9999, 0, 7, -1)),  # an unknown API key
        _framed(struct.pack(">hhih", 18, 3, 7, 1) + b"t")[:-3],  # a truncated frame, then a hang-up
    ]
    try:
        sockets = []
        for data in sends:
            sock = socket.create_connection(("127.0.0.1", served.server.port), timeout=10)
            with contextlib.suppress(ConnectionError):  # the server may reset it before all is sent
                sock.sendall(data)
                # Done sending: random bytes may announce a frame longer than they are, which the server can only
                # wait for; and the truncated frame's client hangs up.
                sock.shutdown(socket.SHUT_WR)
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(10)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            sock.close()
    finally:
        stop.set()
        reader.join(120)
    assert not reader.is_alive()
    assert all(read == expected for read in reads), "a reader saw something else while connections broke"
    assert served.server.running()
    log = served.server.log_text()
    assert log.count("closing connection") - before >= 2  # one line each (not for a hang-up mid-frame)
    assert "above the maximum request size" in log and "unknown or unsupported API key 9999" in log


def test_new_commits_are_served_as_they_land(served):
    consumer = _consumer(served.server.bootstrap)
    consumer.assign([TopicPartition(served.grow, 0, 5)])  # the high watermark: nothing to read yet
    try:
        assert consumer.poll(1.0).error().code() == KafkaError._PARTITION_EOF
        produce_numbered(served.kafka, served.grow, 5, start=5)
        expected = kafka_rows(served.kafka, served.grow, 1)
        archiver = served.archive.archiver(served.kafka, served.grow, Path(served.server.log).parent / "grow2.log")
        archiver.start()
        got: list[tuple] = []
        deadline = time.monotonic() + 90
        while len(got) < 5:
            assert time.monotonic() < deadline, f"only {len(got)} of 5 new records came through the server"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append((message.offset(), message.key(), message.value()))
        assert archiver.stop() == 0
        assert got == [(row[0], row[3], row[4]) for row in expected[0][5:]]
    finally:
        consumer.close()
