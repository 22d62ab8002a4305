"""One partition's background flusher: turns buffered records into a segment and commits it to the archive.

Each partition has its own flusher thread so that its commits stay in offset order while other partitions
(and the Kafka-reading thread) go on. Parquet encoding, zstd and SHA-256 release the GIL, so this work
overlaps with reading messages; building the Arrow columns holds it, briefly. The queue is short: when the
store is slower than Kafka, the reading thread waits (backpressure) instead of buffering without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyrostore.index.writer import PartitionWriter
from pyrostore.messages import MessageColumns
from pyrostore.segment import encode_segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Flushed:
    """The outcome of one flush: the archive's new next offset, or the error that stopped the flusher."""

    partition: int
    next_offset: int | None
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: BaseException | None = None


class Flusher:
    """A thread committing one partition's segments in order; results go to a shared queue."""

    def __init__(self, writer: PartitionWriter, results: Callable[[Flushed], None], depth: int = 1) -> None:
        self.writer = writer
        self._report = results
        self._pending = 0  # approximate bytes submitted and not yet committed
        self._pending_lock = threading.Lock()
        self._queue: queue.Queue[tuple[MessageColumns, int] | None] = queue.Queue(maxsize=depth)
        self.failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"flusher-{writer.topic}-{writer.partition}", daemon=True
        )
        self._thread.start()

    def submit(self, records: MessageColumns, next_offset: int) -> None:
        """Queue a segment's records for commit; blocks while ``depth`` segments are waiting."""
        if self.failed is None:
            with self._pending_lock:
                self._pending += records.approx_bytes
            self._queue.put((records, next_offset))

    @property
    def pending_bytes(self) -> int:
        """Bytes handed to this flusher and not committed yet (for the archiver's memory budget)."""
        return self._pending

    def close(self, timeout: float | None = None) -> bool:
        """Commit what is queued, stop the thread, and return whether it finished within ``timeout``."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            records, next_offset = item
            try:
                if self.failed is None:  # after a failure nothing more may be committed: drain
                    self._report(self._flush(records, next_offset))
            except BaseException as exc:  # reported to the reading thread, which decides
                self.failed = exc
                self._report(Flushed(self.writer.partition, None, error=exc))
            finally:
                with self._pending_lock:
                    self._pending -= records.approx_bytes
        self.writer.close()

    def _flush(self, records: MessageColumns, next_offset: int) -> Flushed:
        started = time.monotonic()
        segment = encode_segment(
            records.to_table(),
            topic=self.writer.topic,
            partition=self.writer.partition,
            next_offset=next_offset,
        )
        commit = self.writer.append([segment])
        return Flushed(
            self.writer.partition,
            commit.next_offset,
            records=segment.record_count,
            bytes=segment.size,
            seconds=time.monotonic() - started,
        )
