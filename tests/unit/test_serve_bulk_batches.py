"""Batches encoded column-wise (pyrostore.serve.records) are byte for byte those aiokafka's builder makes record by
record, whatever the records: null and empty keys and values, headers, gaps, both timestamp types, epochs."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.compute as pc
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrostore.archive import batch_columns
from pyrostore.segment import records_to_table
from pyrostore.serve.batches import MAX_DELTA, Batch, build_batch, cut_batches, record_size, segment_batches
from pyrostore.serve.config import Compression
from pyrostore.serve.records import varints, zigzag


def reference_batches(table: pa.Table, base: int, end: int, target: int, compression: Compression) -> list[Batch]:
    """Record by record with aiokafka's builder: what segment_batches did before it encoded column-wise."""
    columns: list[list] = [[] for _ in range(7)]
    for part in table.to_batches():
        for column, values in zip(columns, batch_columns(part), strict=True):
            column.extend(values)
    offsets, timestamps, types, keys, values, headers, epochs = columns
    sizes = [record_size(k, v, h) for k, v, h in zip(keys, values, headers, strict=True)]
    batches = []
    for cut in cut_batches(offsets, sizes, types, epochs, timestamps, base, end, target):
        kind, epoch = types[cut.first_row], epochs[cut.first_row]
        data = build_batch(cut, offsets, timestamps, keys, values, headers, kind, epoch, compression)
        batches.append(Batch(cut.base, cut.end, data))
    return batches


blobs = st.one_of(st.none(), st.binary(max_size=300))
known_stamps = st.integers(0, 2**42)
header_lists = st.lists(st.tuples(st.text(max_size=5), blobs), max_size=3)


@st.composite
def segments(draw, stamps=known_stamps):
    """A segment's rows (offsets with gaps, sometimes wider than int32 deltas) and its [base, end)."""
    count = draw(st.integers(1, 60))
    base = draw(st.integers(0, 2**40))
    offset = base + draw(st.integers(0, 3))
    with_headers = draw(st.booleans())
    rows = []
    for _ in range(count):
        rows.append(
            (
                offset,
                draw(stamps),
                draw(st.sampled_from([0, 0, 1, -1])),
                draw(blobs),
                draw(blobs),
                draw(header_lists) if with_headers else [],
                draw(st.sampled_from([None, 0, 0, 5])),
            )
        )
        offset += draw(st.one_of(st.integers(1, 3), st.just(1), st.just(MAX_DELTA + 2)))
    end = offset + draw(st.integers(0, 4))
    return rows, base, end


@settings(max_examples=300, deadline=None)
@given(segments(), st.integers(1, 3000))
def test_column_wise_batches_are_the_builders_bytes(segment, target):
    rows, base, end = segment
    table = records_to_table(rows)
    expected = reference_batches(table, base, end, target, Compression.NONE)
    assert segment_batches(table, base, end, target) == expected


def test_a_batch_may_start_with_a_record_without_timestamp():
    # aiokafka's builder takes a first timestamp of -1 for "none yet" and gives that record the next one's: the
    # column-wise encoding keeps -1 (the batch's first timestamp is -1, the maximum the largest).
    rows = [(0, -1, 0, b"k", b"v", [], 0), (1, 5_000, 0, b"k", b"v", [], 0), (2, -1, 0, b"k", b"v", [], 0)]
    (batch,) = segment_batches(records_to_table(rows), 0, 3, 2**20)
    parsed = DefaultRecordBatch(batch.data)
    assert parsed.validate_crc() and parsed.max_timestamp == 5_000
    assert [r.timestamp for r in parsed] == [-1, 5_000, -1]


@settings(max_examples=50, deadline=None)
@given(segments(st.one_of(st.just(-1), st.integers(0, 2**42))), st.integers(1, 3000))
def test_gzip_batches_hold_the_same_records(segment, target):
    rows, base, end = segment
    table = records_to_table(rows)
    expected = reference_batches(table, base, end, target, Compression.GZIP)
    got = segment_batches(table, base, end, target, Compression.GZIP)
    assert [(b.base, b.end) for b in got] == [(b.base, b.end) for b in expected]
    for ours, theirs in zip(got, expected, strict=True):
        mine, reference = DefaultRecordBatch(ours.data), DefaultRecordBatch(theirs.data)
        assert mine.validate_crc()
        assert mine.compression_type == reference.compression_type == 1
        assert [(r.offset, r.key, r.value, r.headers) for r in mine] == [
            (r.offset, r.key, r.value, r.headers) for r in reference
        ]
    assert [r.timestamp for b in got for r in DefaultRecordBatch(b.data)] == [row[1] for row in rows]


def test_segments_of_several_chunks():
    rows = [(o, 1_000 + o, 0, b"k%d" % o, b"v" * 40, [], 1) for o in range(40)]
    table = pa.concat_tables([records_to_table(rows[:15]), records_to_table(rows[15:])])
    assert table.column("value").num_chunks == 2
    assert segment_batches(table, 0, 40, 300) == reference_batches(table, 0, 40, 300, Compression.NONE)


@given(st.lists(st.integers(-(2**62), 2**62 - 1), max_size=50))
def test_varints_are_kafkas(numbers):
    encoded = varints(pa.array(numbers, pa.int64()))
    separator = pa.scalar(b"", pa.large_binary())
    joined = pc.binary_join_element_wise(*encoded.pieces, separator, null_handling="skip").to_pylist()
    assert joined == [_varint(n) for n in numbers]
    sizes = encoded.sizes
    assert [len(j) for j in joined] == ([sizes] * len(numbers) if isinstance(sizes, int) else sizes.to_pylist())
    assert zigzag(pa.array(numbers, pa.int64())).to_pylist() == [(n << 1) ^ (n >> 63) for n in numbers]


def _varint(number: int) -> bytes:
    value = (number << 1) ^ (number >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_gzip_is_gzip():
    rows = [(o, 1_000, 0, None, b"repetitive " * 50, [], None) for o in range(10)]
    (batch,) = segment_batches(records_to_table(rows), 0, 10, 2**20, Compression.GZIP)
    assert gzip.decompress(batch.data[61:])  # the records after the 61-byte header
