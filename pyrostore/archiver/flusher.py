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
    """The outcome of one flush: the archive's new next offset, or the error that stopped the flusher (then
    ``next_offset`` is -1)."""

    partition: int
    next_offset: int
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: BaseException | None = None


class InFlight:
    """Bytes of segments handed to flushers and not committed yet, across one archiver's partitions.

    Each flusher adds a segment's bytes when it is submitted and releases them when its commit ends, whether
    it succeeded or not. The reading thread waits here for room (back-pressure) and wakes as soon as a release
    makes some. A forgotten holder stops counting, whatever it still holds: the archiver gave it up.
    """

    def __init__(self) -> None:
        self._held: dict[object, int] = {}  # holder -> its bytes
        self._changed = threading.Condition()

    @property
    def bytes(self) -> int:
        """The bytes all holders hold."""
        with self._changed:
            return self._total()

    def add(self, holder: object, size: int) -> None:
        """Count ``size`` more bytes held by ``holder``."""
        with self._changed:
            self._held[holder] = self._held.get(holder, 0) + size

    def release(self, holder: object, size: int) -> None:
        """``holder`` no longer holds ``size`` of its bytes (ignored once it is forgotten)."""
        with self._changed:
            if holder in self._held:
                self._held[holder] -= size
                self._changed.notify_all()

    def forget(self, holder: object) -> None:
        """Stop counting ``holder``'s bytes, now and later."""
        with self._changed:
            if self._held.pop(holder, 0):
                self._changed.notify_all()

    def wait_at_most(self, limit: int, timeout: float | None) -> bool:
        """Wait until at most ``limit`` bytes are held; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._total() <= limit, timeout)

    def _total(self) -> int:
        return sum(self._held.values())


class Flusher:
    """A thread committing one partition's segments in order; results go to a shared queue.

    The segments it holds, queued or committing, count in ``in_flight`` until their commit ends.
    """

    def __init__(
        self, writer: PartitionWriter, results: Callable[[Flushed], None], in_flight: InFlight, depth: int = 1
    ) -> None:
        self.writer = writer
        self._report = results
        self._in_flight = in_flight
        self._queue: queue.Queue[tuple[MessageColumns, int] | None] = queue.Queue(maxsize=depth)
        self.failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"flusher-{writer.topic}-{writer.partition}", daemon=True
        )
        self._thread.start()

    def submit(self, records: MessageColumns, next_offset: int, timeout: float | None = None) -> bool:
        """Queue a segment's records for commit; blocks while ``depth`` segments are waiting, for at most
        ``timeout`` seconds. Whether it was queued (not after a failure, nor when the time ran out)."""
        if self.failed is not None:
            return False
        self._in_flight.add(self, records.approx_bytes)
        try:
            self._queue.put((records, next_offset), timeout=timeout)
        except queue.Full:
            self._in_flight.release(self, records.approx_bytes)
            return False
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Commit what is queued, stop the thread, and return whether it finished within ``timeout``.

        Either way its segments stop counting in ``in_flight``: the archiver must not wait for a partition it
        gave up, even while a commit that outlived ``timeout`` still holds them.
        """
        started = time.monotonic()
        try:
            self._queue.put(None, timeout=timeout)
            self._thread.join(None if timeout is None else max(0.0, timeout - (time.monotonic() - started)))
        except queue.Full:  # still committing the last segment and one more is queued: give up on both
            pass
        self._in_flight.forget(self)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            records, next_offset = item
            try:
                if self.failed is None:  # after a failure nothing more may be committed: drain
                    self._report(self._flush(records, next_offset))
            except BaseException as exc:  # reported to the reading thread, which decides
                self.failed = exc
                self._report(Flushed(self.writer.partition, -1, error=exc))
            finally:
                self._in_flight.release(self, records.approx_bytes)
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
