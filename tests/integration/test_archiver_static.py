"""Static group membership (KIP-345): an archiver SIGKILLed and restarted with the same ``--instance-id`` gets its
partitions back at once instead of after the group's session timeout; two archivers with one id never both
commit (Kafka fences the older, the archive's writer epochs fence its last flushes)."""

from __future__ import annotations

import threading
import time

from pyrostore.index.commits import read_head
from pyrostore.store import open_store
from tests.kafka_helpers import ArchiverProcess, assert_archive_equals_topic, keep_producing, wait_for

SESSION_MS = 60_000  # far above a restart: a dynamic member would wait this long for its partitions
LONG_SESSION = ("-X", f"session.timeout.ms={SESSION_MS}", "-X", "heartbeat.interval.ms=1000")


def _heads(store, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """Per partition: (writer epoch, next offset) of the newest commit, (0, 0) before the first."""
    heads = {p: read_head(store, topic, p) for p in range(partitions)}
    return {p: (h.writer_epoch, h.next_offset) if h else (0, 0) for p, h in heads.items()}


def test_a_sigkilled_archiver_with_an_instance_id_resumes_within_seconds(kafka, new_topic, tmp_path, capsys):
    topic = new_topic(partitions=3)
    url = str(tmp_path / "archive")
    store = open_store(url)
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.005))
    producer.start()
    archiver = ArchiverProcess(
        kafka.bootstrap, topic, url, tmp_path / "archiver.log", "--instance-id", "archiver-0", "--segment-age",
        "200ms", *LONG_SESSION,
    )  # fmt: skip
    resumed_after = []
    try:
        archiver.start()
        wait_for(lambda: all(n > 0 for _, n in _heads(store, topic, 3).values()), 60, "every partition archived")
        for _ in range(3):
            before = _heads(store, topic, 3)
            archiver.kill()
            started = time.monotonic()
            archiver.start()

            def all_resumed(before=before) -> bool:
                now = _heads(store, topic, 3)
                return all(now[p][0] > before[p][0] and now[p][1] > before[p][1] for p in now)

            # Every partition committed by the new process (a higher writer epoch) past where the killed one was.
            wait_for(all_resumed, SESSION_MS / 1000, f"the restarted archiver to resume (log {archiver.log})")
            resumed_after.append(time.monotonic() - started)
    finally:
        stop.set()
        producer.join()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 3, url, archiver.log)
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-3000:]
    with capsys.disabled():
        print(f"\nrestart to every partition committing again: {', '.join(f'{s:.1f}s' for s in resumed_after)}")
    # Without static membership none would resume before the killed member's session timed out.
    assert max(resumed_after) < SESSION_MS / 1000 / 2, resumed_after


def test_two_archivers_with_one_instance_id_never_both_commit(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    url = str(tmp_path / "archive")
    store = open_store(url)
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.005))
    producer.start()
    same = ("--instance-id", "archiver-0", "--segment-age", "200ms", *LONG_SESSION)
    first = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "first.log", *same)
    second = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "second.log", *same)
    try:
        first.start()
        wait_for(lambda: all(n > 0 for _, n in _heads(store, topic, 2).values()), 60, "the first archiver committing")
        epochs = {e for e, _ in _heads(store, topic, 2).values()}
        second.start()
        # Kafka fences the older member: the first archiver stops with one clear line; the second takes over.
        code = first.wait(60)
        assert code != 0
        fenced = first.log_text()
        assert "fenced" in fenced.lower() and "Traceback" not in fenced, fenced[-3000:]
        wait_for(
            lambda: all(e > max(epochs) for e, _ in _heads(store, topic, 2).values()),
            60,
            f"the second archiver committing every partition (log {second.log})",
        )
    finally:
        stop.set()
        producer.join()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 2, url, second.log)
    finally:
        assert second.stop() == 0, second.log_text()[-3000:]
