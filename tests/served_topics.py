"""Topics with every edge case an archive must keep, archived by the real archiver into the stack's MinIO and
served by ``pyrostore serve``: shared by the suites that read the served archive with different clients."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from confluent_kafka import Producer

from e2e.stack.s3 import S3Server
from tests.consumer_helpers import BASE_TS, S3Archive
from tests.kafka_helpers import EDGE_CASES, EDGE_HEADERS, archive_rows, kafka_rows, wait_for
from tests.serve_helpers import ServeProcess, free_port

BIG = os.urandom(1024 * 1024 + 17)
# Room for BIG: the segment must hold the largest batch.
BIG_TOPIC = {"max.message.bytes": str(4 * 1024 * 1024), "segment.bytes": str(16 * 1024 * 1024)}


def fill_edge(bootstrap: str, topic: str) -> None:
    """Partition 0: null and empty keys and values, tombstones, repeated and null headers, a 1 MiB value, timestamps
    out of order. Partition 1: committed and aborted transactions (their records and markers leave gaps)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "message.max.bytes": 4 * 1024 * 1024}
    )
    cases = [*EDGE_CASES, (b"big", BIG)]
    for i in range(60):
        key, value = cases[i % len(cases)] if i < len(cases) else EDGE_CASES[i % len(EDGE_CASES)]
        stamp = BASE_TS + ((i * 37) % 100) * 1000  # not monotonic
        producer.produce(topic, value, key, partition=0, timestamp=stamp, headers=EDGE_HEADERS if i % 2 else None)
    assert producer.flush(60) == 0
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    txn.init_transactions(30)
    for round_, (outcome, count) in enumerate(
        (("commit", 10), ("abort", 6), ("commit", 5), ("abort", 4), ("commit", 3))
    ):
        txn.begin_transaction()
        for i in range(count):
            key, value = EDGE_CASES[i % len(EDGE_CASES)]
            headers = [("round", b"%d" % round_), *EDGE_HEADERS] if i % 2 else None
            txn.produce(topic, value, key, partition=1, headers=headers)
        if outcome == "commit":
            txn.commit_transaction(30)
        else:
            txn.flush(30)  # the aborted records take offsets
            txn.abort_transaction(30)


def fill_appended(bootstrap: str, topic: str) -> None:
    """40 records in several batches to a LogAppendTime topic (the broker replaces their timestamps)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    for i in range(40):
        producer.produce(topic, b"v%d" % i, b"k%d" % (i % 3), timestamp=1_000 + i)  # the broker overrides these
        if i % 10 == 9:
            producer.flush(30)  # several batches, so several append times
    assert producer.flush(30) == 0


def archive_all(archive: S3Archive, bootstrap: str, partitions: dict[str, int], logs: Path) -> dict[str, dict]:
    """Archive the topics in parallel until each archive holds what Kafka holds; return Kafka's rows."""
    rows = {topic: kafka_rows(bootstrap, topic, count) for topic, count in partitions.items()}
    archivers = [archive.archiver(bootstrap, topic, logs / f"{topic}.log") for topic in partitions]
    for archiver in archivers:
        archiver.start()
    try:
        for topic, count in partitions.items():
            wait_for(
                lambda topic=topic, count=count: (
                    archive_rows(archive.url, topic, count, **archive.store_options) == rows[topic]
                ),
                timeout=120,
                what=f"the archive of {topic} to match Kafka",
            )
    finally:
        for archiver in archivers:
            assert archiver.stop() == 0, archiver.log_text()[-2000:]
    return rows


def serve_archive(archive: S3Archive, s3_server: S3Server, log: Path, *extra: str) -> ServeProcess:
    """``pyrostore serve`` over ``archive`` on a free port (credentials in its environment), started."""
    env = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
    }
    options = ("-o", f"endpoint_url={s3_server.endpoint}", *extra)
    return ServeProcess(archive.url, free_port(), log, *options, env=env).start()
