"""The offsets the application has consumed: stored for commits on delivery, and counted by source."""

from __future__ import annotations

from collections.abc import Container

from confluent_kafka import TopicPartition

from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.partition import Key


class OffsetBook:
    """Stores the offset after each record handed out (archived ones too) when ``enable.auto.offset.store`` is
    on, handing them to the inner consumer in bulk; in archive-only mode keeps them here (there is no group)."""

    def __init__(self, auto_store: bool, inner: InnerConsumer | None) -> None:
        self.auto_store = auto_store
        self.counts = {"archive": 0, "kafka": 0}
        self.local: dict[Key, int] = {}  # archive-only mode: the stored offsets
        self._inner = inner
        self._unstored: dict[Key, int] = {}  # stored on delivery, not yet handed to the inner consumer

    def delivered(self, key: Key, position: int, records: int, archived: bool) -> None:
        """``records`` records up to ``position`` (exclusive) were handed out from one side."""
        self.counts["archive" if archived else "kafka"] += records
        if self.auto_store:
            self._unstored[key] = position

    def store(self, offsets: list[TopicPartition]) -> None:
        """Store offsets given by the application (after those stored on delivery)."""
        self.flush()
        if self._inner is None:
            self.local.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
        else:
            self._inner.store_offsets(offsets)

    def flush(self, assigned: Container[Key] | None = None) -> None:
        """Hand the offsets stored on delivery to the inner consumer (only of ``assigned`` partitions, if given)."""
        if not self._unstored:
            return
        pending = [
            TopicPartition(t, p, o) for (t, p), o in self._unstored.items() if assigned is None or (t, p) in assigned
        ]
        self._unstored.clear()
        if self._inner is None:
            self.local.update({(tp.topic, tp.partition): tp.offset for tp in pending})
        else:
            self._inner.store_offsets(pending)

    def forget(self, key: Key) -> None:
        """Drop what was stored on delivery for an unassigned partition and not handed on."""
        self._unstored.pop(key, None)
