"""The core store and index suite on every backend: the file store, MinIO (S3) and fake-gcs-server (GCS)."""

from __future__ import annotations

import threading

import pytest

from pyrostore.archive import Archive
from pyrostore.errors import FencedError, IntegrityError
from pyrostore.index.tree import NodeStore
from pyrostore.index.writer import PartitionWriter
from pyrostore.layout import ROOT_PREFIX
from pyrostore.verify import verify_partition
from tests.helpers import build_partition, make_segment, record

TOPIC = "stores"


def test_append_lookup_read_verify(any_store):
    build_partition(any_store, TOPIC, 0, segments=9, per_segment=10, fanout=3)
    writer = PartitionWriter(any_store, TOPIC, 0, fanout=3)
    writer.claim()
    writer.append([make_segment(TOPIC, 0, 90, 10, gap_after=5)])
    writer.record_lost(110)
    writer.append([make_segment(TOPIC, 0, 112, 8)])
    writer.close()

    archive = Archive(any_store)
    assert archive.topics() == [TOPIC]
    reader = archive.partition(TOPIC, 0)
    assert (reader.start_offset, reader.next_offset, reader.commit.records) == (0, 120, 108)
    assert reader.find(102).end == 105 and reader.find(107).lost and reader.find(120) is None
    assert reader.offset_for_time(record(57)[1] - 5) == 57
    assert reader.offset_for_time(record(119)[1] + 1) is None
    assert [r.offset for r in reader.read(95, 114, skip_lost=True)] == [*range(95, 100), 112, 113]
    assert verify_partition(any_store, NodeStore(any_store, TOPIC), TOPIC, 0).ok


def test_racing_writers_on_a_real_store(any_store):
    outcomes: list[str] = []

    def archive(name: str) -> None:
        writer = PartitionWriter(any_store, TOPIC, 0, writer_id=name, fanout=3)
        writer.claim()
        try:
            while writer.head.next_offset < 120:
                writer.append([make_segment(TOPIC, 0, writer.head.next_offset, 10)])
            outcomes.append("done")
        except FencedError:
            outcomes.append("fenced")

    threads = [threading.Thread(target=archive, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "done" in outcomes and len(outcomes) == 3
    reader = Archive(any_store).partition(TOPIC, 0)
    assert [r.offset for r in reader.read()] == list(range(120))
    assert verify_partition(any_store, NodeStore(any_store, TOPIC), TOPIC, 0).ok


@pytest.mark.parametrize("kind", ["data", "index"])
def test_a_flipped_byte_is_caught(any_store, kind):
    build_partition(any_store, TOPIC, 0, segments=2, fanout=3)
    key = next(i.key for i in any_store.list(f"{ROOT_PREFIX}{kind}/"))
    data = any_store.get(key)
    any_store.put(key, data[:-1] + bytes([data[-1] ^ 0x80]))
    report = verify_partition(any_store, NodeStore(any_store, TOPIC), TOPIC, 0)
    assert any(key.rsplit("/", 1)[-1].split("-")[-1].removesuffix(".parquet") in str(p) for p in report.problems)
    with pytest.raises(IntegrityError):
        list(Archive(any_store).partition(TOPIC, 0).read())
