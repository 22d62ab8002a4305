"""The writing side of one partition's archive: claim it, append segments, record lost ranges.

The order of writes makes a crash harmless at any instant: segments first, then the new tree nodes, then the
create-only commit that makes them visible. Objects written before a crash but never committed are garbage
that ``gc`` removes; readers never see them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from pyrostore.errors import CommitConflict, FencedError, ObjectExists, StoreError
from pyrostore.index import tree
from pyrostore.index.commits import Commit, create_commit, now, read_head, write_head
from pyrostore.index.node import Entry
from pyrostore.layout import check_topic, segment_key
from pyrostore.segment import EncodedSegment
from pyrostore.store import ObjectStore

log = logging.getLogger(__name__)


class PartitionWriter:
    """Appends to one partition's archive as its only writer; a writer with a newer epoch fences this one.

    Call :meth:`claim` first. Not thread-safe: one writer object per partition and thread.
    """

    def __init__(
        self,
        store: ObjectStore,
        topic: str,
        partition: int,
        *,
        writer_id: str | None = None,
        fanout: int = tree.DEFAULT_FANOUT,
        nodes: tree.NodeStore | None = None,
        hint_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.topic = check_topic(topic)
        self.partition = partition
        self.writer_id = writer_id or uuid.uuid4().hex
        self.fanout = fanout
        self.nodes = nodes or tree.NodeStore(store, topic)
        self.hint_interval = hint_interval
        self._head: Commit | None = None
        self._hint_written_at = 0.0
        self._hint_seq = -1

    @property
    def head(self) -> Commit:
        """The newest commit this writer knows of (its own, after a successful append)."""
        if self._head is None:
            raise RuntimeError(f"{self._where}: claim() the partition before writing")
        return self._head

    @property
    def epoch(self) -> int:
        """This writer's epoch: the one its claim committed."""
        return self.head.writer_epoch

    @property
    def _where(self) -> str:
        return f"{self.store.url} {self.topic}/{self.partition}"

    def claim(self, start_offset: int = 0) -> Commit:
        """Take the partition over by committing a claim with the next epoch; return the claim.

        ``start_offset`` is where a partition never archived before begins. Older writers are fenced from
        now on. Raises StoreError.
        """
        while True:
            head = read_head(self.store, self.topic, self.partition)
            if head is None:
                claim = Commit(
                    topic=self.topic,
                    partition=self.partition,
                    seq=0,
                    root=None,
                    parent_root=None,
                    start_offset=start_offset,
                    next_offset=start_offset,
                    writer_epoch=1,
                    writer_id=self.writer_id,
                    committed_at=now(),
                )
            else:
                claim = head.successor(head.root, head.next_offset, head.writer_epoch + 1, self.writer_id)
            try:
                create_commit(self.store, claim)
            except ObjectExists:
                continue  # someone committed meanwhile: claim above their commit
            self._head = claim
            write_head(self.store, claim)  # not best effort: readers find partitions through their hints
            self._hint_written_at, self._hint_seq = time.monotonic(), claim.seq
            log.info("claimed %s at epoch %d, next offset %d", self._where, claim.writer_epoch, claim.next_offset)
            return claim

    def append(self, segments: Sequence[EncodedSegment]) -> Commit:
        """Archive ``segments`` (in offset order, starting at or after the head's ``next_offset``).

        Raises FencedError when a newer writer claimed the partition, CommitConflict when a writer of the same
        epoch archived part of these offsets with other segments, ValueError for segments out of order, and
        StoreError.
        """
        if not segments:
            return self.head
        for segment in segments:
            self.store.put(segment_key(self.topic, self.partition, segment.base_offset, segment.digest), segment.data)
        return self._commit(lambda start: _segment_entries(segments, start))

    def record_lost(self, end_offset: int) -> Commit:
        """Record that offsets from the head's ``next_offset`` up to ``end_offset`` were lost before archiving.

        Readers see the range as lost, never as a silent jump. Raises as :meth:`append`.
        """

        def entries(start: int) -> list[Entry]:
            if end_offset <= start:
                return []
            return [Entry(start, end_offset, None, None, 0, 0, 0, None, None, None)]

        return self._commit(entries)

    def close(self) -> None:
        """Bring the head hint up to date (best effort) before the writer goes away."""
        if self._head is not None:
            self._update_hint(force=True)

    def _commit(self, entries_from) -> Commit:
        """Commit the entries ``entries_from(next_offset)`` makes, re-basing them if a twin writer got ahead."""
        head = self.head
        while True:
            entries = entries_from(head.next_offset)
            if not entries:
                return head
            root = tree.append(self.nodes, head.root, entries, self.fanout)
            commit = head.successor(root, entries[-1].end, head.writer_epoch, self.writer_id)
            try:
                create_commit(self.store, commit)
            except ObjectExists:
                head = self._newest_of_my_epoch()
                continue
            self._head = commit
            self._update_hint()
            return commit

    def _newest_of_my_epoch(self) -> Commit:
        newest = read_head(self.store, self.topic, self.partition)
        if newest is None or newest.writer_epoch != self.head.writer_epoch:
            epoch = newest.writer_epoch if newest else "none"
            raise FencedError(
                f"{self._where}: writer {self.writer_id} (epoch {self.head.writer_epoch}) was fenced by writer "
                f"{newest.writer_id if newest else '?'} (epoch {epoch}); it must stop writing this partition"
            )
        self._head = newest
        return newest

    def _update_hint(self, force: bool = False) -> None:
        head = self.head
        if head.seq == self._hint_seq or (not force and time.monotonic() - self._hint_written_at < self.hint_interval):
            return
        try:
            write_head(self.store, head)
        except StoreError as exc:  # only a hint: readers list past a stale one
            log.warning("could not update the head hint of %s: %s", self._where, exc)
            return
        self._hint_written_at, self._hint_seq = time.monotonic(), head.seq


def _segment_entries(segments: Sequence[EncodedSegment], start: int) -> list[Entry]:
    """Leaf entries for ``segments`` tiling the offsets from ``start``; segments wholly below it are dropped.

    Raises CommitConflict for a segment that straddles ``start`` (part of it is archived already) and
    ValueError for segments out of order.
    """
    entries: list[Entry] = []
    base = start
    for segment in segments:
        if segment.last_offset < base and not entries:
            continue  # archived already (by a twin writer)
        if segment.base_offset < base:
            if entries:
                raise ValueError(f"segment at {segment.base_offset} overlaps the one before it (ends {base})")
            raise CommitConflict(
                f"segment {segment.base_offset}..{segment.last_offset} straddles the archive's end {base}"
            )
        entries.append(
            Entry(
                base=base,
                end=segment.next_offset,
                first=segment.base_offset,
                last=segment.last_offset,
                records=segment.record_count,
                segments=1,
                bytes=segment.size,
                min_ts=segment.min_timestamp,
                max_ts=segment.max_timestamp,
                digest=segment.digest,
            )
        )
        base = segment.next_offset
    return entries
