"""``pyrostore iceberg sync`` against the stack's Kafka and MinIO with the real archiver: the table holds exactly
the committed segments, each once, across reruns and SIGKILLs, and reads back what Kafka holds."""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from e2e.stack.s3 import S3Server
from pyrostore.archive import Archive
from pyrostore.store import open_store
from tests.consumer_helpers import S3Archive
from tests.helpers import make_segment
from tests.iceberg_helpers import committed_files, s3_properties, table_files, table_rows
from tests.kafka_helpers import ChildProcess, archive_rows, kafka_rows, keep_producing, produce_numbered, wait_for
from tests.served_topics import BIG_TOPIC, fill_edge


class Sync(ChildProcess):
    """``pyrostore iceberg sync`` of one topic into a SQLite catalog, as a child process (credentials in its
    environment, as the archiver's)."""

    def __init__(self, archive: S3Archive, topic: str, catalog: Path | str, log: Path) -> None:
        server = archive.server
        args = [sys.executable, "-m", "pyrostore", "iceberg", "sync", archive.url, "--table", f"kafka.{topic}"]
        uri = catalog if isinstance(catalog, str) else f"sqlite:///{catalog}"  # a SQLite file, or any catalog URI
        args += ["--catalog-uri", uri, "-o", f"endpoint_url={server.endpoint}"]
        env = {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region,
        }
        super().__init__(args, log, env)

    def run(self) -> str:
        """Run once to the end; return its output (fails the test on a non-zero exit)."""
        start = self.log.stat().st_size if self.log.exists() else 0
        self.start()
        assert self.proc is not None
        assert self.proc.wait(120) == 0, self.log_text()[start:]
        return self.log_text()[start:]


def open_synced(catalog: Path, server: S3Server, topic: str) -> Table:
    """The table as a reader opens it: the same catalog, the MinIO endpoint and credentials."""
    return SqlCatalog("pyrostore", uri=f"sqlite:///{catalog}", **s3_properties(server)).load_table(("kafka", topic))


def test_sync_registers_each_committed_segment_once_and_reads_like_kafka(kafka, s3_server, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    archive = S3Archive(s3_server)
    catalog = tmp_path / "catalog.db"
    sync = Sync(archive, topic, catalog, tmp_path / "sync.log")
    produce_numbered(kafka.bootstrap, topic, 300, partitions=2)
    archive.archive(kafka.bootstrap, topic, 2, tmp_path / "archiver.log")
    store = open_store(archive.url, **archive.store_options)
    reader = Archive(store)

    assert "added 0 segment(s)" not in sync.run()
    table = open_synced(catalog, s3_server, topic)
    assert table_files(table) == committed_files(reader, topic)
    assert "added 0 segment(s), 0 record(s)" in sync.run()
    assert len(open_synced(catalog, s3_server, topic).snapshots()) == 1

    # A crashed writer's upload that no commit names; then more records, archived.
    head = reader.partition(topic, 0).next_offset
    leftover = make_segment(topic, 0, head, 5)
    store.put(leftover.key, leftover.data)
    produce_numbered(kafka.bootstrap, topic, 100, partitions=2, start=300)
    expected = archive.archive(kafka.bootstrap, topic, 2, tmp_path / "archiver.log")
    before = set(table_files(table))

    sync.run()
    table = open_synced(catalog, s3_server, topic)
    files = table_files(table)
    assert files == committed_files(reader, topic)
    assert len(files) == len(set(files))
    assert before < set(files)
    assert store.location(leftover.key) not in files
    assert table_rows(table) == expected
    total = sum(len(rows) for rows in expected.values())
    scanned = table.scan(selected_fields=("offset",)).to_arrow()
    assert scanned.num_rows == total
    assert len(open_synced(catalog, s3_server, topic).snapshots()) == 2


def test_sync_killed_at_random_moments_while_archiving_ends_with_each_segment_once(
    kafka, s3_server, new_topic, tmp_path
):
    topic = new_topic(partitions=3)
    archive = S3Archive(s3_server)
    catalog = tmp_path / "catalog.db"
    sync = Sync(archive, topic, catalog, tmp_path / "sync.log")
    archiver = archive.archiver(kafka.bootstrap, topic, tmp_path / "archiver.log", "--segment-age", "300ms")
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.005))
    producer.start()
    archiver.start()
    rng = random.Random(16)
    kills = 0
    try:
        time.sleep(3)  # some segments first
        took = 0.0
        for round_ in range(40):
            if kills >= 5 and round_ >= 10:
                break
            if round_ % 3 == 0:  # a whole run now and then: the backlog stays small, its length is measured
                began = time.monotonic()
                sync.run()
                took = time.monotonic() - began
                continue
            sync.start()
            time.sleep(rng.uniform(0.3, 1.3) * took)  # anywhere in a run: before, during or after its commit
            if sync.running():
                sync.kill()
                kills += 1
            else:
                assert sync.proc is not None and sync.proc.wait() == 0, sync.log_text()[-3000:]
            assert archiver.running(), archiver.log_text()[-3000:]
        assert kills >= 5
    finally:
        stop.set()
        producer.join(60)
    expected = kafka_rows(kafka.bootstrap, topic, 3)
    try:
        wait_for(
            lambda: archive_rows(archive.url, topic, 3, **archive.store_options) == expected,
            timeout=120,
            what=f"the archive to catch up (log {archiver.log})",
        )
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-2000:]

    sync.run()
    table = open_synced(catalog, s3_server, topic)
    files = table_files(table)
    reader = Archive(open_store(archive.url, **archive.store_options))
    assert files == committed_files(reader, topic)
    assert len(files) == len(set(files))
    assert table_rows(table) == expected


def test_the_table_reads_every_edge_case_as_kafka_does(kafka, s3_server, new_topic, tmp_path):
    """Null and empty keys and values, tombstones, repeated and null headers, a 1 MiB value, timestamps out of
    order, and committed and aborted transactions (their gaps): the scan equals a read_committed read of Kafka."""
    topic = new_topic(partitions=2, config=BIG_TOPIC)
    fill_edge(kafka.bootstrap, topic)
    archive = S3Archive(s3_server)
    expected = archive.archive(kafka.bootstrap, topic, 2, tmp_path / "archiver.log")
    catalog = tmp_path / "catalog.db"
    Sync(archive, topic, catalog, tmp_path / "sync.log").run()
    assert table_rows(open_synced(catalog, s3_server, topic)) == expected
