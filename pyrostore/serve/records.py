"""Kafka v2 records (the part of a record batch after its header) encoded from Arrow columns in bulk.

Encoding record by record in Python (even through aiokafka's C builder) costs microseconds a record, more than
everything else a served record costs. Here every record of a segment is encoded at once with Arrow compute
kernels: each varint becomes a few one-byte binary columns (null where the varint is shorter), and one
``binary_join_element_wise`` writes each record's varints, key, value and headers, in order, into one buffer:
the records of the whole segment back to back, which batches then slice.

A record (KIP-98): ``length`` varint, attributes (one zero byte), ``timestampDelta`` varlong, ``offsetDelta``
varint, key length varint (-1: null) and key, value length varint and value, header count varint, and per header
its key's length and UTF-8 bytes and its value's length (-1: null) and bytes. Varints are zigzag encoded, seven
bits a byte, low bits first, the high bit set on every byte but the last.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

_NO_HEADERS = pa.scalar(b"\x00", pa.large_binary())  # a header count of zero
_ATTRIBUTES = pa.scalar(b"\x00", pa.large_binary())
_EMPTY = pa.scalar(b"", pa.large_binary())
_LOW_BITS = pa.scalar(0x7F, pa.uint64())
_MORE_BIT = pa.scalar(0x80, pa.uint64())
_SEVEN = pa.scalar(7, pa.uint64())
_ranges_lock = threading.Lock()
_ranges = pa.array(range(1), pa.int64()).buffers()[1]


@dataclass(frozen=True)
class Varints:
    """Varints of a column of integers: one-byte binary columns in order (null where a value's varint is
    shorter) and each value's varint size in bytes (an int when every size is the same)."""

    pieces: list[pa.Array]
    sizes: pa.Array | int


@dataclass(frozen=True)
class Records:
    """Encoded records, back to back in ``data``; record ``i`` is ``data[ends[i - 1]:ends[i]]``
    (``ends[-1]`` is 0)."""

    data: pa.Buffer
    ends: pa.Array  # int64, one per record: where it ends in data

    def span(self, first: int, stop: int) -> tuple[int, int]:
        """Where the records ``[first, stop)`` lie in ``data``."""
        start = self.ends[first - 1].as_py() if first > 0 else 0
        return start, self.ends[stop - 1].as_py() if stop > first else start


