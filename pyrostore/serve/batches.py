"""Kafka record batches (v2) from archived segments, built with aiokafka's batch builder.

A segment's records are cut into batches (:func:`cut_batches`, pure) that tile the segment's offset range
``[base, end)`` with no overlap: each batch starts where the previous one ended and ends after its last
record, the segment's last batch at the segment's end. Offsets the topic no longer holds (compaction,
aborted transactions, transaction markers) fall inside batches as gaps between offset deltas, the way
compacted batches look on a broker; ``lastOffsetDelta`` says where the batch ends, so clients continue after a
gap instead of asking for it again.

A batch holds records of one kind: one timestamp type and one leader epoch (both are batch fields), and for
LogAppendTime one timestamp, because clients give every record of such a batch the batch's maximum timestamp.
Archived transactional records were committed (the archive is read_committed), so batches are plain: no
producer id, not transactional, never control batches.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from pyrostore.archive import batch_columns
from pyrostore.segment import TIMESTAMP_TYPE_LOG_APPEND_TIME
from pyrostore.serve.config import Compression

MAX_DELTA = 2**31 - 1  # offset deltas are int32
MAX_RECORDS = 100_000
RECORD_OVERHEAD = 21  # length, attributes, timestamp and offset deltas, key/value/header-count varints: at most
BATCH_OVERHEAD = 61  # the v2 batch header

# v2 batch header fields patched after building (offsets into the header).
_BASE_OFFSET = 0
_LEADER_EPOCH = 12
_CRC = 17
_ATTRIBUTES = 21
_LAST_OFFSET_DELTA = 23
_LOG_APPEND_TIME = 0x08
_CODECS = {Compression.NONE: 0, Compression.GZIP: 1}


@dataclass(frozen=True)
class Cut:
    """One batch to build: the records at rows ``[first_row, stop_row)``, covering offsets ``[base, end)``."""

    base: int
    end: int
    first_row: int
    stop_row: int


@dataclass(frozen=True)
class Batch:
    """A built record batch covering offsets ``[base, end)``."""

    base: int
    end: int
    data: bytes


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> int:
    """About the bytes a record takes in a batch (before compression)."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, data in headers:
        size += 10 + len(name) + len(data or b"")
    return size


def cut_batches(
    offsets: Sequence[int],
    sizes: Sequence[int],
    timestamp_types: Sequence[int],
    leader_epochs: Sequence[int | None],
    timestamps: Sequence[int],
    base: int,
    end: int,
    target_bytes: int,
    max_records: int = MAX_RECORDS,
) -> list[Cut]:
    """Cut a segment's records (offsets strictly increasing inside ``[base, end)``) into batches of about
    ``target_bytes`` (a record larger than that gets a batch of its own) and at most ``max_records``.

    A new batch also starts where the timestamp type or the leader epoch changes, where a LogAppendTime
    timestamp changes, and where offsets would not fit int32 deltas. The cuts tile ``[base, end)`` except where
    a gap is wider than int32 deltas reach.
    """
    groups: list[tuple[int, int]] = []
    first, size = 0, 0
    for row in range(len(offsets)):
        if row > first and (
            size + sizes[row] > target_bytes
            or row - first >= max_records
            or timestamp_types[row] != timestamp_types[first]
            or leader_epochs[row] != leader_epochs[first]
            or (timestamp_types[first] == TIMESTAMP_TYPE_LOG_APPEND_TIME and timestamps[row] != timestamps[first])
            or offsets[row] - offsets[first] > MAX_DELTA
        ):
            groups.append((first, row))
            first, size = row, 0
        size += sizes[row]
    if offsets:
        groups.append((first, len(offsets)))
    cuts = []
    previous_end = base
    for index, (first, stop) in enumerate(groups):
        last = offsets[stop - 1]
        cut_base = max(previous_end, last - MAX_DELTA)
        cut_end = last + 1 if index < len(groups) - 1 else min(end, cut_base + MAX_DELTA + 1)
        cuts.append(Cut(cut_base, cut_end, first, stop))
        previous_end = cut_end
    return cuts


def build_batch(
    cut: Cut,
    offsets: Sequence[int],
    timestamps: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[list[tuple[str, bytes | None]]],
    timestamp_type: int,
    leader_epoch: int | None,
    compression: Compression = Compression.NONE,
) -> bytes:
    """The bytes of one v2 record batch holding the rows ``cut`` names, with real offsets, the records' leader
    epoch and timestamp type, and ``lastOffsetDelta`` reaching the cut's end."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=_CODECS[compression],
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=MAX_DELTA,  # the cut decided the size: the builder must take every record
    )
    for row in range(cut.first_row, cut.stop_row):
        builder.append(offsets[row] - cut.base, timestamps[row], keys[row], values[row], headers[row])
    data = builder.build()
    struct.pack_into(">q", data, _BASE_OFFSET, cut.base)  # outside the CRC
    struct.pack_into(">i", data, _LEADER_EPOCH, -1 if leader_epoch is None else leader_epoch)  # outside the CRC
    struct.pack_into(">i", data, _LAST_OFFSET_DELTA, cut.end - 1 - cut.base)
    if timestamp_type == TIMESTAMP_TYPE_LOG_APPEND_TIME:
        (attributes,) = struct.unpack_from(">h", data, _ATTRIBUTES)
        struct.pack_into(">h", data, _ATTRIBUTES, attributes | _LOG_APPEND_TIME)
    struct.pack_into(">I", data, _CRC, calc_crc32c(bytes(data[_ATTRIBUTES:])))
    return bytes(data)


def segment_batches(
    table: pa.Table, base: int, end: int, target_bytes: int, compression: Compression = Compression.NONE
) -> list[Batch]:
    """Every batch of one segment's records (a table with the segment schema) covering ``[base, end)``."""
    columns: list[list] = [[] for _ in range(7)]
    for part in table.to_batches():
        for column, values in zip(columns, batch_columns(part), strict=True):
            column.extend(values)
    offsets, timestamps, types, keys, values, headers, epochs = columns
    sizes = [record_size(k, v, h) for k, v, h in zip(keys, values, headers, strict=True)]
    cuts = cut_batches(offsets, sizes, types, epochs, timestamps, base, end, target_bytes)
    batches = []
    for cut in cuts:
        kind, epoch = types[cut.first_row], epochs[cut.first_row]
        data = build_batch(cut, offsets, timestamps, keys, values, headers, kind, epoch, compression)
        batches.append(Batch(cut.base, cut.end, data))
    return batches
