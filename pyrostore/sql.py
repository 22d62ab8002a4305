"""SQL over the archive: the committed segments of a topic as one Parquet dataset.

The list of files always comes from the index (a chosen commit per partition), never from a bare listing,
so segments a crashed writer left behind never show up as duplicates. Paths keep the Hive-style
``topic=``/``partition=`` folders, so engines add ``topic`` and ``partition`` columns.
"""

from __future__ import annotations

from typing import Any

from pyrostore.archive import Archive


def segment_urls(archive: Archive, topic: str, partitions: list[int] | None = None) -> list[str]:
    """Where the segments committed in ``topic``'s newest commits are, as engines name them (local paths for a
    folder store, ``s3://`` or ``gs://`` URLs otherwise; see ``ObjectStore.location``).

    Raises TopicNotFound, and StoreError subclasses when the index cannot be read.
    """
    store = archive.store
    return [
        store.location(entry.segment_key(topic, partition))
        for partition in (partitions if partitions is not None else archive.partitions(topic))
        for entry in archive.partition(topic, partition).segments()
        if not entry.lost
    ]


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
