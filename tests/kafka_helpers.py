"""Test helpers around real Kafka: read a topic as a plain consumer, run the archiver as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pyrostore.archive import Archive
from pyrostore.errors import TopicNotFound
from pyrostore.index.tree import NodeStore
from pyrostore.store import open_store
from pyrostore.verify import verify_partition

# (offset, timestamp type 0/1, timestamp, key, value, headers, leader epoch): what an archive must keep.
Row = tuple


def row(message: Message) -> Row:
    """A record as an archive must keep it: (offset, timestamp type 0/1, timestamp, key, value, headers, epoch)."""
    kind, stamp = message.timestamp()
    return (
        message.offset(),
        kind - 1,
        stamp,
        message.key(),
        message.value(),
        message.headers() or [],
        message.leader_epoch(),
    )


def kafka_rows(bootstrap: str, topic: str, partitions: int) -> dict[int, list[Row]]:
    """Everything a plain read_committed consumer reads from each partition, from the start to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # -2: OFFSET_BEGINNING
    rows: dict[int, list[Row]] = {p: [] for p in range(partitions)}
    ended: set[int] = set()
    deadline = time.monotonic() + 120
    while len(ended) < partitions:
        assert time.monotonic() < deadline, f"reading {topic} from Kafka took over 120 s"
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if _at_committed_end(consumer, message):
                ended.add(message.partition())
            continue
        rows[message.partition()].append(row(message))
    consumer.close()
    return rows


def _at_committed_end(consumer: Consumer, message: Message) -> bool:
    """Whether an error event is the end of its partition with every transaction on it decided.

    A producer's ``commit_transaction`` returns before the broker has written the commit markers, so a
    read_committed reader started at once can reach "end of partition" at a last stable offset still
    short of the high watermark; it must read on, not stop there with nothing."""
    if message.error().code() != KafkaError._PARTITION_EOF:
        return False  # transient (a new topic's leader not yet known, say): read on until the deadline
    partition = TopicPartition(message.topic(), message.partition())
    return message.offset() >= consumer.get_watermark_offsets(partition, timeout=10, cached=False)[1]


def archive_rows(url: str, topic: str, partitions: int, **options) -> dict[int, list[Row]]:
    """Everything the archive at ``url`` holds of each partition (empty when not archived yet)."""
    archive = Archive(open_store(url, **options))
    rows: dict[int, list[Row]] = {}
    for p in range(partitions):
        try:
            reader = archive.partition(topic, p)
        except TopicNotFound:
            rows[p] = []
            continue
        rows[p] = [
            (r.offset, r.timestamp_type, r.timestamp, r.key, r.value, r.headers, r.leader_epoch) for r in reader.read()
        ]
    return rows


def produce_numbered(bootstrap: str, topic: str, count: int, partitions: int = 1, start: int = 0) -> None:
    """Produce records ``v<i>`` keyed ``k<i>`` for i in ``[start, start + count)``, round-robin over partitions.

    Idempotent, as every test producer: librdkafka's default producer retries failed batches (NOT_LEADER_OR_FOLLOWER
    on a topic created a moment ago) while later batches are in flight, so Kafka may store them out of order.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(start, start + count):
        producer.produce(topic, b"v%d" % i, b"k%d" % i, partition=i % partitions)
    assert producer.flush(30) == 0


# (key, value) pairs an archive must tell apart: null against empty, and binary bytes.
EDGE_CASES = [
    (None, b"null key"),
    (b"tombstone", None),
    (b"empty value", b""),
    (b"", b"empty key"),
    (bytes(range(256)), bytes(reversed(range(256)))),
]
# Headers keep their order, repeated keys, null and empty values.
EDGE_HEADERS = [("h", b"1"), ("h", None), ("other", b""), ("h", b"\x00\xff")]

# A topic whose log cleaner compacts within seconds.
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
}


def keep_producing(bootstrap: str, topic: str, stop: threading.Event, pause: float = 0.002) -> None:
    """Produce numbered records (keys over 97 values, a ``seq`` header), one every ``pause`` seconds, until
    ``stop`` is set; then flush them all. For a thread beside a process the test kills and restarts."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2})
    i = 0
    while not stop.is_set():
        producer.produce(topic, b"value-%d" % i, b"key-%d" % (i % 97), headers=[("seq", b"%d" % i)])
        producer.poll(0)
        i += 1
        time.sleep(pause)
    assert producer.flush(30) == 0


def fill_compacted(bootstrap: str, topic: str) -> None:
    """Write 6 rounds of 10 keys to a :data:`COMPACTED` topic and wait until compaction left offset gaps."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for round_ in range(6):
        for key in range(10):
            producer.produce(topic, b"round %d" % round_, b"key-%d" % key)
        producer.flush(30)
        time.sleep(0.3)  # let the active segment age past segment.ms, so the next write rolls it

    def compacted() -> bool:
        producer.produce(topic, b"tick", b"tick")
        producer.flush(30)
        offsets = [row[0] for row in kafka_rows(bootstrap, topic, 1)[0]]
        return len(offsets) < offsets[-1] + 1

    wait_for(compacted, timeout=90, what="Kafka's log cleaner to compact the topic", interval=1.0)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll ``condition`` until true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(interval)


def assert_archive_equals_topic(
    bootstrap: str, topic: str, partitions: int, url: str, log: Path, timeout: float = 90, **options: str
) -> None:
    """Wait until the archive at ``url`` holds exactly what Kafka holds of ``topic`` (record for record, no gap
    or duplicate offset), then check that every partition verifies clean."""
    expected = kafka_rows(bootstrap, topic, partitions)
    wait_for(
        lambda: archive_rows(url, topic, partitions, **options) == expected,
        timeout,
        f"the archive to catch up (log {log})",
    )
    store = open_store(url, **options)
    for p in range(partitions):
        offsets = [row[0] for row in archive_rows(url, topic, partitions, **options)[p]]
        assert offsets == list(range(len(offsets))), "gap or duplicate"
        report = verify_partition(store, NodeStore(store, topic), topic, p)
        assert report.ok, report.problems


class ChildProcess:
    """A ``pyrostore`` command as a child process that a test may kill, with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ChildProcess:
        """Start (or restart) the process."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for a clean exit; return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code."""
        return self.proc.wait(timeout)

    def running(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace")


class ArchiverProcess(ChildProcess):
    """``pyrostore archive`` as a child process (segments roll after 1 s, logs as JSON)."""

    def __init__(
        self, bootstrap: str, topic: str, store: str, log: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        args = [sys.executable, "-m", "pyrostore", "archive", "-b", bootstrap, "-t", topic, "--store", store]
        super().__init__([*args, "--segment-age", "1s", "--log-format", "json", *extra], log, env)


def archive_until_caught_up(archiver: ArchiverProcess, topic: str, partitions: int, expected: dict, **options) -> None:
    """Run ``archiver`` until its archive holds ``expected`` (what :func:`kafka_rows` read), then stop it cleanly."""
    url = archiver.args[archiver.args.index("--store") + 1]
    archiver.start()
    try:
        wait_for(
            lambda: archive_rows(url, topic, partitions, **options) == expected,
            timeout=90,
            what=f"the archive of {topic} to match Kafka (log {archiver.log})",
        )
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-2000:]
