"""Replay plans: partition selection, clamping, exact record counts at cut segments, lost ranges, emptiness."""

from __future__ import annotations

import re

import pytest

from pyrostore.archive import Archive
from pyrostore.errors import EmptyRange, InvalidReplayOptions, OffsetOutOfRange, TopicNotFound
from pyrostore.index.node import Entry
from pyrostore.replay import ReplayOptions, plan_replay
from pyrostore.replay.plan import clamp_offsets, range_figures, select_partitions
from pyrostore.store import open_store
from tests.replay_helpers import build_archive, numbered_record


def entry(base: int, end: int, records: int, nbytes: int = 1000, lost: bool = False) -> Entry:
    return Entry(base, end, base, end - 1, records, 0 if lost else 1, nbytes, 0, 0, None if lost else "d" * 64)


def test_select_partitions_splits_the_requested_ones_among_workers():
    assert select_partitions([0, 1, 2, 3, 4], None) == [0, 1, 2, 3, 4]
    assert select_partitions([0, 1, 2, 3, 4], [3, 0, 3]) == [0, 3]
    shares = [select_partitions([0, 1, 2, 3, 4], None, i, 2) for i in range(2)]
    assert shares == [[0, 2, 4], [1, 3]]
    assert select_partitions([0, 1], None, 2, 3) == []
    with pytest.raises(InvalidReplayOptions, match="--partitions 7: not archived"):
        select_partitions([0, 1], [1, 7])


def test_clamp_offsets_refuses_a_start_before_the_archive_and_stops_at_its_end():
    assert clamp_offsets(0, 10, 50, None, None) == (10, 50)
    assert clamp_offsets(0, 10, 50, 20, 80) == (20, 50)
    assert clamp_offsets(0, 10, 50, 60, None) == (60, 60)  # empty
    with pytest.raises(OffsetOutOfRange, match="--from-offset 5 is before the archive's start 10"):
        clamp_offsets(0, 10, 50, 5, None)


def test_range_figures_count_whole_entries_from_the_index_and_cut_ones_by_reading():
    entries = [entry(0, 100, 100, 1000), entry(100, 200, 50, 600), entry(200, 300, 100, 1000)]
    cut = {0: 30, 200: 10}
    records, nbytes = range_figures(entries, 70, 210, lambda e: cut[e.base])
    assert (records, nbytes) == (30 + 50 + 10, 300 + 600 + 100)
    with pytest.raises(OffsetOutOfRange, match=re.escape("offsets 100..199 were lost")):
        range_figures([entries[0], entry(100, 200, 0, 0, lost=True)], 0, 200, lambda e: 0)


def test_plan_of_an_archive_with_gaps_and_time_bounds(tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "t", 2, 100, per_segment=30, offsets=lambda p: range(0, 100, 1 + p))
    archive = Archive(open_store(url))

    def plan(**bounds):
        return plan_replay(ReplayOptions(url, "t", "d", "k:1", **bounds), archive)

    whole = plan()
    assert [(r.partition, r.start, r.stop, r.records) for r in whole.ranges] == [(0, 0, 100, 100), (1, 0, 99, 50)]
    assert whole.bytes == sum(e.bytes for p in (0, 1) for e in archive.partition("t", p).segments())
    cut = plan(from_offset=13, to_offset=71)
    assert [(r.start, r.stop, r.records) for r in cut.ranges] == [(13, 71, 58), (13, 71, 29)]
    timed = plan(from_time=numbered_record(13)[1] + 1, to_time=numbered_record(70)[1], partitions=(1,))
    assert [(r.partition, r.start, r.stop, r.records) for r in timed.ranges] == [(1, 14, 70, 28)]
    assert timed.describe()[-1] == f"total: 1 partition(s), 28 records, {timed.bytes} archived bytes -> topic d"


def test_empty_ranges_and_missing_topics_are_errors(tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "t", 2, 50, per_segment=20)
    with pytest.raises(EmptyRange, match="nothing to replay: the range --from-offset 50"):
        plan_replay(ReplayOptions(url, "t", "d", "k:1", from_offset=50))
    with pytest.raises(EmptyRange, match="--from-time"):
        plan_replay(ReplayOptions(url, "t", "d", "k:1", from_time=numbered_record(10_000)[1]))
    with pytest.raises(TopicNotFound):
        plan_replay(ReplayOptions(url, "other", "d", "k:1"))
    # A worker with no partition of its own has an empty share, which is not an error.
    idle = plan_replay(ReplayOptions(url, "t", "d", "k:1", workers=3, worker_index=2))
    assert idle.ranges == () and idle.records == 0
