"""Reading a partition as it was: the commit in force at a time, or one named commit.

Commits are never overwritten and every past root stays readable, so "as of" is only a choice of commit. A time
picks, per partition, the newest commit made at or before it; a commit ``TOPIC/PARTITION@SEQ`` pins that
partition to exactly that commit and every other partition to the time it was made. ``pyrostore sql``, ``cat``
and :func:`~pyrostore.archive.open_archive` all choose through this module. The choices are pure functions
(:func:`parse_as_of`, :func:`last_at_or_before`, :func:`commit_millis`); the rest reads the commit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pyrostore.errors import FormatError, InvalidSetting, ObjectNotFound, TopicNotFound
from pyrostore.index.commits import Commit, read_commit, read_head
from pyrostore.layout import check_topic, commit_prefix, parse_commit_seq
from pyrostore.settings import parse_time
from pyrostore.store import ObjectStore

_COMMIT = re.compile(r"(?P<topic>[^/@]+)/(?P<partition>\d+)@(?P<seq>\d+)")


@dataclass(frozen=True)
class AsOf:
    """When to read the archive: at a time (ms since the epoch), or at one partition's commit ``seq`` (every
    other partition as of that commit's time)."""

    millis: int | None = None
    topic: str | None = None
    partition: int | None = None
    seq: int | None = None

    def describe(self) -> str:
        """How error messages name the moment: ``as of t/0@3`` or ``as of 2026-11-24T12:00:00.000+00:00``."""
        if self.seq is not None:
            return f"as of {self.topic}/{self.partition}@{self.seq}"
        assert self.millis is not None
        return f"as of {datetime.fromtimestamp(self.millis / 1000, UTC).isoformat(timespec='milliseconds')}"


def parse_as_of(text: str) -> AsOf:
    """``--as-of``: a time (ms since the epoch or ISO 8601) or a commit ``TOPIC/PARTITION@SEQ`` (as ``pyrostore log``
    numbers commits, the first is 0). Raises InvalidSetting."""
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


def pins(as_of: AsOf, topic: str, partition: int) -> bool:
    """Whether ``as_of`` names a commit of exactly this partition."""
    return as_of.seq is not None and (as_of.topic, as_of.partition) == (topic, partition)


def commit_as_of(store: ObjectStore, topic: str, partition: int, as_of: AsOf | None) -> Commit | None:
    """The commit to read for one partition: the newest (``as_of`` None), the named one, or the newest made at or
    before the time (None: the partition had no commit yet). Costs one listing and about log2(commits) reads."""
    if as_of is None:
        return read_head(store, topic, partition)
    if pins(as_of, topic, partition):
        assert as_of.seq is not None
        return read_commit(store, topic, partition, as_of.seq)
    millis = as_of.millis if as_of.millis is not None else commit_millis(pinned_commit(store, as_of))
    seqs = [seq for info in store.list(commit_prefix(topic, partition)) if (seq := _seq(info.key)) is not None]
    seq = last_at_or_before(seqs, millis, lambda s: commit_millis(read_commit(store, topic, partition, s)))
    return None if seq is None else read_commit(store, topic, partition, seq)


def _seq(key: str) -> int | None:
    """A commit key's sequence number; None for anything else in a log folder (ignored, as ``verify`` does)."""
    try:
        return parse_commit_seq(key)
    except FormatError:
        return None


def pinned_commit(store: ObjectStore, as_of: AsOf) -> Commit:
    """The commit named by ``--as-of TOPIC/PARTITION@SEQ``. Raises TopicNotFound when there is no such commit."""
    assert as_of.topic is not None and as_of.partition is not None and as_of.seq is not None
    try:
        return read_commit(store, as_of.topic, as_of.partition, as_of.seq)
    except ObjectNotFound:
        raise TopicNotFound(f"{store.url} holds no commit {as_of.topic}/{as_of.partition}@{as_of.seq}") from None


def resolve(store: ObjectStore, as_of: AsOf | None) -> AsOf | None:
    """``as_of`` with the time of its named commit filled in (checking that the commit exists), so that other
    partitions need not read it again. Raises TopicNotFound."""
    if as_of is None or as_of.millis is not None:
        return as_of
    return replace(as_of, millis=commit_millis(pinned_commit(store, as_of)))


def had_commit(store: ObjectStore, topic: str, partition: int, as_of: AsOf) -> bool:
    """Whether the partition had a commit at the moment ``as_of`` (resolved: :func:`resolve`) names: its first
    commit, which every later one follows, was made by then. One read; a pinned partition always had."""
    if pins(as_of, topic, partition):
        return True
    assert as_of.millis is not None
    try:
        first = read_commit(store, topic, partition, 0)
    except ObjectNotFound:
        return False
    return commit_millis(first) <= as_of.millis
