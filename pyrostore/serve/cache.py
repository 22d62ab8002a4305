"""Built record batches of recently served segments, shared by every connection.

A segment is read, checked and cut into batches once (the first fetch that needs it); later fetches of it, by
any client, reuse the batches. Bounded in bytes, least recently used first out; safe to use from many threads,
and a segment wanted by two fetches at once is built once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

from pyrostore.archive import PartitionArchive
from pyrostore.index.node import Entry
from pyrostore.serve.batches import Batch, segment_batches
from pyrostore.serve.config import Compression
from pyrostore.serve.decisions import first_batch


@dataclass(frozen=True)
class SegmentBatches:
    """The batches of one segment entry, in offset order."""

    entry: Entry
    batches: tuple[Batch, ...]
    ends: tuple[int, ...] = field(repr=False)
    size: int

    @classmethod
    def of(cls, entry: Entry, batches: list[Batch]) -> SegmentBatches:
        """Wrap built batches."""
        return cls(entry, tuple(batches), tuple(b.end for b in batches), sum(len(b.data) for b in batches))

    def from_offset(self, offset: int) -> tuple[Batch, ...]:
        """The batch holding ``offset`` and every one after it."""
        return self.batches[first_batch(self.ends, offset) :]


class BatchCache:
    """Built batches by segment, at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int, batch_bytes: int, compression: Compression) -> None:
        self.max_bytes = max_bytes
        self.batch_bytes = batch_bytes
        self.compression = compression
        self._lock = threading.Lock()
        self._built: OrderedDict[tuple[str, int, int], SegmentBatches] = OrderedDict()
        self._building: dict[tuple[str, int, int], Future[SegmentBatches]] = {}
        self._bytes = 0

    def batches(self, reader: PartitionArchive, entry: Entry) -> SegmentBatches:
        """The batches of a segment entry of ``reader``'s partition, built now unless cached. Raises what reading
        the segment raises (StoreError, IntegrityError)."""
        if entry.digest is None:
            raise ValueError(f"entry {entry.base}..{entry.end} is a lost range: it has no batches")
        key = (entry.digest, entry.base, entry.end)
        with self._lock:
            cached = self._built.get(key)
            if cached is not None:
                self._built.move_to_end(key)
                return cached
            pending = self._building.get(key)
            owner = pending is None
            if pending is None:
                pending = self._building[key] = Future()
        if not owner:
            return pending.result()
        try:
            table = reader.read_segment(entry)
            built = SegmentBatches.of(
                entry, segment_batches(table, entry.base, entry.end, self.batch_bytes, self.compression)
            )
        except BaseException as exc:
            with self._lock:
                del self._building[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._building[key]
            self._remember(key, built)
        pending.set_result(built)
        return built

    def _remember(self, key: tuple[str, int, int], built: SegmentBatches) -> None:
        if built.size > self.max_bytes:
            return
        self._built[key] = built
        self._bytes += built.size
        while self._bytes > self.max_bytes:
            _, dropped = self._built.popitem(last=False)
            self._bytes -= dropped.size
