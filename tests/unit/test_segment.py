"""Tests of the segment codec: round trips, determinism, integrity, metadata, ranges, keys and SQL access."""

from __future__ import annotations

import contextlib
import functools
import hashlib

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrostore.errors import FormatError, IntegrityError, PyrostoreError
from pyrostore.segment import (
    HEADER,
    SCHEMA,
    EncodedSegment,
    binary_array,
    decode_segment,
    encode_segment,
    read_segment_metadata,
    records_to_table,
)

DIGEST = "ab" * 32

blobs = st.none() | st.binary(max_size=40)
headers = st.none() | st.lists(
    st.tuples(st.sampled_from(["a", "b", "trace-id", "ü"]) | st.text(max_size=8), blobs), max_size=4
)


@st.composite
def record_lists(draw: st.DrawFn, max_size: int = 40) -> list[tuple]:
    """Records with gapped increasing offsets and arbitrary (non-monotonic, possibly -1) timestamps."""
    base = draw(st.integers(0, 2**62))
    gaps = draw(st.lists(st.integers(1, 1000), min_size=1, max_size=max_size))
    offsets = [base + sum(gaps[:i]) for i in range(len(gaps))]
    return [
        (
            offset,
            draw(st.integers(-1, 2**42)),
            draw(st.sampled_from([-1, 0, 1])),
            draw(blobs),
            draw(blobs),
            draw(headers),
            draw(st.none() | st.integers(0, 2**31 - 1)),
        )
        for offset in offsets
    ]


def rows(table: pa.Table) -> list[tuple]:
    """The table's rows as append tuples (timestamps as ms, headers as lists of pairs)."""
    columns = table.set_column(1, "timestamp", table.column("timestamp").cast(pa.int64())).to_pydict()
    columns["headers"] = [[(h["key"], h["value"]) for h in hs] for hs in columns["headers"]]
    return list(zip(*columns.values(), strict=True))


def expected(records: list[tuple]) -> list[tuple]:
    """What a round trip must give back: the records, with no headers as an empty list."""
    return [(*r[:5], list(r[5] or []), r[6]) for r in records]


def encode(records: list[tuple], **kwargs) -> EncodedSegment:
    kwargs.setdefault("next_offset", records[-1][0] + 1)
    return encode_segment(records_to_table(records), topic="orders", partition=3, **kwargs)


@settings(max_examples=200, deadline=None)
@given(record_lists())
def test_round_trip_keeps_every_field(records: list[tuple]) -> None:
    segment = encode(records)
    table = decode_segment(segment.data, expected_digest=segment.digest, name="s")
    assert table.schema.equals(SCHEMA)
    assert rows(table) == expected(records)


def test_null_and_empty_stay_distinct() -> None:
    records = [
        (0, 1, 0, None, b"", [("h", None), ("h", b"")], None),
        (1, 2, 0, b"", None, [], 0),
    ]
    table = decode_segment(encode(records).data, expected_digest=None, name="s")
    assert table.column("key").to_pylist() == [None, b""]
    assert table.column("value").to_pylist() == [b"", None]
    assert rows(table)[0][5] == [("h", None), ("h", b"")]


def test_large_values_round_trip_across_row_groups() -> None:
    mib = 1024 * 1024
    records = [(i * 2, 1000 + i, 0, b"k", bytes([i]) * mib, None, 1) for i in range(12)]
    segment = encode(records, row_group_bytes=5 * mib)
    assert pq.ParquetFile(pa.BufferReader(segment.data)).metadata.num_row_groups == 3
    assert segment.size == len(segment.data) < mib  # repeated bytes compress
    table = decode_segment(segment.data, expected_digest=segment.digest, name="s")
    assert rows(table) == expected(records)


def test_table_paths_agree_with_and_without_headers() -> None:
    plain = records_to_table([(5, 10, 0, b"key", b"value", None, None), (6, 11, 1, None, None, None, 2)])
    assert plain.column("headers").to_pylist() == [[], []]
    with_headers = records_to_table([(5, 10, 0, b"key", b"value", [], None), (6, 11, 1, None, None, [("a", b"")], 2)])
    assert with_headers.schema.equals(plain.schema)
    assert records_to_table([]).equals(SCHEMA.empty_table())


@given(st.lists(blobs, max_size=50) | st.lists(st.none() | st.binary(min_size=500, max_size=2000), max_size=50))
def test_binary_array_equals_pyarrows_conversion(values: list[bytes | None]) -> None:
    built = binary_array(values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.binary()))


