"""SIGTERM ends the archiver within its grace period, whether its broker is there or gone: a healthy broker gets
the archive's ends as the group's committed offsets; a vanished one is waited for only as long as the grace
allows, and the archive keeps everything committed and held."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pyrostore.index.tree import NodeStore
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.kafka_helpers import (
    ArchiverProcess,
    archive_rows,
    assert_archive_equals_topic,
    kafka_rows,
    produce_numbered,
    wait_for,
)

PARTITIONS = 3
BOUND = 25.0  # liveness bound: Kubernetes SIGKILLs at 30 s; the archiver's grace is 20 s here
GRACE = ("--shutdown-grace", "20s")
# A member that could not leave its group holds its partitions for its session: 10 s, not 45, for a quick resume.
SHORT_SESSION = ("-X", "session.timeout.ms=10000", "-X", "heartbeat.interval.ms=1000")


def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed Kafka offset per partition (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=15)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def _ends(rows: dict) -> dict[int, int]:
    return {p: (r[-1][0] + 1 if r else -1001) for p, r in rows.items()}


def _sigterm(archiver: ArchiverProcess) -> tuple[int | None, float]:
    """SIGTERM ``archiver``: its exit code (None if it still ran after BOUND seconds, then SIGKILLed) and the
    seconds it took."""
    started = time.monotonic()
    archiver.proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = archiver.wait(BOUND)
    except subprocess.TimeoutExpired:
        code = None
        archiver.kill()
    return code, time.monotonic() - started


def _assert_verifies(url: str, topic: str) -> None:
    store = open_store(url)
    for p in range(PARTITIONS):
        report = verify_partition(store, NodeStore(store, topic), topic, p)
        assert report.ok, report.problems


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_sigterm_with_the_broker_gone_exits_within_the_grace(restartable_kafka, tmp_path, capsys, static):
    kafka = restartable_kafka
    topic = f"shutdown-{uuid.uuid4().hex[:8]}"
    group = f"pyrostore-{topic}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(60)
    produce_numbered(kafka.bootstrap, topic, 300, PARTITIONS)
    expected = kafka_rows(kafka.bootstrap, topic, PARTITIONS)
    url, log = str(tmp_path / "archive"), tmp_path / "archiver.log"
    extra = ("--instance-id", "archiver-0") if static else ()
    # Segments roll 8 s after their first record: the second batch is still held when SIGTERM comes.
    archiver = ArchiverProcess(
        kafka.bootstrap, topic, url, log, *GRACE, "--segment-age", "8s", *SHORT_SESSION, *extra
    ).start()
    try:
        wait_for(lambda: archive_rows(url, topic, PARTITIONS) == expected, 60, f"the archive to catch up (log {log})")
        wait_for(lambda: _committed(kafka.bootstrap, topic, group) == _ends(expected), 30, "Kafka offset commits")
        produce_numbered(kafka.bootstrap, topic, 150, PARTITIONS, start=300)
        time.sleep(1)  # read by the archiver, and held
        kafka.process.kill()  # gone, and not coming back while the archiver stops
        time.sleep(2)  # the archiver's connections notice
        assert archiver.running(), archiver.log_text()[-3000:]
        code, took = _sigterm(archiver)
    finally:
        if archiver.running():
            archiver.kill()
        kafka.restart()  # the fixture's broker serves later tests
    expected = kafka_rows(kafka.bootstrap, topic, PARTITIONS)
    with capsys.disabled():
        print(f"\nSIGTERM to exit with the broker gone ({'static' if static else 'dynamic'} member): {took:.1f}s")
    assert code == 0, f"{'still running' if code is None else f'exit {code}'} after {took:.1f}s: {archiver.log_text()}"
    assert "Traceback" not in archiver.log_text()
    assert archive_rows(url, topic, PARTITIONS) == expected  # what it had committed and held, intact
    _assert_verifies(url, topic)
    # A new archiver resumes at the archive's end: nothing lost, nothing doubled.
    produce_numbered(kafka.bootstrap, topic, 150, PARTITIONS, start=450)
    resumed = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "resumed.log", *extra).start()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, PARTITIONS, url, resumed.log)
    finally:
        assert resumed.stop() == 0, resumed.log_text()[-3000:]


def test_sigterm_with_a_healthy_broker_flushes_what_it_holds_and_commits_kafka_offsets(
    kafka, new_topic, tmp_path, capsys
):
    topic = new_topic(partitions=PARTITIONS)
    produce_numbered(kafka.bootstrap, topic, 300, PARTITIONS)
    expected = kafka_rows(kafka.bootstrap, topic, PARTITIONS)
    url, log = str(tmp_path / "archive"), tmp_path / "archiver.log"
    # Segments never roll by age: everything read is still held when SIGTERM comes.
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, log, *GRACE, "--segment-age", "10m").start()
    try:
        wait_for(lambda: archiver.log_text().count("assigned") >= PARTITIONS, 60, f"assignment (log {log})")
        time.sleep(3)  # 300 records are read long before
        assert archive_rows(url, topic, PARTITIONS) == {p: [] for p in range(PARTITIONS)}
        code, took = _sigterm(archiver)
    finally:
        if archiver.running():
            archiver.kill()
    with capsys.disabled():
        print(f"\nSIGTERM to exit with a healthy broker: {took:.1f}s")
    assert code == 0, f"exit {code} after {took:.1f}s: {archiver.log_text()}"
    assert took < 10, took  # no Kafka step waited out its 10 s
    assert archive_rows(url, topic, PARTITIONS) == expected
    _assert_verifies(url, topic)
    # Kafka's committed offsets (lag tools) are the archive's ends.
    assert _committed(kafka.bootstrap, topic, f"pyrostore-{topic}") == _ends(expected)
