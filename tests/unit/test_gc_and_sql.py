"""gc removes exactly the old unreferenced objects; SQL engines see exactly the committed segments."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest

from pyrostore.archive import Archive
from pyrostore.errors import IntegrityError
from pyrostore.gc import collect_garbage
from pyrostore.index import tree
from pyrostore.layout import ROOT_PREFIX, node_key, segment_key
from pyrostore.sql import connect, run_query, segment_urls
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.helpers import build_partition, make_segment

TOPIC = "gc-topic"


def _age(store_root, key: str, seconds: float) -> None:
    path = os.path.join(store_root, key)
    past = time.time() - seconds
    os.utime(path, (past, past))


def _leave_crash_leftovers(store, partition: int, start: int) -> list[str]:
    """Upload what a writer uploads before its commit (a segment, its tree path), then 'crash'."""
    writer_nodes = tree.NodeStore(store, TOPIC)
    reader = Archive(store).partition(TOPIC, partition)
    segment = make_segment(TOPIC, partition, start, 5)
    key = segment_key(TOPIC, partition, segment.base_offset, segment.digest)
    store.put(key, segment.data)
    before = {i.key for i in store.list(f"{ROOT_PREFIX}index/")}
    from pyrostore.index.node import Entry

    entry = Entry(start, start + 5, start, start + 4, 5, 1, segment.size, 0, 0, segment.digest)
    tree.append(writer_nodes, reader.commit.root, [entry], fanout=4)
    after = {i.key for i in store.list(f"{ROOT_PREFIX}index/")}
    return [key, *sorted(after - before)]


def test_gc_removes_old_leftovers_and_nothing_else(tmp_path):
    root = str(tmp_path / "archive")
    store = open_store(root)
    build_partition(store, TOPIC, 0, segments=6)
    live = build_partition(store, TOPIC, 1, segments=3)
    crashed = _leave_crash_leftovers(store, 0, start=60)
    everything_old = [i.key for i in store.list(ROOT_PREFIX)]
    for key in everything_old:
        _age(root, key, 3 * 3600)

    # A live writer has uploaded a segment and not committed it yet (a fresh object).
    in_flight = make_segment(TOPIC, 1, 30, 10)
    in_flight_key = segment_key(TOPIC, 1, in_flight.base_offset, in_flight.digest)
    store.put(in_flight_key, in_flight.data)

    report = collect_garbage(Archive(store), grace=timedelta(hours=1))
    assert sorted(report.deleted) == sorted(crashed)
    assert report.kept_young == [in_flight_key]
    assert {i.key for i in store.list(ROOT_PREFIX)} == (set(everything_old) - set(crashed)) | {in_flight_key}

    live.append([in_flight])  # the live writer commits; nothing it needs was removed
    for partition in (0, 1):
        assert verify_partition(store, tree.NodeStore(store, TOPIC), TOPIC, partition).ok
    assert Archive(store).partition(TOPIC, 1).next_offset == 40
    assert collect_garbage(Archive(store), grace=timedelta(0)).deleted == []


def test_gc_deletes_nothing_when_a_referenced_node_is_unreadable(tmp_path):
    root = str(tmp_path / "archive")
    store = open_store(root)
    build_partition(store, TOPIC, 0, segments=6)
    crashed = _leave_crash_leftovers(store, 0, start=60)
    for info in store.list(ROOT_PREFIX):
        _age(root, info.key, 3 * 3600)
    head = Archive(store).partition(TOPIC, 0).commit.root
    store.delete(node_key(TOPIC, head.digest))
    before = {i.key for i in store.list(ROOT_PREFIX)}

    with pytest.raises(IntegrityError, match="missing"):
        collect_garbage(Archive(store), grace=timedelta(0))
    assert {i.key for i in store.list(ROOT_PREFIX)} == before
    assert set(crashed) <= before


def test_duckdb_reads_exactly_the_committed_segments(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    build_partition(store, TOPIC, 0, segments=4)
    build_partition(store, TOPIC, 1, segments=2)
    _leave_crash_leftovers(store, 0, start=40)  # an uncommitted segment sits in the data folder
    archive = Archive(store)

    connection = connect(archive, {})
    rows = connection.execute(f'SELECT topic, "partition", "offset", value FROM "{TOPIC}" ORDER BY 2, 3').fetchall()
    expected = [(TOPIC, p, r.offset, r.value) for p in (0, 1) for r in archive.partition(TOPIC, p).read()]
    assert [(t, int(p), o, v) for t, p, o, v in rows] == expected
    assert len(rows) == 60


def test_segment_urls_are_paths_duckdb_reads_in_an_oddly_named_folder(tmp_path):
    folder = tmp_path / "my archive #1 %20"  # characters a file:// URL percent-encodes
    store = open_store(str(folder))
    build_partition(store, TOPIC, 0, segments=2)
    archive = Archive(store)

    paths = segment_urls(archive, TOPIC)
    assert len(paths) == 2
    assert all(path.startswith(f"{folder}/") and os.path.isfile(path) for path in paths)
    result = run_query(connect(archive, {}), f'SELECT count(*) AS n FROM "{TOPIC}"')
    assert result.column("n").to_pylist() == [20]
