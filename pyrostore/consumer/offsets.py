"""The offsets the application has consumed: stored for commits, and counted by source."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import TopicPartition

from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.partition import Key, PartitionState


class OffsetBook:
    """Stores the offset after the last record handed out of each partition (archived ones too) when
    ``enable.auto.offset.store`` is on, handing them to the inner consumer in bulk; in archive-only mode keeps
    them here (there is no group). Each record only moves its partition's state; this reads the states."""

    def __init__(self, auto_store: bool, inner: InnerConsumer | None) -> None:
        self.auto_store = auto_store
        self.local: dict[Key, int] = {}  # archive-only mode: the stored offsets
        self._inner = inner
        self._stored: dict[Key, int] = {}  # what was last stored on delivery, per partition
        self._unassigned = {"archive": 0, "kafka": 0}  # records of partitions no longer assigned

    def counts(self, states: Iterable[PartitionState]) -> dict[str, int]:
        """How many records were handed out from each side."""
        found = dict(self._unassigned)
        for state in states:
            found["archive"] += state.from_archive
            found["kafka"] += state.from_kafka
        return found

    def store(self, offsets: list[TopicPartition], states: Iterable[PartitionState]) -> None:
        """Store offsets given by the application (after those stored on delivery)."""
        self.flush(states)
        self._put(offsets)

    def flush(self, states: Iterable[PartitionState]) -> None:
        """Store, for each of the assigned ``states``, the offset after its last record handed out, if it moved."""
        if not self.auto_store:
            return
        pending = []
        for state in states:
            if state.handed_out >= 0 and state.handed_out != self._stored.get(state.key, -1):
                self._stored[state.key] = state.handed_out
                pending.append(TopicPartition(state.topic, state.partition, state.handed_out))
        if pending:
            self._put(pending)

    def forget(self, state: PartitionState) -> None:
        """The partition was unassigned: keep its counts, forget what was stored of it."""
        self._unassigned["archive"] += state.from_archive
        self._unassigned["kafka"] += state.from_kafka
        self._stored.pop(state.key, None)

    def _put(self, offsets: list[TopicPartition]) -> None:
        if self._inner is None:
            self.local.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
        else:
            self._inner.store_offsets(offsets)
