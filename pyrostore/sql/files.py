"""Which segment files a query reads: exactly the segments committed in one commit per partition.

The list always comes from the index (a commit's tree), never from a listing of the data folders, so segments a
crashed writer left behind are never counted, and lost ranges (which have no file) are skipped. ``--as-of``
picks, per partition, the newest commit made at or before a time, or one named commit, as
:mod:`pyrostore.index.as_of` decides for every reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyrostore.archive import Archive
from pyrostore.index import tree
from pyrostore.index.as_of import AsOf, commit_as_of, commit_millis, last_at_or_before, parse_as_of
from pyrostore.index.as_of import resolve as resolve_in_store

__all__ = ["AsOf", "SegmentFile", "commit_millis", "committed_segments", "last_at_or_before", "parse_as_of", "resolve"]


@dataclass(frozen=True)
class SegmentFile:
    """One committed segment: its partition and its key in the store."""

    partition: int
    key: str


def resolve(archive: Archive, as_of: AsOf | None) -> AsOf | None:
    """``as_of`` with the time of its named commit filled in (checking that the commit exists)."""
    return resolve_in_store(archive.store, as_of)


def committed_segments(archive: Archive, topic: str, as_of: AsOf | None = None) -> list[SegmentFile]:
    """The segments of every partition of ``topic`` in the commit chosen for it, in partition and offset order
    (``as_of`` as :func:`resolve` gives it).

    Raises TopicNotFound, and StoreError subclasses when the index cannot be read.
    """
    nodes = tree.NodeStore(archive.store, topic)
    found: list[SegmentFile] = []
    for partition in archive.partitions(topic):
        commit = commit_as_of(archive.store, topic, partition, as_of)
        if commit is None:
            continue
        found.extend(
            SegmentFile(partition, entry.segment_key(topic, partition))
            for entry in tree.iter_leaves(nodes, commit.root)
            if not entry.lost
        )
    return found
