"""Reading one partition's archive forward from an offset, with the next segments fetched in the background."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures

import pyarrow as pa

from pyrostore.archive import PartitionArchive
from pyrostore.index.node import Entry


class ArchiveCursor:
    """Hands out a partition's archived records in offset order, ``depth`` segments fetched ahead.

    Reading follows the commit the reader holds. It stops (:attr:`at_end`) at that commit's end, at a range
    recorded as lost, or at ``stop`` when given; the owner then looks up where to continue. Memory is bounded by
    ``depth`` decoded segments plus the one being handed out.
    """

    def __init__(
        self, reader: PartitionArchive, offset: int, executor: Executor, depth: int, stop: int | None = None
    ) -> None:
        self.reader = reader
        self.offset = offset  # the next offset to hand out (inside a segment: past the last record handed out)
        self.stop = stop  # where to stop even if the archive goes on (None: its end)
        self._executor = executor
        self._depth = depth
        self._entries: Iterator[Entry] = reader.segments(offset, stop)
        self._exhausted = False
        self._pending: deque[tuple[Entry, Future[list[pa.RecordBatch]]]] = deque()
        self._batches: deque[pa.RecordBatch] = deque()
        self._batches_end = offset
        self._fill()

    @property
    def at_end(self) -> bool:
        """Whether every record up to the commit's end, or up to a lost range, has been handed out."""
        return self._exhausted and not self._pending and not self._batches

    def ready(self) -> bool:
        """Whether :meth:`take` can hand out records without waiting."""
        return bool(self._batches) or bool(self._pending and self._pending[0][1].done())

    def wait(self, timeout: float) -> None:
        """Block until the next segment is decoded or ``timeout`` seconds pass."""
        if not self._batches and self._pending:
            wait_futures([self._pending[0][1]], timeout=timeout)

    def take(self, max_records: int) -> pa.RecordBatch | None:
        """Up to ``max_records`` records that are ready now, or None. Raises what reading the segment raised."""
        if not self._batches:
            if not (self._pending and self._pending[0][1].done()):
                return None
            entry, future = self._pending.popleft()
            self._batches.extend(batch for batch in future.result() if batch.num_rows)
            self._batches_end = entry.end if self.stop is None else min(entry.end, self.stop)
            self._fill()
            if not self._batches:  # the slice of this segment from the offset on was empty
                self.offset = self._batches_end
                return self.take(max_records)
        batch = self._batches.popleft()
        if batch.num_rows > max_records:
            self._batches.appendleft(batch.slice(max_records))
            batch = batch.slice(0, max_records)
        self.offset = batch.column("offset")[-1].as_py() + 1 if self._batches else self._batches_end
        return batch

    def close(self) -> None:
        """Drop what was fetched ahead (reads already running finish in the background)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._batches.clear()

    def _fill(self) -> None:
        while not self._exhausted and len(self._pending) < self._depth:
            entry = next(self._entries, None)
            if entry is None or entry.lost:
                self._exhausted = True
                return
            start = self.offset if self.offset > entry.base else None
            stop = self.stop if self.stop is not None and self.stop < entry.end else None
            self._pending.append((entry, self._executor.submit(self._read, entry, start, stop)))

    def _read(self, entry: Entry, start: int | None, stop: int | None) -> list[pa.RecordBatch]:
        return self.reader.read_segment(entry, start=start, stop=stop).to_batches()
