"""The tree index against a plain in-memory model: random appends, gaps, lost ranges, non-monotonic times.

Runs on the file store with a small fanout, so trees grow several levels within a few dozen segments.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrostore.archive import Archive
from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.store import open_store

TOPIC = "model"


@dataclass
class Model:
    """What the archive should say: every archived record and every range's fate."""

    start: int
    next_offset: int
    records: dict[int, int] = field(default_factory=dict)  # offset -> timestamp
    lost: list[tuple[int, int]] = field(default_factory=list)

    def offset_for_time(self, timestamp: int) -> int | None:
        return min((o for o, t in self.records.items() if t >= timestamp), default=None)


# One batch: a list of segments (each a list of (offset gap before it, timestamp)) plus a trailing gap,
# or a lost range of some length.
segment_records = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000)), min_size=1, max_size=6)
batch = st.one_of(
    st.tuples(st.just("segments"), st.lists(st.tuples(segment_records, st.integers(0, 2)), min_size=1, max_size=4)),
    st.tuples(st.just("lost"), st.integers(1, 20)),
)


def _encode(records: list[tuple[int, int]], next_offset: int):
    rows = [(o, t, 0, b"k%d" % o, b"v%d" % o, [], None) for o, t in records]
    return encode_segment(records_to_table(rows), topic=TOPIC, partition=0, next_offset=next_offset)


def _apply(writer: PartitionWriter, model: Model, step) -> None:
    kind, spec = step
    if kind == "lost":
        writer.record_lost(model.next_offset + spec)
        model.lost.append((model.next_offset, model.next_offset + spec))
        model.next_offset += spec
        return
    segments, position = [], model.next_offset
    for records, trailing_gap in spec:
        offsets = []
        for gap, timestamp in records:
            position += gap
            offsets.append((position, timestamp))
            model.records[position] = timestamp
            position += 1
        position += trailing_gap
        segments.append(_encode(offsets, position))
    writer.append(segments)
    model.next_offset = position


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.integers(0, 1000),
    steps=st.lists(batch, min_size=1, max_size=12),
    fanout=st.integers(2, 4),
    probes=st.lists(st.integers(-5, 400), min_size=5, max_size=20),
    times=st.lists(st.integers(-1, 10_001), min_size=3, max_size=10),
)
def test_index_agrees_with_model(start, steps, fanout, probes, times):
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(folder)
        writer = PartitionWriter(store, TOPIC, 0, fanout=fanout)
        writer.claim(start_offset=start)
        model = Model(start=start, next_offset=start)
        for step in steps:
            _apply(writer, model, step)

        reader = Archive(open_store(folder)).partition(TOPIC, 0)  # a fresh reader: nothing cached
        assert (reader.start_offset, reader.next_offset) == (model.start, model.next_offset)
        assert reader.commit.records == len(model.records)

        for probe in (start + p for p in probes):
            entry = reader.find(probe)
            if not model.start <= probe < model.next_offset:
                assert entry is None
                continue
            assert entry.base <= probe < entry.end
            if any(lo <= probe < hi for lo, hi in model.lost):
                assert entry.lost
            else:
                inside = [o for o in model.records if entry.base <= o < entry.end]
                assert (entry.first, entry.last, entry.records) == (min(inside), max(inside), len(inside))

        for timestamp in times:
            assert reader.offset_for_time(timestamp) == model.offset_for_time(timestamp)

        read = [(r.offset, r.timestamp) for r in reader.read(skip_lost=True)]
        assert read == sorted(model.records.items())
        middle = start + (model.next_offset - start) // 2
        tail = [r.offset for r in reader.read(middle, skip_lost=True)]
        assert tail == sorted(o for o in model.records if o >= middle)
