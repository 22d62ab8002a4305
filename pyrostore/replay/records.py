"""Archived record batches as the arguments ``Producer.produce`` takes, decoded column by column."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pyrostore.segment import header_lists

PROVENANCE_TOPIC = "pyrostore.source.topic"
PROVENANCE_PARTITION = "pyrostore.source.partition"
PROVENANCE_OFFSET = "pyrostore.source.offset"


@dataclass(frozen=True)
class ProduceColumns:
    """One batch's records as parallel lists (``headers[i]`` None when record i has none), timestamps clamped at
    0 (negative ones mean "none")."""

    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list[tuple[str, bytes | None]] | None]

    def __len__(self) -> int:
        return len(self.offsets)


def produce_columns(batch: pa.RecordBatch, provenance: tuple[str, int] | None = None) -> ProduceColumns:
    """Decode the columns of a segment batch that ``produce`` needs, each once; ``provenance`` (source topic,
    partition) adds the three ``pyrostore.source.*`` headers after each record's own headers."""
    offsets = batch.column("offset").to_pylist()
    headers: list = _headers(batch)
    if provenance is not None:
        topic, partition = provenance
        fixed = [(PROVENANCE_TOPIC, topic.encode()), (PROVENANCE_PARTITION, b"%d" % partition)]
        headers = [[*(h or ()), *fixed, (PROVENANCE_OFFSET, b"%d" % o)] for h, o in zip(headers, offsets, strict=True)]
    timestamps = batch.column("timestamp").cast(pa.int64())
    if batch.num_rows and pc.min(timestamps).as_py() < 0:
        # librdkafka reads timestamp 0 as "now"; Kafka's "no timestamp" (-1) can only become that too.
        timestamps = pc.max_element_wise(timestamps, 0)
    return ProduceColumns(
        offsets, timestamps.to_pylist(), batch.column("key").to_pylist(), batch.column("value").to_pylist(), headers
    )


def _headers(batch: pa.RecordBatch) -> list[list[tuple[str, bytes | None]] | None]:
    """Each record's headers, or None for a record without: no per-record objects when no record has any."""
    lists = header_lists(batch.column("headers"))
    return [None] * batch.num_rows if lists is None else [pairs or None for pairs in lists]


def payload_bytes(batch: pa.RecordBatch) -> int:
    """Bytes of a batch's keys, values, header keys and header values: what the bytes rate limit counts."""
    flat = batch.column("headers").flatten()
    columns = (batch.column("key"), batch.column("value"), flat.field("key"), flat.field("value"))
    return sum(_byte_length(column) for column in columns)


def _byte_length(column: pa.Array) -> int:
    total = pc.sum(pc.binary_length(column)).as_py()
    return total or 0
