"""The read side of an archive: its topics and partitions, lookups, and range reads.

A :class:`PartitionArchive` reads one commit's tree (a consistent snapshot) until :meth:`refresh` moves it to
the newest commit. An archive opened ``as_of`` a time or a commit reads every partition as it was then (see
:mod:`pyrostore.index.as_of`) and refuses every write. Records come back as Arrow record batches (for analytics
and bulk copy) or as :class:`ArchivedRecord` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pyrostore.errors import IntegrityError, ObjectNotFound, OffsetOutOfRange, TopicNotFound
from pyrostore.index import tree
from pyrostore.index.as_of import AsOf, commit_as_of, had_commit, parse_as_of, resolve
from pyrostore.index.commits import Commit
from pyrostore.index.node import Entry
from pyrostore.layout import ROOT_PREFIX, check_topic, head_prefix, log_prefix
from pyrostore.segment import decode_segment, header_lists
from pyrostore.store import ObjectStore, open_existing_store
from pyrostore.store.read_only import ReadOnlyStore


@dataclass(frozen=True)
class ArchivedRecord:
    """One archived Kafka record, as it was read from the topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    leader_epoch: int | None


def open_archive(url: str, as_of: AsOf | str | None = None, **options: Any) -> Archive:
    """Open the archive at a store URL (a folder, ``file://``, ``s3://`` or ``gs://``) with store options; with
    ``as_of`` (an :class:`~pyrostore.index.as_of.AsOf`, or text as ``--as-of`` takes it: a time in ms or ISO 8601,
    or a commit ``TOPIC/PARTITION@SEQ``), read-only and as it was then.

    Opening never creates anything: a local folder that does not exist raises BucketNotFound when first read.
    Raises InvalidStoreURL for a bad URL or option, InvalidSetting for a bad ``as_of``.
    """
    when = parse_as_of(as_of) if isinstance(as_of, str) else as_of
    return Archive(open_existing_store(url, **options), as_of=when)


class Archive:
    """An archive in one object store: many topics, each with partitions.

    With ``as_of``, every partition reads the commit it had then (or exactly the named commit), and a partition
    with no commit then is absent, as a partition not archived yet is; ``store`` is then read-only (every write
    raises ReadOnlyArchive), so no writer, nor ``gc``, can write through such an archive.
    """

    def __init__(self, store: ObjectStore, as_of: AsOf | None = None) -> None:
        self._as_of = as_of
        self.store: ObjectStore = store if as_of is None else ReadOnlyStore(store, as_of.describe())
        self._nodes: dict[str, tree.NodeStore] = {}

    @cached_property
    def as_of(self) -> AsOf | None:
        """The moment read (a named commit's time filled in on first use), or None for the newest commits.
        Raises TopicNotFound for a named commit that does not exist."""
        return resolve(self.store, self._as_of)

    def topics(self) -> list[str]:
        """Names of the archived topics (as of :attr:`as_of`: those with a partition archived then), sorted."""
        found = sorted({info.key.split("/")[-2] for info in self.store.list(head_prefix())})
        if self.as_of is None:
            return found
        return [topic for topic in found if self._partitions(topic)]

    def partitions(self, topic: str) -> list[int]:
        """The archived partitions of ``topic`` (as of :attr:`as_of`: those with a commit then), sorted. Raises
        TopicNotFound."""
        found = self._partitions(check_topic(topic))
        if not found:
            raise TopicNotFound(f"{self.store.url} holds no archive of topic {topic!r}{self._when}")
        return found

    def _partitions(self, topic: str) -> list[int]:
        hints = self.store.list(head_prefix(topic))
        found = sorted(int(info.key.rsplit("/", 1)[-1].removesuffix(".json")) for info in hints)
        as_of = self.as_of
        if as_of is None:
            return found
        return [p for p in found if had_commit(self.store, topic, p, as_of)]

    @property
    def _when(self) -> str:
        return "" if self.as_of is None else f" {self.as_of.describe()}"

    def logged_partitions(self, topic: str | None = None) -> dict[str, list[int]]:
        """Partitions that have commits, per topic (all topics, or one), found by listing the commit logs.

        Slower than :meth:`partitions` (it lists every commit) but independent of the head hints: what
        ``verify`` and ``gc`` rely on. Objects in the log folders that are not commits are ignored here.
        """
        found: dict[str, set[int]] = {}
        for info in self.store.list(log_prefix(topic) if topic else f"{ROOT_PREFIX}log/"):
            parts = info.key.removeprefix(f"{ROOT_PREFIX}log/").split("/")
            if len(parts) == 3 and parts[1].isdigit():
                found.setdefault(parts[0], set()).add(int(parts[1]))
        return {name: sorted(partitions) for name, partitions in sorted(found.items())}

    def partition(self, topic: str, partition: int) -> PartitionArchive:
        """One partition at its newest commit (or the one :attr:`as_of` chooses). Raises TopicNotFound."""
        check_topic(topic)
        if topic not in self._nodes:
            self._nodes[topic] = tree.NodeStore(self.store, topic)
        reader = PartitionArchive(self.store, topic, partition, self._nodes[topic], self.as_of)
        if reader.refresh() is None:
            raise TopicNotFound(f"{self.store.url} holds no archive of {topic}/{partition}{self._when}")
        return reader

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()


