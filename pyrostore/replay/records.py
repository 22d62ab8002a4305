"""Archived record batches as the arguments ``Producer.produce`` takes, decoded column by column."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

PROVENANCE_TOPIC = "pyrostore.source.topic"
PROVENANCE_PARTITION = "pyrostore.source.partition"
PROVENANCE_OFFSET = "pyrostore.source.offset"


@dataclass(frozen=True)
class ProduceColumns:
    """One batch's records as parallel lists; ``headers[i]`` is None when record i has none, and timestamps are
    clamped at 0 (negative ones mean "none")."""

    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list[tuple[str, bytes | None]] | None]

    def __len__(self) -> int:
        return len(self.offsets)


def produce_columns(batch: pa.RecordBatch, provenance: tuple[str, int] | None = None) -> ProduceColumns:
    """Decode a segment batch once per column; ``provenance`` (source topic, partition) adds the three
    ``pyrostore.source.*`` headers after each record's own headers."""
    header_column = batch.column("headers")
    if len(header_column.flatten()) == 0:
        headers: list = [None] * batch.num_rows
    else:
        headers = [[(h["key"], h["value"]) for h in row] or None for row in header_column.to_pylist()]
    offsets = batch.column("offset").to_pylist()
    if provenance is not None:
        topic, partition = provenance
        fixed = [(PROVENANCE_TOPIC, topic.encode()), (PROVENANCE_PARTITION, b"%d" % partition)]
        headers = [[*(h or ()), *fixed, (PROVENANCE_OFFSET, b"%d" % o)] for h, o in zip(headers, offsets, strict=True)]
    return ProduceColumns(
        offsets=offsets,
        # librdkafka reads timestamp 0 as "now"; Kafka's "no timestamp" (-1) can only become that too.
        timestamps=pc.max_element_wise(batch.column("timestamp").cast(pa.int64()), 0).to_pylist(),
        keys=batch.column("key").to_pylist(),
        values=batch.column("value").to_pylist(),
        headers=headers,
    )


def payload_bytes(batch: pa.RecordBatch) -> int:
    """Bytes of a batch's keys, values, header keys and header values: what the bytes rate limit counts."""
    flat = batch.column("headers").flatten()
    columns = (batch.column("key"), batch.column("value"), flat.field("key"), flat.field("value"))
    return sum(_byte_length(column) for column in columns)


def _byte_length(column: pa.Array) -> int:
    total = pc.sum(pc.binary_length(column)).as_py()
    return total or 0
