"""SQL over the archive: the committed segments of a topic as one Parquet dataset.

The list of files always comes from the index (a chosen commit per partition), never from a bare listing,
so segments a crashed writer left behind never show up as duplicates. Paths keep the Hive-style
``topic=``/``partition=`` folders, so engines add ``topic`` and ``partition`` columns.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from pyrostore.archive import Archive
from pyrostore.layout import segment_key


def segment_urls(archive: Archive, topic: str, partitions: list[int] | None = None) -> list[str]:
    """URLs (local paths for a folder store) of the segments committed in ``topic``'s newest commits."""
    base = archive.store.url
    urls = []
    for partition in partitions if partitions is not None else archive.partitions(topic):
        reader = archive.partition(topic, partition)
        for entry in reader.segments():
            if not entry.lost:
                urls.append(f"{base}/{segment_key(topic, partition, entry.first, entry.digest)}")
    return [unquote(url.removeprefix("file://")) if url.startswith("file://") else url for url in urls]


def duckdb_view(connection: Any, archive: Archive, topic: str, view: str | None = None) -> str:
    """Create a DuckDB view over ``topic``'s committed segments (with topic and partition columns).

    Returns the view's name. Local folder stores only: DuckDB reads S3 and GCS through its httpfs
    extension, which is fetched from the network at run time.
    """
    urls = segment_urls(archive, topic)
    if not urls:
        raise ValueError(f"topic {topic!r} has no committed segment")
    name = view or topic.replace(".", "_").replace("-", "_")
    files = ", ".join("'" + url.replace("'", "''") + "'" for url in urls)
    connection.execute(
        f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet([{files}], hive_partitioning = true)'
    )
    return name
