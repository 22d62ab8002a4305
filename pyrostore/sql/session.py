"""A DuckDB session over an archive: one view per archived topic, named as the topic, over exactly its committed
segments as a pyarrow dataset (DuckDB pushes filters and projections into it).

Each view has the columns ``topic`` and ``partition`` (constant per segment file, so a filter on them skips
whole files) and the segment's columns: ``offset``, ``timestamp``, ``timestamp_type``, ``key``, ``value``,
``headers``, ``leader_epoch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from pyrostore.archive import Archive
from pyrostore.errors import PyrostoreError, UsageError
from pyrostore.segment import SCHEMA
from pyrostore.sql.files import AsOf, SegmentFile, committed_segments, resolve
from pyrostore.sql.filesystems import arrow_filesystem

VIEW_SCHEMA = pa.schema(
    [pa.field("topic", pa.string(), nullable=False), pa.field("partition", pa.int32(), nullable=False), *SCHEMA]
)


class InvalidQuery(UsageError):
    """The SQL does not parse, or names a table, column or function that does not exist."""


class QueryFailed(PyrostoreError):
    """The query could not be run to the end (a segment could not be read, or a value not converted)."""


def duckdb_module() -> Any:
    """The duckdb module, or UsageError saying how to install it (it is the optional ``sql`` extra)."""
    try:
        import duckdb
    except ImportError:
        raise UsageError("pyrostore sql needs DuckDB: pip install 'pyrostore[sql]'") from None
    return duckdb


def topic_dataset(
    topic: str, files: list[SegmentFile], filesystem: Any, locate: Any, drop_prefix: str
) -> ds.FileSystemDataset:
    """A dataset over exactly ``files`` (and nothing else: no listing), with ``topic`` and ``partition`` columns
    given per file. ``locate(key)`` is where the store says an object is; ``drop_prefix`` turns it into a path of
    ``filesystem``."""
    paths = [locate(f.key).removeprefix(drop_prefix) for f in files]
    partitions = [
        (ds.field("topic") == topic) & (ds.field("partition") == pa.scalar(f.partition, pa.int32())) for f in files
    ]
    return ds.FileSystemDataset.from_paths(
        paths, schema=VIEW_SCHEMA, format=ds.ParquetFileFormat(), filesystem=filesystem, partitions=partitions
    )


def connect(archive: Archive, options: Mapping[str, Any], as_of: AsOf | None = None) -> Any:
    """A DuckDB connection with one view per archived topic (as of ``as_of``, newest otherwise).

    ``options`` are the store options ``archive`` was opened with. Raises StoreError subclasses when the index
    cannot be read, TopicNotFound for a named commit that does not exist.
    """
    duckdb = duckdb_module()
    filesystem, drop_prefix = arrow_filesystem(archive.store, options)
    chosen = resolve(archive, as_of)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # times print and truncate (date_trunc) in UTC, as Kafka's are
    for topic in archive.topics():
        files = committed_segments(archive, topic, chosen)
        connection.register(topic, topic_dataset(topic, files, filesystem, archive.store.location, drop_prefix))
    return connection


def run_query(connection: Any, sql: str) -> pa.Table:
    """The query's result as an Arrow table. Raises InvalidQuery for SQL that does not parse or bind, QueryFailed
    when running it fails."""
    duckdb = duckdb_module()
    try:
        relation = connection.sql(sql)
        return pa.table({}) if relation is None else relation.to_arrow_table()
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise InvalidQuery(f"SQL: {_first_line(exc)}") from None
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise QueryFailed(f"SQL: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