def test_segment_facts() -> None:
    records = [
        (10, 500, 0, None, b"a", None, None),
        (12, -1, -1, None, b"b", None, None),
        (13, 40, 1, None, None, None, 1),
    ]
    segment = encode(records, next_offset=20, isolation_level="read_uncommitted")
    assert (segment.base_offset, segment.last_offset, segment.next_offset) == (10, 13, 20)
    assert (segment.record_count, segment.min_timestamp, segment.max_timestamp) == (3, -1, 500)
    assert segment.digest == hashlib.sha256(segment.data).hexdigest()
    assert segment.key == f"pyrostore/v1/data/topic=orders/partition=3/{10:020d}-{segment.digest}.parquet"
    assert read_segment_metadata(segment.data, "s") == {
        "format": "1",
        "topic": "orders",
        "partition": 3,
        "base_offset": 10,
        "last_offset": 13,
        "next_offset": 20,
        "record_count": 3,
        "min_timestamp": -1,
        "max_timestamp": 500,
        "isolation_level": "read_uncommitted",
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_lists(max_size=60))
def test_encoding_is_deterministic_whatever_the_layout(records: list[tuple]) -> None:
    table = records_to_table(records)
    one = encode_segment(table, topic="t", partition=0, next_offset=records[-1][0] + 1)
    again = encode_segment(table, topic="t", partition=0, next_offset=records[-1][0] + 1)
    batches = encode_segment(table.to_batches(max_chunksize=7), topic="t", partition=0, next_offset=one.next_offset)
    assert one.data == again.data
    assert one.digest == batches.digest
    if len(records) > 1:  # a slice of a bigger table encodes as a table built from the same records
        sliced = encode_segment(table.slice(1), topic="t", partition=0, next_offset=one.next_offset)
        fresh = encode_segment(records_to_table(records[1:]), topic="t", partition=0, next_offset=one.next_offset)
        assert sliced.digest == fresh.digest


def test_digest_mismatch_names_object_and_digests() -> None:
    segment = encode([(0, 0, 0, None, b"x", None, None)])
    with pytest.raises(IntegrityError) as caught:
        decode_segment(segment.data, expected_digest=DIGEST, name="data/topic=orders/x.parquet")
    assert "data/topic=orders/x.parquet" in str(caught.value)
    assert DIGEST in str(caught.value) and segment.digest in str(caught.value)


@pytest.mark.timeout(300)  # pyarrow has hung on corrupted footers: fail rather than wait
def test_every_flipped_byte_is_caught() -> None:
    """With a digest, any flipped byte fails; without one, decoding fails cleanly or not at all."""
    records = [(i, i, 0, b"k%d" % i, b"v" * i, [("h", b"x")] if i % 2 else None, 1) for i in range(20)]
    segment = encode(records)
    for position in range(segment.size):
        data = bytearray(segment.data)
        data[position] ^= 0x40
        corrupt = bytes(data)
        with pytest.raises(IntegrityError):
            decode_segment(corrupt, expected_digest=segment.digest, name="s")
        for offset_from in (None, 5):
            with contextlib.suppress(PyrostoreError):
                decode_segment(corrupt, expected_digest=None, name="s", offset_from=offset_from)
        with contextlib.suppress(PyrostoreError):
            read_segment_metadata(corrupt, "s")


