"""Archived record batches as the arguments ``Producer.produce`` takes, decoded column by column."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pyrostore.archive import batch_columns

PROVENANCE_TOPIC = "pyrostore.source.topic"
PROVENANCE_PARTITION = "pyrostore.source.partition"
PROVENANCE_OFFSET = "pyrostore.source.offset"


@dataclass(frozen=True)
class ProduceColumns:
    """One batch's records as parallel lists (headers as lists of pairs), timestamps clamped at 0 (negative
    ones mean "none")."""

    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list[tuple[str, bytes | None]]]

    def __len__(self) -> int:
        return len(self.offsets)


def produce_columns(batch: pa.RecordBatch, provenance: tuple[str, int] | None = None) -> ProduceColumns:
    """Decode a segment batch once per column; ``provenance`` (source topic, partition) adds the three
    ``pyrostore.source.*`` headers after each record's own headers."""
    offsets, timestamps, _types, keys, values, headers, _epochs = batch_columns(batch)
    if batch.num_rows and pc.min(batch.column("timestamp").cast(pa.int64())).as_py() < 0:
        # librdkafka reads timestamp 0 as "now"; Kafka's "no timestamp" (-1) can only become that too.
        timestamps = [max(t, 0) for t in timestamps]
    if provenance is not None:
        topic, partition = provenance
        fixed = [(PROVENANCE_TOPIC, topic.encode()), (PROVENANCE_PARTITION, b"%d" % partition)]
        headers = [[*h, *fixed, (PROVENANCE_OFFSET, b"%d" % o)] for h, o in zip(headers, offsets, strict=True)]
    return ProduceColumns(offsets, timestamps, keys, values, headers)


def payload_bytes(batch: pa.RecordBatch) -> int:
    """Bytes of a batch's keys, values, header keys and header values: what the bytes rate limit counts."""
    flat = batch.column("headers").flatten()
    columns = (batch.column("key"), batch.column("value"), flat.field("key"), flat.field("value"))
    return sum(_byte_length(column) for column in columns)


def _byte_length(column: pa.Array) -> int:
    total = pc.sum(pc.binary_length(column)).as_py()
    return total or 0