class PartitionArchive:
    """One partition's archive as of one commit (a snapshot), with lookups and reads.

    ``as_of`` (resolved, as :attr:`Archive.as_of` gives it) holds the partition at the commit it had then.
    """

    def __init__(
        self, store: ObjectStore, topic: str, partition: int, nodes: tree.NodeStore, as_of: AsOf | None = None
    ) -> None:
        self.store = store
        self.topic = topic
        self.partition = partition
        self.nodes = nodes
        self.as_of = as_of
        self._commit: Commit | None = None

    def refresh(self) -> Commit | None:
        """Move to the newest commit (as of ``as_of``: the one chosen then) and return it (None if the partition
        has no archive, or had none then)."""
        self._commit = commit_as_of(self.store, self.topic, self.partition, self.as_of)
        return self._commit

    @property
    def commit(self) -> Commit:
        """The commit being read."""
        if self._commit is None:
            raise TopicNotFound(f"{self.store.url} holds no archive of {self.topic}/{self.partition}")
        return self._commit

    @property
    def start_offset(self) -> int:
        """The first offset the archive covers."""
        return self.commit.start_offset

    @property
    def next_offset(self) -> int:
        """The offset after the last archived position: where Kafka takes over."""
        return self.commit.next_offset

    def find(self, offset: int) -> Entry | None:
        """The segment (or lost range) entry covering ``offset``, or None outside the archive."""
        return tree.find_offset(self.nodes, self.commit.root, offset)

    def segments(self, start: int | None = None, stop: int | None = None) -> Iterator[Entry]:
        """Leaf entries overlapping ``[start, stop)`` in offset order."""
        return tree.iter_leaves(self.nodes, self.commit.root, start if start is not None else 0, stop)

    def offset_for_time(self, timestamp: int) -> int | None:
        """Kafka's ``offsetsForTimes``: the earliest offset whose timestamp is >= ``timestamp`` (ms), or None."""
        entry = tree.find_time(self.nodes, self.commit.root, timestamp)
        if entry is None:
            return None
        table = self.read_segment(entry, columns=["offset", "timestamp"])
        late_enough = pc.greater_equal(table.column("timestamp").cast(pa.int64()), timestamp)
        first = pc.index(late_enough, True).as_py()
        if first < 0:
            raise IntegrityError(f"segment {self._segment_name(entry)} holds no timestamp its index promised")
        return table.column("offset")[first].as_py()

    def read_segment(
        self,
        entry: Entry,
        columns: list[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> pa.Table:
        """The records of one segment entry (optionally some columns and an offset range), digest checked."""
        name = self._segment_name(entry)
        try:
            data = self.store.get(name)
        except ObjectNotFound as exc:
            raise IntegrityError(f"segment {self.store.url}/{name} is referenced by the index but missing") from exc
        return decode_segment(
            data,
            expected_digest=entry.digest,
            name=f"{self.store.url}/{name}",
            columns=columns,
            offset_from=start,
            offset_to=stop,
        )

    def read_batches(
        self,
        start: int | None = None,
        stop: int | None = None,
        columns: list[str] | None = None,
        skip_lost: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Records in ``[start, stop)`` as Arrow record batches, segment by segment.

        Raises OffsetOutOfRange when the range starts before the archive, or crosses a lost range (unless
        ``skip_lost``).
        """
        begin = self.start_offset if start is None else start
        if begin < self.start_offset:
            raise OffsetOutOfRange(
                f"{self.topic}/{self.partition}: offset {begin} is before the archive's start {self.start_offset}"
            )
        for entry in self.segments(begin, stop):
            if entry.lost:
                if skip_lost:
                    continue
                raise OffsetOutOfRange(
                    f"{self.topic}/{self.partition}: offsets {entry.base}..{entry.end - 1} were lost before they "
                    "were archived"
                )
            table = self.read_segment(entry, columns, begin if begin > entry.base else None, stop)
            yield from table.to_batches()

    def read(
        self, start: int | None = None, stop: int | None = None, skip_lost: bool = False
    ) -> Iterator[ArchivedRecord]:
        """Records in ``[start, stop)`` one by one, in offset order."""
        for batch in self.read_batches(start, stop, skip_lost=skip_lost):
            yield from records_of(batch, self.topic, self.partition)

    def _segment_name(self, entry: Entry) -> str:
        return entry.segment_key(self.topic, self.partition)


def batch_columns(batch: pa.RecordBatch) -> tuple[list, ...]:
    """A segment batch's columns as Python lists, each decoded once: offsets, timestamps (ms), timestamp types,
    keys, values, headers (lists of (key, value) pairs) and leader epochs."""
    offsets, types, keys, values, epochs = (
        batch.column(name).to_pylist() for name in ("offset", "timestamp_type", "key", "value", "leader_epoch")
    )
    timestamps = batch.column("timestamp").cast(pa.int64()).to_pylist()
    pairs = header_lists(batch.column("headers"))
    if pairs is None:
        pairs = [[] for _ in offsets]
    return offsets, timestamps, types, keys, values, pairs, epochs


def records_of(batch: pa.RecordBatch, topic: str, partition: int) -> Iterator[ArchivedRecord]:
    """The records of a segment batch as :class:`ArchivedRecord` objects."""
    for offset, timestamp, timestamp_type, key, value, headers, epoch in zip(*batch_columns(batch), strict=True):
        yield ArchivedRecord(topic, partition, offset, timestamp, timestamp_type, key, value, headers, epoch)
