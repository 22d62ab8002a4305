"""The archiver under failure: SIGKILLs, a second replica, a stalled replica, and bad input."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from pyrostore.index.commits import iter_commits
from pyrostore.store import open_store
from tests.kafka_helpers import (
    ArchiverProcess,
    archive_rows,
    assert_archive_equals_topic,
    kafka_rows,
    keep_producing,
    produce_numbered,
    wait_for,
)

FAST_GROUP = ("-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500")


def test_sigkill_at_random_moments_loses_and_doubles_nothing(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=3)
    url = str(tmp_path / "archive")
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop))
    producer.start()
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "archiver.log", "--segment-age", "200ms")
    rng = random.Random(2026)
    kills = 0
    try:
        for _ in range(12):
            archiver.start()
            time.sleep(rng.uniform(0.5, 3.0))
            assert archiver.running(), archiver.log_text()[-3000:]
            archiver.kill()
            kills += 1
    finally:
        stop.set()
        producer.join()
    archiver.start()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 3, url, archiver.log)
    finally:
        assert archiver.stop() == 0
    assert kills >= 10
    total = sum(len(rows) for rows in archive_rows(url, topic, 3).values())
    assert total > 1000, "the producer wrote too little for the kills to matter"


def test_two_replicas_share_partitions_and_take_over(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=4)
    url = str(tmp_path / "archive")
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.005))
    producer.start()
    first = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "first.log", *FAST_GROUP).start()
    second = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "second.log", *FAST_GROUP).start()
    store = open_store(url)

    def writers() -> set[str]:
        found = set()
        for p in range(4):
            found |= {c.writer_id for c in iter_commits(store, topic, p) if c.root is not None}
        return found

    try:
        wait_for(lambda: len(writers()) == 2, 60, "both replicas to archive partitions")
        before = writers()
        killed = f"-{first.proc.pid}-"
        first.kill()

        def survivor_owns_all() -> bool:
            newest = [list(iter_commits(store, topic, p))[-1].writer_id for p in range(4)]
            return len(set(newest)) == 1 and killed not in newest[0]

        wait_for(survivor_owns_all, 60, "the survivor to take over every partition")
    finally:
        stop.set()
        producer.join()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 4, url, second.log)
    finally:
        assert second.stop() == 0
    assert len(before) == 2


def test_a_stalled_replica_is_fenced(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    url = str(tmp_path / "archive")
    produce_numbered(kafka.bootstrap, topic, 2000, partitions=2)

    stalled = ArchiverProcess(
        kafka.bootstrap, topic, url, tmp_path / "stalled.log", *FAST_GROUP, "--segment-age", "30s"
    ).start()
    wait_for(lambda: "assigned" in stalled.log_text(), 30, "the first archiver to be assigned")
    time.sleep(2)  # it reads everything into open segments (which roll only after 30 s)
    stalled.proc.send_signal(signal.SIGSTOP)
    taker = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "taker.log", *FAST_GROUP).start()
    try:
        wait_for(lambda: archive_rows(url, topic, 2) == kafka_rows(kafka.bootstrap, topic, 2), 60, "the takeover")
        stalled.proc.send_signal(signal.SIGCONT)
        time.sleep(1)
        assert stalled.stop() == 0  # on shutdown it tries to commit its open segments: fenced
        assert "fenced" in stalled.log_text()
    finally:
        if stalled.running():
            stalled.proc.send_signal(signal.SIGCONT)
            stalled.kill()
        assert taker.stop() == 0
    store = open_store(url)
    for p in range(2):
        commits = list(iter_commits(store, topic, p))
        epochs = [c.writer_epoch for c in commits]
        assert epochs == sorted(epochs), "a commit of an older epoch landed after a newer claim"
        # Everything the stalled archiver read sat in open segments when it stalled: none was committed.
        assert [c for c in commits if c.writer_epoch == 1 and c.root is not None] == []
    assert_archive_equals_topic(kafka.bootstrap, topic, 2, url, taker.log)


def _archive_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyrostore", "archive", "--log-format", "text", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("case", ["unknown topic", "unreachable Kafka", "missing bucket", "bad credentials"])
def test_bad_input_gives_one_clear_line(kafka, s3_server, new_topic, tmp_path, case):
    topic = new_topic(partitions=1)
    s3 = ["-o", f"endpoint_url={s3_server.endpoint}", "-o", f"access_key_id={s3_server.access_key}"]
    s3 += ["-o", f"secret_access_key={s3_server.secret_key}", "-o", "region=us-east-1"]
    args = {
        "unknown topic": ["-b", kafka.bootstrap, "-t", "no-such-topic", "--store", str(tmp_path)],
        "unreachable Kafka": ["-b", "127.0.0.1:1", "-t", topic, "--store", str(tmp_path)],
        "missing bucket": ["-b", kafka.bootstrap, "-t", topic, "--store", "s3://no-such-bucket/x", *s3],
        "bad credentials": [
            "-b",
            kafka.bootstrap,
            "-t",
            topic,
            "--store",
            f"s3://{s3_server.bucket}/x",
            *s3[:4],
            "-o",
            "secret_access_key=wrong",
            "-o",
            "region=us-east-1",
        ],
    }[case]
    expected = {
        "unknown topic": "does not exist",
        "unreachable Kafka": "cannot reach Kafka",
        "missing bucket": "no-such-bucket",
        "bad credentials": "access denied",
    }[case]
    result = _archive_cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0].lower() or expected in errors[0], errors[0]
