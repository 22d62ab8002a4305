"""Segments: a run of one partition's records as one Parquet object, named by the SHA-256 of its bytes.

The format is DESIGN §3: one row per Kafka record, sorted by offset, raw bytes untouched, zstd, statistics on
the fixed-width columns, the page index, page CRCs, and the segment's facts in the footer's ``pyrostore.*``
key-value metadata. Encoding is deterministic: the same records give the same bytes, hence the same object
name, with the same pyarrow version (its ``created_by`` string, and its bundled zstd, are part of the bytes).

Timestamps are stored as Kafka gives them, in milliseconds since the epoch; ``-1`` (Kafka's "no timestamp",
with timestamp type ``-1``) is kept as ``-1`` and counts in the segment's minimum timestamp. Timestamp types
follow Kafka's Java enum (-1 none, 0 CreateTime, 1 LogAppendTime), not confluent_kafka's constants (0 not
available, 1 CreateTime, 2 LogAppendTime): the archiver subtracts one.

Header keys are Kafka strings; confluent_kafka hands them over as ``str``, so they are stored as UTF-8
strings. A key that is not valid UTF-8 cannot reach this codec through confluent_kafka.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pyrostore.errors import FormatError, IntegrityError
from pyrostore.layout import check_topic, segment_key

FORMAT_VERSION = "1"
ROW_GROUP_BYTES = 24 * 1024 * 1024
"""Target uncompressed (Arrow) bytes per row group: the middle of DESIGN's 16 to 32 MB."""
_MAX_BINARY_BYTES = 2**31 - 1  # a binary array's 32-bit offsets reach this far
_JOIN_FROM_MEAN_BYTES = 512  # binary_array joins values this long on average (measured: 100 B no, 1 KiB yes)

TIMESTAMP_TYPE_NONE = -1
TIMESTAMP_TYPE_CREATE_TIME = 0
TIMESTAMP_TYPE_LOG_APPEND_TIME = 1
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")

