"""Shared by the Iceberg tests: what a table holds, and what the archive holds, in comparable form."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from e2e.stack.s3 import S3Server
from pyrostore.archive import Archive
from pyrostore.sql import segment_urls


def s3_properties(server: S3Server) -> dict[str, str]:
    """pyiceberg's FileIO properties that read the stack's MinIO (endpoint, region, credentials)."""
    return {
        "s3.endpoint": server.endpoint,
        "s3.region": server.region,
        "s3.access-key-id": server.access_key,
        "s3.secret-access-key": server.secret_key,
    }


def table_files(table: Table) -> list[str]:
    """The data files of the table's current snapshot, sorted (duplicates kept)."""
    return sorted(task.file.file_path for task in table.scan().plan_files())


def committed_files(archive: Archive, topic: str) -> list[str]:
    """The locations of the segments the newest commits of ``topic`` name, sorted."""
    return sorted(segment_urls(archive, topic))


def table_rows(table: Table) -> dict[int, list[tuple]]:
    """Every row of the table, as :func:`rows_by_partition` gives them."""
    return rows_by_partition(table.scan().to_arrow())


def archive_table(archive: Archive, topic: str) -> pa.Table:
    """Every archived record of ``topic`` as one Arrow table with a ``partition`` column."""
    parts = []
    for partition in archive.partitions(topic):
        batches = list(archive.partition(topic, partition).read_batches(skip_lost=True))
        for batch in batches:
            parts.append(
                pa.Table.from_batches([batch]).add_column(
                    0, "partition", pa.array([partition] * len(batch), pa.int32())
                )
            )
    return pa.concat_tables(parts)


def rows_by_partition(data: pa.Table) -> dict[int, list[tuple]]:
    """Rows of a table with the table's columns by partition in offset order, in ``kafka_rows``' form: (offset,
    timestamp type, timestamp ms, key, value, headers as (key, value) pairs, leader epoch)."""
    stamps = data.column("timestamp").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
    names = ("partition", "offset", "timestamp_type", "key", "value", "headers", "leader_epoch")
    columns: list[list[Any]] = [data.column(name).to_pylist() for name in names]
    result: dict[int, list[tuple]] = {}
    for i, stamp in enumerate(stamps):
        partition, offset, kind, key, value, headers, epoch = (column[i] for column in columns)
        pairs = [(h["key"], h["value"]) for h in headers]
        result.setdefault(partition, []).append((offset, kind, stamp, key, value, pairs, epoch))
    return {p: sorted(rows) for p, rows in sorted(result.items())}


def summary(data: pa.Table) -> tuple[int, int, int, int, int]:
    """(rows, min offset, max offset, min timestamp ms, max timestamp ms) of a table with the table's columns."""
    stamps = data.column("timestamp").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return (
        data.num_rows,
        pc.min(data.column("offset")).as_py(),
        pc.max(data.column("offset")).as_py(),
        pc.min(stamps).as_py(),
        pc.max(stamps).as_py(),
    )
