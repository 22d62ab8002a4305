"""Replay against real Kafka: fidelity in preserve mode, key hashing, exact bounds, workers, bad input."""

from __future__ import annotations

import json
import os
import subprocess

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from pyrostore.replay import ReplayOptions, plan_replay, replay_progress
from tests.kafka_helpers import EDGE_CASES, EDGE_HEADERS, ArchiverProcess, archive_rows, kafka_rows, wait_for
from tests.replay_helpers import (
    KEEP_FOREVER,
    as_kafka_row,
    build_archive,
    numbered_record,
    replay_args,
    run_replay,
    without_offsets,
)


def test_preserve_mode_replays_a_whole_archived_topic_record_for_record(kafka, new_topic, tmp_path):
    source = new_topic(partitions=3, config=KEEP_FOREVER)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for round_ in range(40):
        for i, (key, value) in enumerate(EDGE_CASES):
            headers = EDGE_HEADERS if i % 2 else None
            producer.produce(source, value, key, partition=(round_ + i) % 3, headers=headers)
        producer.produce(source, b"stamped", b"t", partition=round_ % 3, timestamp=1_600_000_000_000 - round_ * 1000)
    assert producer.flush(60) == 0
    expected = kafka_rows(kafka.bootstrap, source, 3)
    url = str(tmp_path / "archive")
    archiver = ArchiverProcess(kafka.bootstrap, source, url, tmp_path / "archiver.log").start()
    try:
        wait_for(lambda: archive_rows(url, source, 3) == expected, 90, f"the archive of {source} ({archiver.log})")
    finally:
        assert archiver.stop() == 0

    target = f"{source}-replayed"
    result = run_replay(kafka.bootstrap, url, source, target, "--create-topic")
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(doc.get("records_done") == doc.get("records_total") == 240 for doc in logged)  # progress, as JSON
    replayed = kafka_rows(kafka.bootstrap, target, 3)
    assert without_offsets(replayed) == without_offsets(expected)
    assert {row[1] for rows in replayed.values() for row in rows} == {0}  # CreateTime, carrying the originals


def test_key_hash_matches_kafkas_default_partitioner_and_round_robin_cycles(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "events", partitions=2, records=400, per_segment=150)
    hashed = new_topic(partitions=5, config=KEEP_FOREVER)
    result = run_replay(kafka.bootstrap, url, "events", hashed, "--partitioning", "key-hash")
    assert result.returncode == 0, result.stderr

    reference = new_topic(partitions=5, config=KEEP_FOREVER)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "partitioner": "murmur2_random"}
    )
    keys = sorted({numbered_record(o)[3] for o in range(400)})
    for key in keys:
        producer.produce(reference, b"", key)
    assert producer.flush(30) == 0
    expected = {row[3]: p for p, rows in kafka_rows(kafka.bootstrap, reference, 5).items() for row in rows}
    replayed = kafka_rows(kafka.bootstrap, hashed, 5)
    assert sum(len(rows) for rows in replayed.values()) == 800
    assert {row[3]: p for p, rows in replayed.items() for row in rows} == expected
    assert len(set(expected.values())) > 1

    cycled = new_topic(partitions=3, config=KEEP_FOREVER)
    args = ("--partitioning", "round-robin", "--partitions", "1", "--provenance-headers")
    result = run_replay(kafka.bootstrap, url, "events", cycled, *args)
    assert result.returncode == 0, result.stderr
    rows = kafka_rows(kafka.bootstrap, cycled, 3)
    assert {p: len(found) for p, found in rows.items()} == {0: 133, 1: 134, 2: 133}  # record n: (1 + n) % 3
    for row in (row for found in rows.values() for row in found):
        assert row[5][0][0] == "n"  # the record's own headers first, then where it came from
        assert row[5][1:] == [
            ("pyrostore.source.topic", b"events"),
            ("pyrostore.source.partition", b"1"),
            ("pyrostore.source.offset", row[5][0][1]),
        ]