HEADER = pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())])
SCHEMA = pa.schema(
    [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("timestamp_type", pa.int8(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", pa.list_(pa.field("element", HEADER, nullable=False)), nullable=False),
        pa.field("leader_epoch", pa.int32()),
    ]
)
"""The Arrow schema of a segment (DESIGN §3). A record without headers has an empty list, never null."""

_META_PREFIX = "pyrostore."
_INT_META = (
    "partition",
    "base_offset",
    "last_offset",
    "next_offset",
    "record_count",
    "min_timestamp",
    "max_timestamp",
)
_STR_META = ("format", "topic", "isolation_level")
_NOT_NULL = ("offset", "timestamp", "timestamp_type", "headers")

# Dictionaries only where values repeat, statistics (min/max, hence the page index's column index) only where
# ranges mean something: key and value are opaque blobs, where both only cost time and space.
_WRITE_OPTIONS: dict[str, Any] = dict(
    compression="zstd",
    use_dictionary=[
        "timestamp_type",
        "leader_epoch",
        "headers.list.element.key",
        "headers.list.element.value",
    ],
    write_statistics=["offset", "timestamp", "timestamp_type", "leader_epoch"],
    write_page_index=True,
    write_page_checksum=True,
    sorting_columns=[pq.SortingColumn(0)],
    store_schema=False,  # the Parquet schema alone reads back as SCHEMA; keeps the footer free of Arrow blobs
)


@dataclass(frozen=True)
class EncodedSegment:
    """An encoded segment: its exact bytes, their digest, and the facts its index entry needs."""

    data: bytes = field(repr=False)
    digest: str  # hex SHA-256 of data
    topic: str
    partition: int
    base_offset: int
    last_offset: int
    next_offset: int  # exclusive end: past last_offset + 1 when the trailing offsets are gaps
    record_count: int
    min_timestamp: int  # ms since the epoch
    max_timestamp: int

    @property
    def size(self) -> int:
        """Length of :attr:`data` in bytes."""
        return len(self.data)

    @property
    def key(self) -> str:
        """The segment's object key in an archive."""
        return segment_key(self.topic, self.partition, self.base_offset, self.digest)


def encode_segment(
    records: pa.Table | Sequence[pa.RecordBatch],
    *,
    topic: str,
    partition: int,
    next_offset: int,
    isolation_level: str = "read_committed",
    compression_level: int = 1,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> EncodedSegment:
    """Encode records with :data:`SCHEMA`, sorted by offset, as one segment.

    Raises ValueError, naming the problem, when the records are empty, do not match the schema, hold nulls
    where the schema forbids them, have offsets that are negative or not strictly increasing, an unknown
    timestamp type, or when ``next_offset`` is not past the last offset.
    """
    check_topic(topic)
    if partition < 0:
        raise ValueError(f"partition {partition} must not be negative")
    if isolation_level not in ISOLATION_LEVELS:
        raise ValueError(f"isolation level {isolation_level!r} is not one of {ISOLATION_LEVELS}")
    table = _as_table(records)
    _check_records(table)
    offsets = table.column("offset")
    base_offset, last_offset = offsets[0].as_py(), offsets[-1].as_py()
    if next_offset <= last_offset:
        raise ValueError(f"next offset {next_offset} must be past the last offset {last_offset}")
    timestamps = pc.min_max(table.column("timestamp").cast(pa.int64()))
    segment = dict(
        topic=topic,
        partition=partition,
        base_offset=base_offset,
        last_offset=last_offset,
        next_offset=next_offset,
        record_count=table.num_rows,
        min_timestamp=timestamps["min"].as_py(),
        max_timestamp=timestamps["max"].as_py(),
    )
    metadata = {f"{_META_PREFIX}{k}": str(v) for k, v in segment.items()}
    metadata[f"{_META_PREFIX}format"] = FORMAT_VERSION
    metadata[f"{_META_PREFIX}isolation_level"] = isolation_level

    # Row groups split evenly (no small tail group), each about row_group_bytes before compression.
    groups = max(1, math.ceil(table.nbytes / row_group_bytes))
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, SCHEMA, compression_level=compression_level, **_WRITE_OPTIONS) as writer:
        writer.add_key_value_metadata(metadata)
        writer.write_table(table, row_group_size=math.ceil(table.num_rows / groups))
    data = sink.getvalue().to_pybytes()
    return EncodedSegment(data=data, digest=hashlib.sha256(data).hexdigest(), **segment)


def decode_segment(
    data: bytes,
    *,
    expected_digest: str | None,
    name: str,
    columns: Sequence[str] | None = None,
    offset_from: int | None = None,
    offset_to: int | None = None,
) -> pa.Table:
    """Verify and decode a segment; ``name`` (its key, say) is what error messages call it.

    Returns the chosen ``columns`` (all by default) of the records whose offsets lie in
    ``[offset_from, offset_to)`` (either end open when None); with a digest, row groups outside the range
    are skipped by their statistics.
    Raises IntegrityError when the digest differs from ``expected_digest`` or the bytes are not a sound
    segment, FormatError when its format version is unknown, ValueError for an unknown column.
    """
    if expected_digest is not None:
        verify_digest(data, expected_digest, name)
    wanted = list(SCHEMA.names if columns is None else columns)
    unknown = [c for c in wanted if c not in SCHEMA.names]
    if unknown:
        raise ValueError(f"unknown segment columns {unknown}; a segment has {SCHEMA.names}")
    bounds = [pc.field("offset") >= offset_from] if offset_from is not None else []
    bounds += [pc.field("offset") < offset_to] if offset_to is not None else []
    condition = functools.reduce(operator.and_, bounds) if bounds else None
    verified = expected_digest is not None

    _, parquet = _open(data, name)
    try:
        if verified and condition is None:  # the footer already parsed: read it all, decoded in parallel
            table = parquet.read(columns=wanted)
        elif verified:  # read_table skips row groups by their statistics and decodes the rest in parallel
            table = pq.read_table(pa.BufferReader(data), columns=wanted, filters=condition)
        else:
            # Unverified statistics are not used: pyarrow 26 hangs on some corrupted ones. Page CRCs are
            # the only check left without a digest.
            read = [*wanted, "offset"] if condition is not None and "offset" not in wanted else wanted
            table = pq.read_table(pa.BufferReader(data), columns=read, page_checksum_verification=True)
            table = table if condition is None else table.filter(condition).select(wanted)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"segment {name}: cannot decode: {exc}") from exc
    return table.replace_schema_metadata(None)


def read_segment_metadata(data: bytes, name: str) -> dict[str, int | str]:
    """Return a segment's footer facts without its ``pyrostore.`` prefix; does not check the digest.

    Keys: format, topic, isolation_level (str); partition, base_offset, last_offset, next_offset,
    record_count, min_timestamp, max_timestamp (int).
    """
    return _open(data, name)[0]


def verify_digest(data: bytes, expected_digest: str, name: str) -> None:
    """Raise IntegrityError, naming the object and both digests, unless SHA-256(data) is expected_digest."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_digest.lower():
        raise IntegrityError(f"segment {name}: SHA-256 is {actual}, expected {expected_digest}")


def table_of_columns(
    offsets: Sequence[int],
    timestamps_ms: Sequence[int],
    timestamp_types: Sequence[int] | pa.Array,
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[tuple[str, bytes | None]] | None],
    leader_epochs: Sequence[int | None],
) -> pa.Table:
    """Build a segment table, with :data:`SCHEMA`, from one sequence per column, records in the same order.

    ``headers`` holds each record's list of (key, value) pairs as confluent_kafka returns them, or None.
    """
    arrays = [
        pa.array(offsets, pa.int64()),
        pa.array(timestamps_ms, SCHEMA.field("timestamp").type),
        timestamp_types if isinstance(timestamp_types, pa.Array) else pa.array(timestamp_types, pa.int8()),
        binary_array(keys),
        binary_array(values),
        _header_array(headers),
        pa.array(leader_epochs, pa.int32()),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def records_to_table(records: Iterable[Sequence[Any]]) -> pa.Table:
    """Build a segment table from record tuples in :func:`table_of_columns`' column order."""
    columns = list(zip(*records, strict=True))
    return table_of_columns(*columns) if columns else SCHEMA.empty_table()


def binary_array(values: Sequence[bytes | None]) -> pa.Array | pa.ChunkedArray:
    """A binary array of ``values`` (None is null); chunked past 2 GiB.

    ``pa.array`` converts small values fastest, but it grows its buffer as it goes: with values of a KiB and
    segments of tens of MB each growth copies the buffer again and touches fresh memory, which made it the
    archiver's costliest step (holding the GIL). Larger values are joined once into a buffer of the exact size.
    """
    count = len(values)
    sample = values[:: max(1, count // 32)]
    if sum(len(v) for v in sample if v) < _JOIN_FROM_MEAN_BYTES * len(sample):
        return pa.array(values, pa.binary())
    nulls = values.count(None)
    # Without nulls the values are all bytes already: no copy of the list.
    filled = [b"" if v is None else v for v in values] if nulls else cast(Sequence[bytes], values)
    ends = list(itertools.accumulate(map(len, filled), initial=0))
    if ends[-1] > _MAX_BINARY_BYTES:  # past 32-bit offsets: pyarrow splits it into chunks
        return pa.array(values, pa.binary())
    validity = pa.array([v is not None for v in values], pa.bool_()).buffers()[1] if nulls else None
    offsets = pa.array(ends, pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), count, [validity, offsets, pa.py_buffer(b"".join(filled))], nulls)


def header_lists(column: pa.ListArray) -> list[list[tuple[str, bytes | None]]] | None:
    """A segment's headers column as one list of (key, value) pairs per record, or None when no record has a
    header (then no per-record object is made)."""
    if column.offsets[-1].as_py() == column.offsets[0].as_py():
        return None
    return [[(h["key"], h["value"]) for h in row] for row in column.to_pylist()]


def _header_array(headers: Sequence[Sequence[tuple[str, bytes | None]] | None]) -> pa.Array:
    header_type = SCHEMA.field("headers").type
    if any(headers):
        return pa.array([h or () for h in headers], type=header_type)
    # The common case, built without looking at each record: every list empty.
    empty = pa.repeat(pa.scalar(0, pa.int32()), len(headers) + 1)
    return pa.ListArray.from_arrays(empty, pa.array([], HEADER), type=header_type)


def _as_table(records: pa.Table | Sequence[pa.RecordBatch]) -> pa.Table:
    if isinstance(records, pa.Table):
        table = records
    else:
        batches = list(records)
        table = pa.Table.from_batches(batches) if batches else SCHEMA.empty_table()
    if not table.schema.equals(SCHEMA):
        try:
            table = table.cast(SCHEMA)
        except (pa.ArrowException, ValueError) as exc:
            raise ValueError(f"records do not match the segment schema {SCHEMA}: {exc}") from None
    # Parquet pages depend on how columns are chunked: one chunk each makes the bytes depend on content only.
    if any(column.num_chunks > 1 for column in table.columns):
        table = table.combine_chunks()
    return table


def _check_records(table: pa.Table) -> None:
    if table.num_rows == 0:
        raise ValueError("a segment needs at least one record")
    for name in _NOT_NULL:
        if table.column(name).null_count:
            raise ValueError(f"column {name!r} holds {table.column(name).null_count} nulls")
    entries = pc.list_flatten(table.column("headers"))
    if entries.null_count or pc.struct_field(entries, "key").null_count:
        raise ValueError("headers hold a null entry or a null header key")
    offsets = table.column("offset")
    if offsets[0].as_py() < 0:
        raise ValueError(f"offsets must not be negative; the first is {offsets[0].as_py()}")
    if table.num_rows > 1:
        out_of_order = pc.less_equal(offsets[1:], offsets[:-1])
        if pc.any(out_of_order).as_py():
            row = pc.index(out_of_order, True).as_py() + 1
            raise ValueError(
                f"offsets must be strictly increasing: offset {offsets[row].as_py()} at row {row}"
                f" follows {offsets[row - 1].as_py()}"
            )
    types = pc.min_max(table.column("timestamp_type")).as_py()
    if types["min"] < TIMESTAMP_TYPE_NONE or types["max"] > TIMESTAMP_TYPE_LOG_APPEND_TIME:
        raise ValueError(f"timestamp types must be Kafka's -1, 0 or 1; found {types['min']}..{types['max']}")


def _open(data: bytes, name: str) -> tuple[dict[str, int | str], pq.ParquetFile]:
    """Read a segment's footer, check it and its schema against the format; return its facts and the file."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        footer = parquet.metadata.metadata or {}
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IntegrityError(f"segment {name}: not a readable Parquet file: {exc}") from exc
    try:
        raw = {k.decode(): v.decode() for k, v in footer.items() if k.startswith(_META_PREFIX.encode())}
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"segment {name}: footer metadata is not UTF-8") from exc
    version = raw.get(f"{_META_PREFIX}format")
    if version is None:
        raise FormatError(f"segment {name}: not a Pyrostore segment (no {_META_PREFIX}format in its footer)")
    if version != FORMAT_VERSION:
        raise FormatError(f"segment {name}: format version {version!r}; this Pyrostore reads {FORMAT_VERSION}")
    try:
        meta: dict[str, int | str] = {k: raw[_META_PREFIX + k] for k in _STR_META}
        meta.update({k: int(raw[_META_PREFIX + k]) for k in _INT_META})
    except (KeyError, ValueError) as exc:
        raise IntegrityError(f"segment {name}: footer metadata is missing or malformed: {exc}") from exc
    if not schema.equals(SCHEMA):
        raise IntegrityError(f"segment {name}: schema {schema} is not the segment schema")
    if parquet.metadata.num_rows != meta["record_count"]:
        raise IntegrityError(
            f"segment {name}: holds {parquet.metadata.num_rows} rows, its footer says {meta['record_count']}"
        )
    return meta, parquet
