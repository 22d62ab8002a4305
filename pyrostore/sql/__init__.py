"""SQL over the archive: DuckDB over exactly the committed segments of every archived topic.

The list of files always comes from the index (one commit per partition), never from a bare listing, so
segments a crashed writer left behind never show up. Modules: :mod:`~pyrostore.sql.files` (which segments, as
of when), :mod:`~pyrostore.sql.filesystems` (pyarrow filesystems from store options),
:mod:`~pyrostore.sql.session` (the DuckDB views and queries), :mod:`~pyrostore.sql.output` (result formats).
"""

from __future__ import annotations

from pyrostore.archive import Archive
from pyrostore.sql.files import AsOf, committed_segments, parse_as_of
from pyrostore.sql.session import InvalidQuery, QueryFailed, connect, run_query

__all__ = ["AsOf", "InvalidQuery", "QueryFailed", "connect", "parse_as_of", "run_query", "segment_urls"]


def segment_urls(archive: Archive, topic: str, as_of: AsOf | None = None) -> list[str]:
    """Where the segments committed in ``topic``'s chosen commits are, as other engines (Spark, Trino) name them:
    local paths for a folder store, ``s3://`` or ``gs://`` URLs otherwise (see ``ObjectStore.location``).

    Raises TopicNotFound, and StoreError subclasses when the index cannot be read.
    """
    return [archive.store.location(f.key) for f in committed_segments(archive, topic, as_of)]
