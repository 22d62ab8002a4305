"""SIGTERM ends the archiver within its grace period, whether its broker is there or gone: a healthy broker gets
the archive's ends as the group's committed offsets; a vanished one is waited for only as long as the grace
allows, and the archive keeps everything committed and held."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

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


def _sigterm_all(archivers: list[ArchiverProcess]) -> list[tuple[int | None, float]]:
    """SIGTERM every archiver at once: each one's exit code (None if it still ran BOUND seconds after the signal,
    then SIGKILLed) and the seconds it took."""
    started = time.monotonic()
    for archiver in archivers:
        archiver.proc.send_signal(signal.SIGTERM)
    outcomes: list[tuple[int | None, float]] = []
    for archiver in archivers:
        try:
            code: int | None = archiver.wait(max(0.0, started + BOUND - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
            archiver.kill()
        outcomes.append((code, time.monotonic() - started))
    return outcomes


def _wait_archived_and_committed(bootstrap: str, url: str, topic: str, rows: dict, archiver: ArchiverProcess) -> None:
    """Wait until the archive holds ``rows`` and the archiver's group committed their ends to Kafka."""
    wait_for(lambda: archive_rows(url, topic, PARTITIONS) == rows, 60, f"{topic}'s archive (log {archiver.log})")
    ends = _ends(rows)
    wait_for(lambda: _committed(bootstrap, topic, f"pyrostore-{topic}") == ends, 30, f"{topic}'s Kafka commits")


def _assert_verifies(url: str, topic: str) -> None:
    store = open_store(url)
    for p in range(PARTITIONS):
        report = verify_partition(store, NodeStore(store, topic), topic, p)
        assert report.ok, report.problems


def test_sigterm_with_the_broker_gone_exits_within_the_grace(restartable_kafka, tmp_path, capsys):
    """A dynamic and a static group member, each archiving its own topic, lose the broker together (one kill
    serves both cases)."""
    kafka = restartable_kafka
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    kinds = {"dynamic": (), "static": ("--instance-id", "archiver-0")}
    topics = {kind: f"shutdown-{kind}-{uuid.uuid4().hex[:8]}" for kind in kinds}
    for topic in topics.values():
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(60)
        produce_numbered(kafka.bootstrap, topic, 300, PARTITIONS)
    expected = {kind: kafka_rows(kafka.bootstrap, topic, PARTITIONS) for kind, topic in topics.items()}
    urls = {kind: str(tmp_path / kind / "archive") for kind in kinds}
    # Segments roll 8 s after their first record: the second batch is still held when SIGTERM comes.
    archivers = {
        kind: ArchiverProcess(
            kafka.bootstrap,
            topics[kind],
            urls[kind],
            tmp_path / f"{kind}.log",
            *GRACE,
            "--segment-age",
            "8s",
            *SHORT_SESSION,
            *extra,
        ).start()
        for kind, extra in kinds.items()
    }
    try:
        for kind, archiver in archivers.items():
            _wait_archived_and_committed(kafka.bootstrap, urls[kind], topics[kind], expected[kind], archiver)
        for topic in topics.values():
            produce_numbered(kafka.bootstrap, topic, 150, PARTITIONS, start=300)
        time.sleep(1)  # read by the archivers, and held
        kafka.process.kill()  # gone, and not coming back while the archivers stop
        time.sleep(2)  # the archivers' connections notice
        for archiver in archivers.values():
            assert archiver.running(), archiver.log_text()[-3000:]
        outcomes = dict(zip(archivers, _sigterm_all(list(archivers.values())), strict=True))
    finally:
        for archiver in archivers.values():
            if archiver.running():
                archiver.kill()
        kafka.restart()  # the fixture's broker serves later tests
    for kind, archiver in archivers.items():
        code, took = outcomes[kind]
        with capsys.disabled():
            print(f"\nSIGTERM to exit with the broker gone ({kind} member): {took:.1f}s")
        assert code == 0, f"{kind}: {'still running' if code is None else f'exit {code}'} after {took:.1f}s: " + (
            archiver.log_text()
        )
        assert "Traceback" not in archiver.log_text()
    resumed = {}
    for kind, extra in kinds.items():
        topic, url = topics[kind], urls[kind]
        assert archive_rows(url, topic, PARTITIONS) == kafka_rows(kafka.bootstrap, topic, PARTITIONS)  # intact
        _assert_verifies(url, topic)
        # A new archiver resumes at the archive's end: nothing lost, nothing doubled.
        produce_numbered(kafka.bootstrap, topic, 150, PARTITIONS, start=450)
        resumed[kind] = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / f"{kind}-resumed.log", *extra).start()
    try:
        for kind, archiver in resumed.items():
            assert_archive_equals_topic(kafka.bootstrap, topics[kind], PARTITIONS, urls[kind], archiver.log)
    finally:
        for archiver in resumed.values():
            assert archiver.stop() == 0, archiver.log_text()[-3000:]


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
        [(code, took)] = _sigterm_all([archiver])
    finally:
        if archiver.running():
            archiver.kill()
    with capsys.disabled():
        print(f"\nSIGTERM to exit with a healthy broker: {took:.1f}s")
    assert code == 0, f"exit {code} after {took:.1f}s: {archiver.log_text()}"
    assert "gave up waiting" not in archiver.log_text()  # no Kafka step waited out its 10 s
    assert archive_rows(url, topic, PARTITIONS) == expected
    _assert_verifies(url, topic)
    # Kafka's committed offsets (lag tools) are the archive's ends.
    assert _committed(kafka.bootstrap, topic, f"pyrostore-{topic}") == _ends(expected)