def test_offset_and_time_bounds_are_exact_at_both_ends(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    # Partition 1 holds only even offsets (gaps, as compaction leaves them); cuts fall inside segments.
    build_archive(url, "bounded", 2, 100, per_segment=30, offsets=lambda p: range(0, 100, 1 + p))

    def replayed(*bounds: str) -> dict[int, list[int]]:
        target = new_topic(partitions=2, config=KEEP_FOREVER)
        result = run_replay(kafka.bootstrap, url, "bounded", target, *bounds)
        assert result.returncode == 0, result.stderr
        rows = kafka_rows(kafka.bootstrap, target, 2)
        for p, found in without_offsets(rows).items():
            for row in found:
                assert row == without_offsets({p: [as_kafka_row(numbered_record(int(dict(row[3])["n"])))]})[p][0]
        return {p: [int(dict(row[5])["n"]) for row in found] for p, found in rows.items()}

    assert replayed("--from-offset", "13", "--to-offset", "71") == {
        0: list(range(13, 71)),
        1: list(range(14, 71, 2)),
    }
    after_13 = str(numbered_record(13)[1] + 1)  # first record at or after: 14
    at_70 = str(numbered_record(70)[1])  # stop before the first record at or after: 70
    assert replayed("--from-time", after_13, "--to-time", at_70) == {0: list(range(14, 70)), 1: list(range(14, 70, 2))}

    dry = run_replay(kafka.bootstrap, url, "bounded", "unused", "--from-offset", "13", "--to-offset", "71", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "bounded/0: offsets 13..70  records 58" in dry.stdout
    assert "bounded/1: offsets 13..70  records 29" in dry.stdout
    assert "87 records" in dry.stdout


def test_parallel_workers_share_partitions_and_progress_reports_the_whole(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "shared", partitions=3, records=300, per_segment=100)
    target = new_topic(partitions=3, config=KEEP_FOREVER)
    workers = [
        subprocess.Popen(
            replay_args(kafka.bootstrap, url, "shared", target, "--exactly-once", "--parallelism", "2"),
            env={**os.environ, "JOB_COMPLETION_INDEX": str(i)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
    source = {p: [as_kafka_row(numbered_record(o)) for o in range(300)] for p in range(3)}
    assert without_offsets(kafka_rows(kafka.bootstrap, target, 3)) == without_offsets(source)
    options = ReplayOptions(url, "shared", target, kafka.bootstrap, exactly_once=True, workers=2)
    assert replay_progress(options) == replay_progress(
        ReplayOptions(url, "shared", target, kafka.bootstrap, exactly_once=True)
    )
    progress = replay_progress(options)
    assert (progress.records_done, progress.records_total, progress.finished) == (900, 900, True)
    assert progress.bytes_done == progress.bytes_total == plan_replay(options, whole=True).bytes > 0


def test_bad_input_gives_one_clear_line_and_writes_nothing(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "orders", partitions=2, records=100, per_segment=50)
    small = new_topic(partitions=1, config=KEEP_FOREVER)

    def fails(store: str, *extra: str, bootstrap: str = kafka.bootstrap, to: str = small, code: int = 1) -> str:
        result = run_replay(bootstrap, store, "orders", to, *extra)
        assert result.returncode == code, result.stderr  # 1: at run time, 2: bad input
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        return lines[0]

    (tmp_path / "empty").mkdir()
    assert "holds no archive of topic 'orders'" in fails(str(tmp_path / "empty"), "--create-topic")
    assert "does not exist" in fails(str(tmp_path / "missing-folder"), "--create-topic")
    assert "nothing to replay" in fails(url, "--from-offset", "100")
    assert "1 partition(s)" in fails(url)  # preserve mode needs 2
    assert "does not exist" in fails(url, to=f"{small}-absent")
    assert "cannot reach Kafka at 127.0.0.1:9" in fails(url, "--create-topic", bootstrap="127.0.0.1:9")
    assert "is not one of" in fails(url, "--partitioning", "random", code=2)
    assert kafka_rows(kafka.bootstrap, small, 1) == {0: []}
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10)
    assert f"{small}-absent" not in metadata.topics
