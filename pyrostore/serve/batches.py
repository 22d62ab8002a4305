"""Kafka record batches (v2) from archived segments.

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

:func:`segment_batches` cuts and encodes a whole segment column-wise with Arrow kernels (no Python object per
record: record by record costs more than everything else a served record costs) and checksums with the
``crc32c`` package (kio's dependency, hardware CRC32C; aiokafka's is several times slower).
:func:`build_batch`, aiokafka's builder record by record, is the reference the tests hold it to.
"""

from __future__ import annotations

import itertools
import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import crc32c
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka.codec import gzip_encode
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from pyrostore.segment import TIMESTAMP_TYPE_LOG_APPEND_TIME
from pyrostore.serve.config import Compression
from pyrostore.serve.records import encode_records

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
_LENGTH_END = 12  # the batch length counts the bytes after it
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
    data: bytes | memoryview  # a view into its segment's encoded records when uncompressed


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
    return tile(groups, [offsets[stop - 1] for _, stop in groups], base, end)


def tile(groups: Sequence[tuple[int, int]], lasts: Sequence[int], base: int, end: int) -> list[Cut]:
    """Cuts of the row groups ``[first, stop)`` (in order, covering every row) whose last offsets are ``lasts``,
    tiling ``[base, end)``: each starts where the previous one ended (within int32 deltas of its last record)
    and ends after its last record, the last one at ``end``."""
    cuts = []
    previous_end = base
    for index, ((first, stop), last) in enumerate(zip(groups, lasts, strict=True)):
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
    epoch and timestamp type, and ``lastOffsetDelta`` reaching the cut's end: aiokafka's builder, record by
    record (the reference for :func:`segment_batches`)."""
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
    """Every batch of one segment's records (a table with the segment schema) covering ``[base, end)``.

    Cut and encoded column by column (:func:`segment_cuts`, :func:`~pyrostore.serve.records.encode_records`):
    no Python object per record. The bytes are those :func:`build_batch` builds record by record for the same
    cuts, except that a batch whose first record has no timestamp (-1) keeps it (aiokafka's builder gives that
    record the next record's timestamp)."""
    if table.num_rows == 0:
        return []
    columns = {name: _column(table, name) for name in _COLUMNS}
    offsets = columns["offset"]
    timestamps = columns["timestamp"].cast(pa.int64())
    cuts = segment_cuts(columns, timestamps, base, end, target_bytes)
    if len(cuts) == 1:
        batch_bases: pa.Array | pa.Scalar = pa.scalar(cuts[0].base, pa.int64())
        first_stamps: pa.Array | pa.Scalar = timestamps[0]
    else:
        stops = pa.array([cut.stop_row for cut in cuts], pa.int64())
        batch_bases = pc.run_end_decode(
            pa.RunEndEncodedArray.from_arrays(stops, pa.array([cut.base for cut in cuts], pa.int64()))
        )
        stamps = pc.take(timestamps, pa.array([cut.first_row for cut in cuts], pa.int64()))
        first_stamps = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(stops, stamps))
    records = encode_records(
        pc.subtract(offsets, batch_bases),
        pc.subtract(timestamps, first_stamps),
        columns["key"],
        columns["value"],
        columns["headers"],
        prefix=header_room(len(offsets), [cut.first_row for cut in cuts]),
    )
    view = memoryview(records.data).cast("B")  # writable: the kernel's fresh buffer, shared by nothing else yet
    kinds, epochs = columns["timestamp_type"], columns["leader_epoch"]
    batches = []
    for cut in cuts:
        start, stop = records.span(cut.first_row, cut.stop_row)
        stamps_of_cut = timestamps.slice(cut.first_row, cut.stop_row - cut.first_row)
        header = BatchHeader(
            base=cut.base,
            end=cut.end,
            leader_epoch=epochs[cut.first_row].as_py(),
            timestamp_type=kinds[cut.first_row].as_py(),
            first_timestamp=timestamps[cut.first_row].as_py(),
            max_timestamp=pc.max(stamps_of_cut).as_py(),
            count=cut.stop_row - cut.first_row,
        )
        batch = view[start:stop]
        if compression is Compression.NONE:
            data: bytes | memoryview = seal(header, batch)
        else:
            data = assemble(header, batch[BATCH_OVERHEAD:], compression)
        batches.append(Batch(cut.base, cut.end, data))
    return batches


_ROOM = pa.scalar(bytes(BATCH_OVERHEAD), pa.large_binary())
_NO_ROOM = pa.scalar(None, pa.large_binary())


def header_room(count: int, first_rows: Sequence[int]) -> pa.Array:
    """A batch header's worth of zero bytes at each batch's first row, null (nothing) at the other rows: written
    before the records, it leaves each batch's header its place in the records' buffer."""
    firsts = [False] * count
    for row in first_rows:
        firsts[row] = True
    return pc.if_else(pa.array(firsts, pa.bool_()), _ROOM, _NO_ROOM)


_COLUMNS = ("offset", "timestamp", "timestamp_type", "key", "value", "headers", "leader_epoch")


