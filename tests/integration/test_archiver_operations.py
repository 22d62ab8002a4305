"""What operators meet: history lost to retention, a recreated topic, and the metrics endpoint."""

from __future__ import annotations

import urllib.request

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from e2e.stack.process import free_port
from pyrostore.archive import Archive
from pyrostore.errors import OffsetOutOfRange, TopicNotFound
from pyrostore.index.tree import NodeStore
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.kafka_helpers import ArchiverProcess, archive_rows, produce_numbered, wait_for


def _archive_once(kafka, topic: str, url: str, log, records: int, *extra: str) -> None:
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, log, *extra).start()
    try:
        wait_for(lambda: _archived(url, topic) >= records, 60, f"{records} archived records")
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-2000:]


def _archived(url: str, topic: str) -> int:
    try:
        return Archive(open_store(url)).partition(topic, 0).commit.records
    except TopicNotFound:
        return 0


def test_history_lost_to_retention_stops_the_archiver_unless_accepted(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=1)
    url = str(tmp_path / "archive")
    produce_numbered(kafka.bootstrap, topic, 100)
    _archive_once(kafka, topic, url, tmp_path / "first.log", 100)

    produce_numbered(kafka.bootstrap, topic, 100, start=100)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.delete_records([TopicPartition(topic, 0, 150)])[TopicPartition(topic, 0, 150)].result(30)

    refused = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "refused.log").start()
    assert refused.proc.wait(60) != 0
    log = refused.log_text()
    assert "offsets 100..149 (50 offsets) were deleted by Kafka's retention" in log
    assert "--accept-loss" in log
    assert Archive(open_store(url)).partition(topic, 0).next_offset == 100  # nothing was skipped

    _archive_once(kafka, topic, url, tmp_path / "accepted.log", 150, "--accept-loss")
    reader = Archive(open_store(url)).partition(topic, 0)
    assert reader.find(120).lost
    assert [r.offset for r in reader.read(skip_lost=True)] == [*range(100), *range(150, 200)]
    with pytest.raises(OffsetOutOfRange, match=r"offsets 100\.\.149 were lost"):
        list(reader.read(90))
    assert verify_partition(reader.store, NodeStore(reader.store, topic), topic, 0).ok


def test_a_recreated_topic_is_never_appended_to_the_old_archive(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=1)
    url = str(tmp_path / "archive")
    produce_numbered(kafka.bootstrap, topic, 20)
    _archive_once(kafka, topic, url, tmp_path / "first.log", 20)

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, 30, "the topic to be deleted")
    wait_for(lambda: _recreated(kafka, new_topic, topic), 60, "the topic to be recreated", interval=1.0)
    produce_numbered(kafka.bootstrap, topic, 5)

    archiver = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "second.log").start()
    assert archiver.proc.wait(60) != 0
    assert "deleted and recreated" in archiver.log_text()
    assert len(archive_rows(url, topic, 1)[0]) == 20


def _recreated(kafka, new_topic, topic: str) -> bool:
    try:
        new_topic(partitions=1, name=topic)
        return True
    except Exception as exc:  # the broker may still be finishing the deletion
        if "TOPIC_ALREADY_EXISTS" in str(exc) or "marked for deletion" in str(exc):
            return False
        raise


def test_metrics_endpoint_reports_records_and_lag(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    url = str(tmp_path / "archive")
    produce_numbered(kafka.bootstrap, topic, 300, partitions=2)
    port = free_port()
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, tmp_path / "archiver.log", "--metrics-port", str(port))
    archiver.start()

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    def caught_up() -> bool:
        try:
            text = scrape()
        except OSError:
            return False
        lines = text.splitlines()
        records = [ln for ln in lines if ln.startswith("pyrostore_archived_records_total{")]
        lags = [ln for ln in lines if ln.startswith("pyrostore_lag_records{")]
        total = sum(float(ln.rsplit(" ", 1)[1]) for ln in records)
        return total == 300 and len(lags) == 2 and all(ln.endswith(" 0.0") for ln in lags)

    try:
        wait_for(caught_up, 60, "metrics to show 300 archived records and zero lag")
        text = scrape()
        assert f'pyrostore_archived_segments_total{{partition="0",topic="{topic}"}}' in text
        assert "pyrostore_commit_seconds_count" in text
    finally:
        assert archiver.stop() == 0
