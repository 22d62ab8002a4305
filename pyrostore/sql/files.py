"""Which segment files a query reads: exactly the segments committed in one commit per partition.

The list always comes from the index (a commit's tree), never from a listing of the data folders, so segments a
crashed writer left behind are never counted, and lost ranges (which have no file) are skipped. ``--as-of``
picks, per partition, the newest commit made at or before a time, or one named commit: commits are never
overwritten and every past root stays readable, so the archive reads as it was then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pyrostore.archive import Archive
from pyrostore.errors import FormatError, InvalidSetting, ObjectNotFound, TopicNotFound
from pyrostore.index import tree
from pyrostore.index.commits import Commit, read_commit, read_head
from pyrostore.layout import check_topic, commit_prefix, parse_commit_seq
from pyrostore.settings import parse_time

_COMMIT = re.compile(r"(?P<topic>[^/@]+)/(?P<partition>\d+)@(?P<seq>\d+)")


@dataclass(frozen=True)
class AsOf:
    """When to read the archive: at a time (ms since the epoch), or at one partition's commit ``seq`` (every
    other partition as of that commit's time)."""

    millis: int | None = None
    topic: str | None = None
    partition: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class SegmentFile:
    """One committed segment: its partition and its key in the store."""

    partition: int
    key: str


def parse_as_of(text: str) -> AsOf:
    """``--as-of``: a time (ms since the epoch or ISO 8601) or a commit ``TOPIC/PARTITION@SEQ`` (as ``pyrostore ls``
    counts commits, the first is 0). Raises InvalidSetting."""
    match = _COMMIT.fullmatch(text.strip())
    if match:
        return AsOf(topic=check_topic(match["topic"]), partition=int(match["partition"]), seq=int(match["seq"]))
    try:
        return AsOf(millis=parse_time(text))
    except InvalidSetting:
        raise InvalidSetting(
            f"--as-of: {text!r} is neither a time (ms or ISO 8601) nor a commit TOPIC/PARTITION@SEQ"
        ) from None


def commit_millis(commit: Commit) -> int:
    """When a commit was made, in ms since the epoch."""
    return int(datetime.fromisoformat(commit.committed_at).timestamp() * 1000)


def last_at_or_before(seqs: Sequence[int], millis: int, time_of: Callable[[int], int]) -> int | None:
    """The last of the ascending ``seqs`` whose commit time (``time_of(seq)``) is at or before ``millis``, found
    by bisection (commit times rise with ``seq``: each commit follows its parent), or None if none is."""
    low, high = 0, len(seqs)
    while low < high:
        middle = (low + high) // 2
        if time_of(seqs[middle]) <= millis:
            low = middle + 1
        else:
            high = middle
    return seqs[low - 1] if low else None


def commit_as_of(archive: Archive, topic: str, partition: int, as_of: AsOf | None) -> Commit | None:
    """The commit a query reads for one partition: the newest, the named one, or the newest made at or before the
    time (None: the partition had no commit yet)."""
    store = archive.store
    if as_of is None:
        return read_head(store, topic, partition)
    if as_of.seq is not None and (as_of.topic, as_of.partition) == (topic, partition):
        return read_commit(store, topic, partition, as_of.seq)
    millis = as_of.millis if as_of.millis is not None else commit_millis(pinned_commit(archive, as_of))
    seqs = [seq for info in store.list(commit_prefix(topic, partition)) if (seq := _seq(info.key)) is not None]
    seq = last_at_or_before(seqs, millis, lambda s: commit_millis(read_commit(store, topic, partition, s)))
    return None if seq is None else read_commit(store, topic, partition, seq)


def _seq(key: str) -> int | None:
    """A commit key's sequence number; None for anything else in a log folder (ignored, as ``verify`` does)."""
    try:
        return parse_commit_seq(key)
    except FormatError:
        return None


def pinned_commit(archive: Archive, as_of: AsOf) -> Commit:
    """The commit named by ``--as-of TOPIC/PARTITION@SEQ``. Raises TopicNotFound when there is no such commit."""
    assert as_of.topic is not None and as_of.partition is not None and as_of.seq is not None
    try:
        return read_commit(archive.store, as_of.topic, as_of.partition, as_of.seq)
    except ObjectNotFound:
        raise TopicNotFound(
            f"{archive.store.url} holds no commit {as_of.topic}/{as_of.partition}@{as_of.seq}"
        ) from None


def resolve(archive: Archive, as_of: AsOf | None) -> AsOf | None:
    """``as_of`` with the time of its named commit filled in (checking that the commit exists)."""
    if as_of is None or as_of.millis is not None:
        return as_of
    return replace(as_of, millis=commit_millis(pinned_commit(archive, as_of)))


def committed_segments(archive: Archive, topic: str, as_of: AsOf | None = None) -> list[SegmentFile]:
    """The segments of every partition of ``topic`` in the commit chosen for it, in partition and offset order
    (``as_of`` as :func:`resolve` gives it).

    Raises TopicNotFound, and StoreError subclasses when the index cannot be read.
    """
    nodes = tree.NodeStore(archive.store, topic)
    found: list[SegmentFile] = []
    for partition in archive.partitions(topic):
        commit = commit_as_of(archive, topic, partition, as_of)
        if commit is None:
            continue
        found.extend(
            SegmentFile(partition, entry.segment_key(topic, partition))
            for entry in tree.iter_leaves(nodes, commit.root)
            if not entry.lost
        )
    return found