def _column(table: pa.Table, name: str) -> pa.Array:
    """One column of the table as one array (binary columns as large binary, which holds any size)."""
    column = table.column(name)
    if name in ("key", "value"):
        column = column.cast(pa.large_binary())
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def segment_cuts(
    columns: dict[str, pa.Array], timestamps: pa.Array, base: int, end: int, target_bytes: int
) -> list[Cut]:
    """:func:`cut_batches` of a segment's columns, without a Python object per record where records of one kind
    follow each other (the usual case): the rows where the kind changes are found column-wise, and batches
    within a run of one kind by bisecting cumulative sizes."""
    offsets, kinds = columns["offset"], columns["timestamp_type"]
    epochs = columns["leader_epoch"].fill_null(-1)  # -1 and None are both served as -1
    count = len(offsets)
    sizes = record_sizes(columns["key"], columns["value"], columns["headers"])
    if offsets[count - 1].as_py() - offsets[0].as_py() > MAX_DELTA:  # int32 deltas decide too: the plain way
        return cut_batches(
            offsets.to_pylist(),
            sizes.to_pylist(),
            kinds.to_pylist(),
            epochs.to_pylist(),
            timestamps.to_pylist(),
            base,
            end,
            target_bytes,
        )
    changed = pc.or_(pc.not_equal(kinds[1:], kinds[:-1]), pc.not_equal(epochs[1:], epochs[:-1]))
    appended = pc.equal(kinds, TIMESTAMP_TYPE_LOG_APPEND_TIME)
    if pc.any(appended).as_py():  # LogAppendTime batches hold one timestamp
        changed = pc.or_(changed, pc.and_(appended[1:], pc.not_equal(timestamps[1:], timestamps[:-1])))
    starts = [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist()), count]
    totals = [0, *pc.cumulative_sum(sizes).to_pylist()]  # totals[i]: the sizes of rows [0, i)
    groups = []
    for run_first, run_stop in itertools.pairwise(starts):
        first = run_first
        while first < run_stop:
            fits = bisect_right(totals, totals[first] + target_bytes, first + 1, run_stop + 1) - 1
            stop = min(max(fits, first + 1), first + MAX_RECORDS, run_stop)
            groups.append((first, stop))
            first = stop
    lasts = pc.take(offsets, pa.array([stop - 1 for _, stop in groups], pa.int64())).to_pylist()
    return tile(groups, lasts, base, end)


def record_sizes(keys: pa.Array, values: pa.Array, headers: pa.ListArray) -> pa.Array:
    """:func:`record_size` of every record, column-wise (int64)."""
    sizes = pc.add(
        pc.binary_length(keys).cast(pa.int64()).fill_null(0),
        pc.binary_length(values).cast(pa.int64()).fill_null(0),
    )
    sizes = pc.add(sizes, RECORD_OVERHEAD)
    offsets = headers.offsets
    if offsets[0].as_py() == offsets[-1].as_py():
        return sizes
    entries = headers.values
    entry_sizes = pc.add(
        pc.add(pc.utf8_length(pc.struct_field(entries, [0])).cast(pa.int64()).fill_null(0), 10),  # len(str)
        pc.binary_length(pc.struct_field(entries, [1])).cast(pa.int64()).fill_null(0),
    )
    totals = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(entry_sizes)])
    per_record = pc.subtract(pc.take(totals, offsets[1:]), pc.take(totals, offsets[:-1]))
    return pc.add(sizes, per_record)


@dataclass(frozen=True)
class BatchHeader:
    """The fields of a v2 batch header that vary: the rest is the same for every served batch."""

    base: int
    end: int
    leader_epoch: int | None
    timestamp_type: int
    first_timestamp: int
    max_timestamp: int
    count: int


_HEADER = struct.Struct(">qiibIhiqqqhii")  # base offset ... record count: the 61 bytes before the records


def seal(header: BatchHeader, batch: memoryview) -> memoryview:
    """Write a v2 batch's header, CRC computed, into the first :data:`BATCH_OVERHEAD` bytes of ``batch`` (writable),
    before its uncompressed records; return ``batch``. No copy of the records."""
    batch[:BATCH_OVERHEAD] = _packed(header, len(batch) - BATCH_OVERHEAD, 0)
    struct.pack_into(">I", batch, _CRC, crc32c.crc32c(batch[_ATTRIBUTES:]))
    return batch


def assemble(header: BatchHeader, records: memoryview, compression: Compression = Compression.NONE) -> bytes:
    """One v2 batch: its header, CRC computed, then ``records``, compressed as asked (even where that makes them
    larger, as aiokafka's builder does)."""
    payload: bytes | memoryview = records
    codec = 0
    if compression is not Compression.NONE:
        payload = gzip_encode(records)
        codec = _CODECS[compression]
    head = _packed(header, len(payload), codec)
    crc = crc32c.crc32c(payload, crc32c.crc32c(head[_ATTRIBUTES:]))
    struct.pack_into(">I", head, _CRC, crc)
    return b"".join((head, payload))


def _packed(header: BatchHeader, payload_size: int, codec: int) -> bytearray:
    """A batch header's bytes, CRC zero, before ``payload_size`` bytes of records compressed by ``codec``."""
    attributes = codec | (_LOG_APPEND_TIME if header.timestamp_type == TIMESTAMP_TYPE_LOG_APPEND_TIME else 0)
    fields = [
        header.base,
        _HEADER.size - _LENGTH_END + payload_size,
        -1 if header.leader_epoch is None else header.leader_epoch,
        2,  # magic
        0,  # the CRC, below
        attributes,
        header.end - 1 - header.base,
        header.first_timestamp,
        header.max_timestamp,
        -1,  # producer id
        -1,  # producer epoch
        -1,  # base sequence
        header.count,
    ]
    return bytearray(_HEADER.pack(*fields))