def _counting(length: int) -> pa.Buffer:
    """An int64 buffer holding at least ``0, 1, ..., length``: the offsets of one-byte binary values."""
    global _ranges
    with _ranges_lock:
        if _ranges.size < (length + 1) * 8:
            _ranges = pa.array(range(max(length + 1, _ranges.size // 4)), pa.int64()).buffers()[1]
        return _ranges


def zigzag(values: pa.Array) -> pa.Array:
    """Signed int64 values (above -2**62, below 2**62) zigzag-encoded as uint64 (0, -1, 1, -2, ... become 0, 1,
    2, 3, ...)."""
    values = values.cast(pa.int64())
    # The sign as 0 or -1: Arrow's shift_right leaves int64 values unchanged when shifting by 63.
    sign = pc.shift_right(values, 62)
    return pc.bit_wise_xor(pc.shift_left(values, 1), sign).cast(pa.uint64(), safe=False)


def varints(values: pa.Array) -> Varints:
    """The varints of ``values`` (int64 without nulls, zigzag encoded as Kafka's varint and varlong).

    Byte ``k`` of every varint is computed at once, for as many bytes as the largest value needs; the one-byte
    columns share one offsets buffer and take their validity from "more bytes follow" of the byte before
    (kernel results, so never sliced)."""
    encoded = zigzag(values)
    length = len(encoded)
    largest = pc.max(encoded).as_py() if length else 0
    count = max(1, ((largest or 0).bit_length() + 6) // 7)
    offsets = _counting(length)
    pieces: list[pa.Array] = []
    sizes: pa.Array | int = 1
    present: pa.Array | None = None  # whether byte k belongs to the varint: byte k - 1 said "more"
    rest = encoded
    for k in range(count):
        low = pc.bit_wise_and(rest, _LOW_BITS)
        more = None
        if k < count - 1:
            more = pc.greater(rest, _LOW_BITS)
            low = pc.bit_wise_or(low, pc.multiply(more.cast(pa.uint64()), _MORE_BIT))
        validity = None if present is None else present.buffers()[1]
        pieces.append(
            pa.Array.from_buffers(pa.large_binary(), length, [validity, offsets, low.cast(pa.uint8()).buffers()[1]])
        )
        if present is not None:
            sizes = pc.add(sizes, present.cast(pa.int64()))
        if more is not None:
            present = more
            rest = pc.shift_right(rest, _SEVEN)
    return Varints(pieces, sizes)


def _lengths(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A binary column's lengths for its length varints (-1 for null) and its byte counts (0 for null)."""
    lengths = pc.binary_length(column).cast(pa.int64())
    if column.null_count:
        return lengths.fill_null(-1), lengths.fill_null(0)
    return lengths, lengths


def header_bytes(headers: pa.ListArray) -> tuple[pa.Array | pa.Scalar, pa.Array | int]:
    """Each record's header count and headers, encoded, and their sizes; ``(b"\\x00", 1)`` for every record when
    no record has a header (no per-record work)."""
    offsets = headers.offsets
    if len(headers) == 0 or offsets[0].as_py() == offsets[-1].as_py():
        return _NO_HEADERS, 1
    entries = headers.values
    keys = pc.struct_field(entries, [0]).cast(pa.large_binary())
    values = pc.struct_field(entries, [1]).cast(pa.large_binary())
    key_varints, value_varints = varints(_lengths(keys)[0]), varints(_lengths(values)[0])
    pieces = pc.binary_join_element_wise(
        *key_varints.pieces, keys, *value_varints.pieces, values, _EMPTY, null_handling="skip"
    )
    joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets.cast(pa.int64()), pieces), _EMPTY)
    counts = varints(pc.list_value_length(headers).cast(pa.int64()).fill_null(0))
    encoded = pc.binary_join_element_wise(*counts.pieces, joined.fill_null(b""), _EMPTY, null_handling="skip")
    return encoded, pc.binary_length(encoded).cast(pa.int64())


def encode_records(
    offset_deltas: pa.Array,
    timestamp_deltas: pa.Array,
    keys: pa.Array,
    values: pa.Array,
    headers: pa.ListArray,
    prefix: pa.Array | None = None,
) -> Records:
    """Every record of the columns (one row a record, deltas already relative to each record's batch), encoded
    back to back; each preceded by its row of ``prefix`` (binary; null: nothing), which counts as that record's."""
    keys, values = keys.cast(pa.large_binary()), values.cast(pa.large_binary())
    stamp_varints, offset_varints = varints(timestamp_deltas), varints(offset_deltas)
    key_lengths, key_bytes = _lengths(keys)
    value_lengths, value_bytes = _lengths(values)
    key_varints, value_varints = varints(key_lengths), varints(value_lengths)
    header_data, header_sizes = header_bytes(headers)
    body = pc.add(stamp_varints.sizes, offset_varints.sizes)
    for part in (key_varints.sizes, key_bytes, value_varints.sizes, value_bytes):
        body = pc.add(body, part)
    body = pc.add(pc.add(body, header_sizes), 1)  # and the attributes byte
    length_varints = varints(body)
    parts: Sequence[pa.Array | pa.Scalar] = [
        *([] if prefix is None else [prefix]),
        *length_varints.pieces,
        _ATTRIBUTES,
        *stamp_varints.pieces,
        *offset_varints.pieces,
        *key_varints.pieces,
        keys,
        *value_varints.pieces,
        values,
        header_data,
    ]
    joined = pc.binary_join_element_wise(*parts, _EMPTY, null_handling="skip")  # a new array: no slice offset
    _, ends, data = joined.buffers()
    record_ends = pa.Array.from_buffers(pa.int64(), len(joined), [None, ends], offset=1)
    return Records(data if data is not None else pa.py_buffer(b""), record_ends)
