"""Record batches built from segments: cuts that tile offsets, and every record field kept byte for byte."""

from __future__ import annotations

import itertools

from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given
from hypothesis import strategies as st

from pyrostore.segment import records_to_table
from pyrostore.serve.batches import MAX_DELTA, Cut, build_batch, cut_batches, record_size, segment_batches
from pyrostore.serve.config import Compression
from pyrostore.serve.decisions import first_batch

CREATE, LOG_APPEND = 0, 1


def parse(data: bytes) -> list[DefaultRecordBatch]:
    """Every batch in ``data``, CRC checked."""
    batches = []
    position = 0
    while position < len(data):
        length = int.from_bytes(data[position + 8 : position + 12], "big") + 12
        batch = DefaultRecordBatch(data[position : position + length])
        assert batch.validate_crc()
        batches.append(batch)
        position += length
    return batches


def records(batch: DefaultRecordBatch) -> list[tuple]:
    return [(r.offset, r.timestamp, r.timestamp_type, r.key, r.value, r.headers) for r in batch]


@st.composite
def segments(draw):
    """Records of a segment: offsets with gaps, sizes, kinds, epochs and timestamps; and its [base, end)."""
    count = draw(st.integers(0, 40))
    gaps = draw(st.lists(st.integers(1, 5), min_size=count, max_size=count))
    base = draw(st.integers(0, 100))
    offsets, offset = [], base + draw(st.integers(0, 3))
    for gap in gaps:
        offsets.append(offset)
        offset += gap
    sizes = draw(st.lists(st.integers(21, 300), min_size=count, max_size=count))
    kinds = draw(st.lists(st.sampled_from([CREATE, LOG_APPEND]), min_size=count, max_size=count))
    epochs = draw(st.lists(st.sampled_from([None, 0, 1]), min_size=count, max_size=count))
    stamps = draw(st.lists(st.integers(0, 3), min_size=count, max_size=count))
    end = (offsets[-1] + 1 if offsets else base) + draw(st.integers(0, 4))
    return offsets, sizes, kinds, epochs, stamps, base, end


@given(segments(), st.integers(1, 1000))
def test_cuts_tile_the_segment_and_keep_each_batch_uniform(segment, target):
    offsets, sizes, kinds, epochs, stamps, base, end = segment
    cuts = cut_batches(offsets, sizes, kinds, epochs, stamps, base, end, target)
    if not offsets:
        assert cuts == []
        return
    assert cuts[0].base == base and cuts[-1].end == end
    assert all(a.end == b.base for a, b in itertools.pairwise(cuts))
    assert [row for c in cuts for row in range(c.first_row, c.stop_row)] == list(range(len(offsets)))
    for cut in cuts:
        rows = range(cut.first_row, cut.stop_row)
        assert all(cut.base <= offsets[r] < cut.end for r in rows)
        assert offsets[cut.stop_row - 1] + 1 == cut.end or cut is cuts[-1]
        assert len({kinds[r] for r in rows}) == 1 and len({epochs[r] for r in rows}) == 1
        if kinds[cut.first_row] == LOG_APPEND:
            assert len({stamps[r] for r in rows}) == 1  # clients give every record the batch's max timestamp
        assert len(rows) == 1 or sum(sizes[r] for r in rows) <= target


def test_offsets_beyond_int32_deltas_start_a_new_batch():
    offsets = [0, 1, MAX_DELTA + 5]
    cuts = cut_batches(offsets, [30] * 3, [0] * 3, [0] * 3, [0] * 3, 0, MAX_DELTA + 10, 10**9)
    assert [(c.first_row, c.stop_row) for c in cuts] == [(0, 2), (2, 3)]
    assert cuts[0] == Cut(0, 2, 0, 2)
    # The second batch starts where its last record is still within int32 deltas of it: offsets 2..4 lie
    # between batches, and a fetch there gets the next batch; the trailing gap is clamped the same way.
    assert cuts[1] == Cut(5, MAX_DELTA + 6, 2, 3)
    assert first_batch([c.end for c in cuts], 3) == 1


def test_a_batch_keeps_every_field():
    offsets = [10, 11, 14, 15]
    stamps = [1_000, 900, -1, 1_100]  # not monotonic; -1 is "no timestamp"
    keys = [None, b"", b"k", bytes(range(256))]
    values = [b"", None, b"v" * 1000, b"\x00"]
    headers = [[], [("h", b"1"), ("h", None), ("other", b""), ("h", b"\x00\xff")], [("", None)], [("\u00e9", b"x")]]
    data = build_batch(Cut(8, 20, 0, 4), offsets, stamps, keys, values, headers, CREATE, 7)
    (batch,) = parse(data)
    assert batch.base_offset == 8
    assert batch.next_offset == 20  # lastOffsetDelta reaches the cut's end: clients continue at 20
    assert batch.timestamp_type == 0 and not batch.is_transactional and batch.producer_id == -1
    assert int.from_bytes(data[12:16], "big", signed=True) == 7  # partition leader epoch
    expected = [(o, t, 0, k, v, h) for o, t, k, v, h in zip(offsets, stamps, keys, values, headers, strict=True)]
    assert records(batch) == expected


def test_log_append_time_and_a_missing_leader_epoch():
    data = build_batch(Cut(0, 2, 0, 2), [0, 1], [5_000, 5_000], [b"a", b"b"], [b"1", b"2"], [[], []], LOG_APPEND, None)
    (batch,) = parse(data)
    assert batch.timestamp_type == 1 and batch.max_timestamp == 5_000
    assert [r.timestamp for r in batch] == [5_000, 5_000]
    assert int.from_bytes(data[12:16], "big", signed=True) == -1


def test_gzip_batches_read_back_the_same():
    values = [b"repetitive " * 100] * 20
    args = (list(range(20)), [1] * 20, [None] * 20, values, [[]] * 20, CREATE, 0)
    plain = build_batch(Cut(0, 20, 0, 20), *args)
    packed = build_batch(Cut(0, 20, 0, 20), *args, compression=Compression.GZIP)
    assert len(packed) < len(plain) / 5
    assert records(parse(packed)[0]) == records(parse(plain)[0])


def test_segment_batches_from_a_segment_table():
    rows = [
        (o, 1_000 + o, 1 if o >= 20 else 0, b"k%d" % o, None if o % 7 == 0 else b"v" * 50, [("n", b"%d" % o)], 3)
        for o in range(0, 30, 2)  # even offsets only: a gap after each record
    ]
    table = records_to_table(rows)
    batches = segment_batches(table, 0, 31, target_bytes=200)
    assert batches[0].base == 0 and batches[-1].end == 31
    assert all(a.end == b.base for a, b in itertools.pairwise(batches))
    parsed = [p for b in batches for p in parse(b.data)]
    assert len(parsed) == len(batches) > 3
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for p in parsed for r in p]
    assert got == [(o, t, k, v, h) for o, t, _, k, v, h, _ in rows]
    assert {p.timestamp_type for p in parsed if p.base_offset >= 20} == {1}
    assert all(record_size(k, v, h) >= 21 for _, _, _, k, v, h, _ in rows)