def test_truncated_or_foreign_bytes_raise_integrity_error() -> None:
    segment = encode([(0, 0, 0, None, b"x", None, None)])
    for data in (b"", b"not parquet", segment.data[: segment.size // 2], segment.data[8:]):
        with pytest.raises(IntegrityError, match="segment s"):
            decode_segment(data, expected_digest=None, name="s")
        if data != segment.data[8:]:  # whose footer is intact
            with pytest.raises(IntegrityError):
                read_segment_metadata(data, "s")


def _parquet(metadata: dict[str, str]) -> bytes:
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, SCHEMA) as writer:
        writer.add_key_value_metadata(metadata)
        writer.write_table(records_to_table([(0, 0, 0, None, None, None, None)]))
    return sink.getvalue().to_pybytes()


def test_unknown_format_version_raises_format_error() -> None:
    with pytest.raises(FormatError, match="version '2'"):
        decode_segment(_parquet({"pyrostore.format": "2"}), expected_digest=None, name="s")
    with pytest.raises(FormatError, match="not a Pyrostore segment"):
        read_segment_metadata(_parquet({"other": "1"}), "s")
    with pytest.raises(IntegrityError, match="malformed"):
        read_segment_metadata(_parquet({"pyrostore.format": "1"}), "s")


@settings(max_examples=100, deadline=None)
@given(st.integers(-5, 130) | st.none(), st.integers(-5, 130) | st.none(), st.booleans(), st.booleans())
def test_offset_range_reads(offset_from: int | None, offset_to: int | None, with_offset: bool, verify: bool) -> None:
    """Verified reads push the range down to pyarrow, unverified ones filter after decoding: same rows."""
    segment = _ranged_segment()
    columns = ["offset", "value"] if with_offset else ["value"]
    table = decode_segment(
        segment.data,
        expected_digest=segment.digest if verify else None,
        name="s",
        columns=columns,
        offset_from=offset_from,
        offset_to=offset_to,
    )
    wanted = [
        o
        for o in range(0, 120, 2)
        if (offset_from is None or o >= offset_from) and (offset_to is None or o < offset_to)
    ]
    assert table.column_names == columns
    assert table.column("value").to_pylist() == [b"%d" % o * 300 for o in wanted]
    if with_offset:
        assert table.column("offset").to_pylist() == wanted


@functools.cache
def _ranged_segment() -> EncodedSegment:
    """60 records at even offsets in 10 row groups, encoded once."""
    records = [(o, o, 0, None, b"%d" % o * 300, None, None) for o in range(0, 120, 2)]
    return encode(records, row_group_bytes=4000)


def test_range_reads_skip_row_groups() -> None:
    """A verified range read never decodes row groups outside the range: garbage in the first goes unseen."""
    segment = _ranged_segment()
    metadata = pq.ParquetFile(pa.BufferReader(segment.data)).metadata
    assert metadata.num_row_groups == 10
    values = metadata.row_group(0).column(SCHEMA.get_field_index("value"))
    end = values.data_page_offset + values.total_compressed_size
    data = bytearray(segment.data)
    data[end - values.total_compressed_size // 2 : end] = bytes(values.total_compressed_size // 2)
    digest = hashlib.sha256(data).hexdigest()
    table = decode_segment(bytes(data), expected_digest=digest, name="s", offset_from=100)
    assert table.column("offset").to_pylist() == list(range(100, 120, 2))
    with pytest.raises(IntegrityError, match="cannot decode"):
        decode_segment(bytes(data), expected_digest=digest, name="s")


def test_unknown_column_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="partition"):
        decode_segment(_ranged_segment().data, expected_digest=None, name="s", columns=["partition"])


def _with_column(name: str, array: pa.Array) -> pa.Table:
    table = records_to_table([(1, 0, 0, None, None, None, None), (2, 0, 0, None, None, None, None)])
    return table.set_column(SCHEMA.get_field_index(name), SCHEMA.field(name), array)


@pytest.mark.parametrize(
    ("records", "kwargs", "message"),
    [
        (SCHEMA.empty_table(), {}, "at least one record"),
        ([], {}, "at least one record"),
        (
            records_to_table([(3, 0, 0, None, None, None, None), (3, 0, 0, None, None, None, None)]),
            {},
            "offset 3 at row 1 follows 3",
        ),
        (
            records_to_table([(3, 0, 0, None, None, None, None), (2, 0, 0, None, None, None, None)]),
            {},
            "strictly increasing",
        ),
        (records_to_table([(-1, 0, 0, None, None, None, None)]), {}, "negative"),
        (records_to_table([(1, 0, 0, None, None, None, None)]), {"next_offset": 1}, "next offset 1"),
        (records_to_table([(1, 0, 2, None, None, None, None)]), {}, "timestamp types"),
        (
            records_to_table([(1, 0, 0, None, None, None, None)]),
            {"isolation_level": "dirty"},
            "isolation level",
        ),
        (records_to_table([(1, 0, 0, None, None, None, None)]), {"topic": "a b"}, "topic"),
        (_with_column("offset", pa.array([1, None], pa.int64())), {}, "'offset' holds 1 nulls"),
        (
            _with_column("headers", pa.array([[("k", b"")], [None]], SCHEMA.field("headers").type)),
            {},
            "null entry",
        ),
        (records_to_table([(1, 0, 0, None, None, None, None)]).drop_columns(["leader_epoch"]), {}, "schema"),
    ],
)
def test_invalid_input_is_a_value_error(records: pa.Table, kwargs: dict, message: str) -> None:
    arguments = {"topic": "t", "partition": 0, "next_offset": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        encode_segment(records, **arguments)


def test_compatible_schema_is_cast() -> None:
    """A table whose headers list has nullable entries (pyarrow's default) is accepted."""
    loose = pa.schema(
        [f if f.name != "headers" else pa.field("headers", pa.list_(HEADER), nullable=False) for f in SCHEMA]
    )
    columns = {"offset": [1], "timestamp": [0], "timestamp_type": [0], "key": [b"k"], "value": [None]}
    headers = [[{"key": "a", "value": b"b"}]]
    table = pa.table({**columns, "headers": headers, "leader_epoch": [None]}, schema=loose)
    segment = encode_segment(table, topic="t", partition=0, next_offset=2)
    decoded = decode_segment(segment.data, expected_digest=segment.digest, name="s")
    assert decoded.column("headers").to_pylist() == headers


def test_duckdb_reads_the_same_rows(tmp_path) -> None:
    records = [
        (7, 1_700_000_000_000, 0, b"k1", b'{"a": 1}', [("h", b"1"), ("h", None)], 3),
        (9, 1_699_999_999_000, 1, None, None, None, None),
        (12, -1, -1, b"", b"", [("x", b"")], 4),
    ]
    path = tmp_path / "segment.parquet"
    path.write_bytes(encode(records, next_offset=20).data)
    got = duckdb.sql(
        'select "offset", epoch_ms("timestamp"), timestamp_type, key, value,'
        " [(h.key, h.value) for h in headers], leader_epoch"
        f" from read_parquet('{path}') order by \"offset\""
    ).fetchall()
    assert got == expected(records)
    footer = duckdb.sql(f"select key::varchar, value::varchar from parquet_kv_metadata('{path}')").fetchall()
    assert ("pyrostore.next_offset", "20") in footer
