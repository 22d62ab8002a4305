"""The built-batch cache: one build per segment, read-ahead of the segments after the one served, bounded."""

from __future__ import annotations

import threading
import time

import pytest

from pyrostore.errors import IntegrityError
from pyrostore.index.node import Entry
from pyrostore.segment import records_to_table
from pyrostore.serve.cache import BATCH_OVERHEAD, SEGMENT_OVERHEAD, BatchCache
from pyrostore.serve.config import Compression

PER_SEGMENT = 10


def entry(index: int, digest: str | None = "d") -> Entry:
    base = index * PER_SEGMENT
    last = base + PER_SEGMENT - 1
    return Entry(base, last + 1, base, last, PER_SEGMENT, 1, 100, 0, 0, None if digest is None else f"{digest}{index}")


class Reader:
    """A partition of ``count`` segments of PER_SEGMENT records that counts its segment reads."""

    def __init__(self, count: int, broken: frozenset[int] = frozenset(), lost: frozenset[int] = frozenset()) -> None:
        self.entries = [entry(i, None if i in lost else "d") for i in range(count)]
        self.broken = broken
        self.reads: list[int] = []
        self.held = -1  # reading this segment waits until released
        self.released = threading.Event()

    def segments(self, start: int | None = None, stop: int | None = None):
        return (e for e in self.entries if e.end > (start or 0))

    def read_segment(self, item: Entry):
        index = item.base // PER_SEGMENT
        self.reads.append(index)
        if index == self.held:
            assert self.released.wait(10)
        if index in self.broken:
            raise IntegrityError(f"segment {index} is broken")
        rows = [(o, 1_000 + o, 0, b"k", b"v%d" % o, [], 0) for o in range(item.base, item.end)]
        return records_to_table(rows)


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_serving_a_segment_builds_the_next_ones_ahead_once():
    reader = Reader(6)
    cache = BatchCache(2**20, 100, Compression.NONE, read_ahead=2)
    first = cache.batches(reader, reader.entries[0])
    assert first.batches[0].base == 0 and first.batches[-1].end == PER_SEGMENT
    wait_for(lambda: sorted(reader.reads) == [0, 1, 2])
    for index in (1, 2, 3):
        assert cache.batches(reader, reader.entries[index]).entry == reader.entries[index]
    wait_for(lambda: sorted(reader.reads) == [0, 1, 2, 3, 4, 5])
    cache.batches(reader, reader.entries[0])  # cached: no read
    assert sorted(reader.reads) == [0, 1, 2, 3, 4, 5]


def test_a_fetch_waits_for_the_segment_being_built_ahead():
    reader = Reader(3)
    reader.held = 1
    cache = BatchCache(2**20, 100, Compression.NONE, read_ahead=1)
    cache.batches(reader, reader.entries[0])
    wait_for(lambda: 1 in reader.reads)  # being built ahead, held
    got = []
    waiter = threading.Thread(target=lambda: got.append(cache.batches(reader, reader.entries[1])))
    waiter.start()
    time.sleep(0.1)
    assert not got
    reader.released.set()
    waiter.join(10)
    assert got[0].entry == reader.entries[1]
    assert reader.reads.count(1) == 1


def test_a_segment_that_fails_ahead_fails_the_fetch_that_wants_it():
    reader = Reader(3, broken=frozenset({1}))
    cache = BatchCache(2**20, 100, Compression.NONE, read_ahead=1)
    cache.batches(reader, reader.entries[0])
    wait_for(lambda: 1 in reader.reads and not cache._building)
    with pytest.raises(IntegrityError):
        cache.batches(reader, reader.entries[1])


def test_read_ahead_stops_at_a_lost_range_and_at_the_end():
    reader = Reader(4, lost=frozenset({2}))
    cache = BatchCache(2**20, 100, Compression.NONE, read_ahead=3)
    cache.batches(reader, reader.entries[0])
    time.sleep(0.2)
    wait_for(lambda: not cache._building)
    assert sorted(reader.reads) == [0, 1]
    with pytest.raises(ValueError, match="lost range"):
        cache.batches(reader, reader.entries[2])


def test_read_ahead_keeps_to_about_half_the_cache():
    built = BatchCache(2**20, 10**6, Compression.NONE, read_ahead=0).batches(Reader(1), entry(0)).size
    reader = Reader(20)
    cache = BatchCache(built * 5, 10**6, Compression.NONE, read_ahead=10)
    cache.batches(reader, reader.entries[0])
    time.sleep(0.2)
    wait_for(lambda: not cache._building)
    # Ahead (built or under way) while that stays under half of the cache: three segments of five.
    assert sorted(reader.reads) == [0, 1, 2, 3]
    cache.batches(reader, reader.entries[1])  # served: room for one more
    wait_for(lambda: not cache._building and len(reader.reads) == 5)
    assert sorted(reader.reads) == [0, 1, 2, 3, 4]


def test_without_read_ahead_nothing_is_built_unasked():
    reader = Reader(3)
    cache = BatchCache(2**20, 100, Compression.NONE, read_ahead=0)
    cache.batches(reader, reader.entries[0])
    time.sleep(0.1)
    assert reader.reads == [0]


def test_many_small_segments_are_bounded_by_what_they_cost_not_by_their_bytes_alone():
    reader = Reader(100)
    cache = BatchCache(16 * 1024, 10**6, Compression.NONE, read_ahead=0)
    for item in reader.entries:
        last = cache.batches(reader, item)
    data = sum(len(b.data) for b in last.batches)
    assert last.size == SEGMENT_OVERHEAD + len(last.batches) * BATCH_OVERHEAD + data
    # Served again newest first: those still kept come without a read, until the first one that was dropped.
    reader.reads.clear()
    kept = 0
    for item in reversed(reader.entries):
        cache.batches(reader, item)
        if reader.reads:
            break
        kept += 1
    assert kept == 16 * 1024 // last.size < 16 * 1024 // data
