"""``sync_topic`` over folder archives into a SQLite catalog (both real): what a run adds, what it records,
what readers see, and how files are pruned."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from pyrostore.archive import Archive
from pyrostore.iceberg.plan import STATE_PROPERTY, decode_state
from pyrostore.iceberg.sync import sync_topic, table_state
from pyrostore.iceberg.table import open_table
from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.store import open_store
from tests.helpers import build_partition, make_segment
from tests.iceberg_helpers import archive_table, committed_files, rows_by_partition, summary, table_files, table_rows


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/warehouse")


def test_sync_adds_each_committed_segment_once_and_only_new_ones_later(tmp_path: Path, catalog: SqlCatalog) -> None:
    store = open_store(str(tmp_path / "archive"))
    writers = [build_partition(store, "orders", p, segments=3 + p) for p in range(2)]
    archive = Archive(store)
    table = open_table(catalog, ("kafka", "orders"))

    first = sync_topic(archive, "orders", table)
    assert (first.segments, first.records) == (7, 70)
    assert table_files(table) == committed_files(archive, "orders")
    again = sync_topic(archive, "orders", table)
    assert (again.segments, again.snapshot_id) == (0, None)
    assert len(table.snapshots()) == 1

    # Uploaded but never committed: a crashed writer's leftover. Then more committed segments, and a lost range.
    leftover = make_segment("orders", 0, writers[0].head.next_offset, 10)
    store.put(leftover.key, leftover.data)
    writers[0].append([make_segment("orders", 0, writers[0].head.next_offset, 5)])
    writers[1].record_lost(writers[1].head.next_offset + 3)
    writers[1].append([make_segment("orders", 1, writers[1].head.next_offset, 4)])

    later = sync_topic(archive, "orders", table)
    assert (later.segments, later.records) == (2, 9)
    files = table_files(table)
    assert files == committed_files(archive, "orders")
    assert len(files) == len(set(files)) == 9
    assert store.location(leftover.key) not in files
    assert table_rows(table) == rows_by_partition(archive_table(archive, "orders"))
    assert summary(table.scan().to_arrow()) == summary(archive_table(archive, "orders"))

    # What was synced is recorded by the snapshot that added it, and as a table property.
    snapshot = table.current_snapshot()
    assert snapshot is not None
    recorded = decode_state(snapshot.summary.additional_properties[STATE_PROPERTY], "snapshot")
    assert recorded == table_state(table, "orders") == later.state
    assert recorded.end(0) == writers[0].head.next_offset and recorded.end(1) == writers[1].head.next_offset
    assert decode_state(table.properties[STATE_PROPERTY], "table") == recorded


def test_a_new_table_object_resumes_from_the_recorded_state(tmp_path: Path, catalog: SqlCatalog) -> None:
    store = open_store(str(tmp_path / "archive"))
    writer = build_partition(store, "t", 0, segments=2)
    sync_topic(Archive(store), "t", open_table(catalog, ("ns", "t")))
    writer.append([make_segment("t", 0, writer.head.next_offset, 3)])
    result = sync_topic(Archive(store), "t", open_table(catalog, ("ns", "t")))
    assert result.segments == 1
    assert table_files(catalog.load_table(("ns", "t"))) == committed_files(Archive(store), "t")


def test_partition_and_offset_predicates_prune_files(tmp_path: Path, catalog: SqlCatalog) -> None:
    store = open_store(str(tmp_path / "archive"))
    for p in range(3):
        build_partition(store, "t", p, segments=4)
    table = open_table(catalog, ("ns", "t"))
    sync_topic(Archive(store), "t", table)
    assert len(list(table.scan(row_filter=EqualTo("partition", 1)).plan_files())) == 4
    tasks = list(table.scan(row_filter=And(EqualTo("partition", 2), GreaterThanOrEqual("offset", 35))).plan_files())
    assert len(tasks) == 1
    rows = table.scan(row_filter=And(EqualTo("partition", 2), GreaterThanOrEqual("offset", 35))).to_arrow()
    assert rows.column("offset").to_pylist() == list(range(35, 40))
    assert set(rows.column("partition").to_pylist()) == {2}


HOUR_MS = 3_600_000
DAY_START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_a_one_hour_time_predicate_plans_under_a_tenth_of_a_day_of_segments(
    tmp_path: Path, catalog: SqlCatalog
) -> None:
    store = open_store(str(tmp_path / "archive"))
    writer = PartitionWriter(store, "day", 0)
    writer.claim(0)
    segments, per_segment = 240, 4
    step = 24 * HOUR_MS // (segments * per_segment)  # records evenly over the day
    for s in range(segments):
        rows = [
            (o, DAY_START + o * step, 0, b"k", b"v%d" % o, [], 0) for o in range(s * per_segment, (s + 1) * per_segment)
        ]
        writer.append(
            [encode_segment(records_to_table(rows), topic="day", partition=0, next_offset=(s + 1) * per_segment)]
        )
    table = open_table(catalog, ("ns", "day"))
    assert sync_topic(Archive(store), "day", table).segments == segments

    start = DAY_START + 13 * HOUR_MS
    hour = And(GreaterThanOrEqual("timestamp", start * 1000), LessThan("timestamp", (start + HOUR_MS) * 1000))
    planned = list(table.scan(row_filter=hour).plan_files())
    assert 0 < len(planned) < segments / 10
    got = table.scan(row_filter=hour).to_arrow()
    expected = [o for o in range(segments * per_segment) if start <= DAY_START + o * step < start + HOUR_MS]
    assert sorted(got.column("offset").to_pylist()) == expected


def test_expiring_snapshots_deletes_no_segment_and_keeps_the_sync_state(tmp_path: Path, catalog: SqlCatalog) -> None:
    store = open_store(str(tmp_path / "archive"))
    writer = build_partition(store, "t", 0, segments=2)
    table = open_table(catalog, ("ns", "t"))
    assert table.properties["gc.enabled"] == "false"  # engines that honour it refuse to delete the files
    sync_topic(Archive(store), "t", table)
    first = table.current_snapshot()
    writer.append([make_segment("t", 0, writer.head.next_offset, 3)])
    sync_topic(Archive(store), "t", table)
    assert first is not None
    table.maintenance.expire_snapshots().by_id(first.snapshot_id).commit()

    table = catalog.load_table(("ns", "t"))
    assert [s.snapshot_id for s in table.snapshots()] != [first.snapshot_id]
    assert len(table.snapshots()) == 1
    files = table_files(table)
    assert files == committed_files(Archive(store), "t")
    assert all(Path(f).exists() for f in files)
    assert table_state(table, "t").end(0) == 23
    writer.append([make_segment("t", 0, writer.head.next_offset, 4)])
    assert sync_topic(Archive(store), "t", table).segments == 1
    assert table.scan().to_arrow().num_rows == 27


def test_the_table_property_holds_the_state_once_the_snapshots_carrying_it_are_expired(
    tmp_path: Path, catalog: SqlCatalog
) -> None:
    store = open_store(str(tmp_path / "archive"))
    writer = build_partition(store, "t", 0, segments=2)
    table = open_table(catalog, ("ns", "t"))
    sync_topic(Archive(store), "t", table)
    synced = table.current_snapshot()
    assert synced is not None
    with table.transaction() as transaction, transaction.update_snapshot().fast_append():
        pass  # another writer's snapshot without the property (here, an empty append)
    assert table.current_snapshot() is not None and table.current_snapshot().snapshot_id != synced.snapshot_id
    table.maintenance.expire_snapshots().by_id(synced.snapshot_id).commit()
    table = catalog.load_table(("ns", "t"))
    assert table_state(table, "t").end(0) == 20
    writer.append([make_segment("t", 0, writer.head.next_offset, 3)])
    assert sync_topic(Archive(store), "t", table).segments == 1
    assert table_files(table) == committed_files(Archive(store), "t")
