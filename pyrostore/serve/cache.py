"""Built record batches of recently served segments, shared by every connection.

A segment is read, checked and cut into batches once (the first fetch that needs it); later fetches of it, by
any client, reuse the batches. Bounded in bytes, least recently used first out; safe to use from many threads,
and a segment wanted by two fetches at once is built once.

Reads ahead: the first time a segment is served, the next ``read_ahead`` segments of its partition are built in
the background (a small pool of threads), so a consumer reading on finds them built. Reading and decoding a
segment and encoding its records run mostly outside the GIL, so that work overlaps with the event loop sending
earlier batches. Read-ahead stops while the cache is more than half full of segments read ahead and not served
yet; a segment that fails to build in the background is left to the fetch that wants it, which then fails the
usual way.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pyrostore.archive import PartitionArchive
from pyrostore.index.node import Entry
from pyrostore.serve.batches import Batch, segment_batches
from pyrostore.serve.config import Compression
from pyrostore.serve.decisions import first_batch

READ_AHEAD = 2  # segments of a partition built ahead of the one served
READ_AHEAD_THREADS = 2
# What a kept segment costs beyond its batches' bytes (its entry, key and tuples; each batch's object and offsets),
# measured with tracemalloc: counted, so that an archive of many small segments (rolled every second) is bounded
# by what it holds in memory, not by its record bytes alone.
SEGMENT_OVERHEAD = 1024
BATCH_OVERHEAD = 512
log = logging.getLogger("pyrostore.serve")
Key = tuple[str, int, int]


@dataclass(frozen=True)
class SegmentBatches:
    """The batches of one segment entry, in offset order."""

    entry: Entry
    batches: tuple[Batch, ...]
    ends: tuple[int, ...] = field(repr=False)
    size: int  # what keeping it costs: its batches' bytes and the objects around them

    @classmethod
    def of(cls, entry: Entry, batches: list[Batch]) -> SegmentBatches:
        """Wrap built batches."""
        size = SEGMENT_OVERHEAD + sum(len(b.data) + BATCH_OVERHEAD for b in batches)
        return cls(entry, tuple(batches), tuple(b.end for b in batches), size)

    def from_offset(self, offset: int) -> tuple[Batch, ...]:
        """The batch holding ``offset`` and every one after it."""
        return self.batches[first_batch(self.ends, offset) :]


class BatchCache:
    """Built batches by segment, at most ``max_bytes`` of them."""

    def __init__(
        self,
        max_bytes: int,
        batch_bytes: int,
        compression: Compression,
        read_ahead: int = READ_AHEAD,
        threads: int = READ_AHEAD_THREADS,
    ) -> None:
        self.max_bytes = max_bytes
        self.batch_bytes = batch_bytes
        self.compression = compression
        self.read_ahead = read_ahead
        self._lock = threading.Lock()
        self._built: OrderedDict[Key, SegmentBatches] = OrderedDict()
        self._building: dict[Key, Future[SegmentBatches]] = {}
        self._bytes = 0
        self._ahead: dict[Key, int] = {}  # built ahead and not served yet: their sizes
        self._ahead_bytes = 0
        self._last_size = 0
        self._pool: ThreadPoolExecutor | None = None
        if read_ahead > 0:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pyrostore-read-ahead")
            # Idle threads of a cache nobody holds any more (a stopped server) end with it.
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)

    def batches(self, reader: PartitionArchive, entry: Entry) -> SegmentBatches:
        """The batches of a segment entry of ``reader``'s partition, built now unless cached (or being built
        ahead: then waits for it). Raises what reading the segment raises (StoreError, IntegrityError)."""
        key = _key(entry)
        with self._lock:
            built = self._built.get(key)
            if built is not None:
                self._built.move_to_end(key)
                first = self._served(key)
            else:
                waiting = self._building.get(key)
                if waiting is None:
                    pending = self._building[key] = Future()
        if built is not None:
            if first:
                self._read_ahead(reader, entry)
            return built
        if waiting is None:
            built = self._build(reader, entry, key, pending)
            self._read_ahead(reader, entry)
            return built
        try:
            built = waiting.result()
        except CancelledError:  # a read-ahead dropped when the cache closed: build it here
            return self.batches(reader, entry)
        with self._lock:
            first = self._served(key)
        if first:
            self._read_ahead(reader, entry)
        return built

    def close(self) -> None:
        """Stop reading ahead (builds under way finish)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _build(
        self, reader: PartitionArchive, entry: Entry, key: Key, pending: Future[SegmentBatches], ahead: bool = False
    ) -> SegmentBatches:
        try:
            table = reader.read_segment(entry)
            built = SegmentBatches.of(
                entry, segment_batches(table, entry.base, entry.end, self.batch_bytes, self.compression)
            )
            del table
        except BaseException as exc:
            with self._lock:
                del self._building[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._building[key]
            self._remember(key, built)
            if ahead and key in self._built:
                self._ahead[key] = built.size
                self._ahead_bytes += built.size
        pending.set_result(built)
        return built

    def _read_ahead(self, reader: PartitionArchive, entry: Entry) -> None:
        """Start building the segments after ``entry`` that are neither built nor being built."""
        if self._pool is None:
            return
        try:
            following = list(itertools.islice(reader.segments(entry.end, None), self.read_ahead))
        except Exception:  # the fetch that gets there reports it
            log.debug("cannot read ahead after %d..%d", entry.base, entry.end, exc_info=True)
            return
        for later in following:
            if later.lost or later.base < entry.end:
                break
            key = _key(later)
            with self._lock:
                if key in self._built or key in self._building:
                    continue
                if self._ahead_bytes + self._bytes_in_flight() > self.max_bytes // 2:
                    return
                pending = self._building[key] = Future()
            try:
                job = self._pool.submit(self._build_ahead, reader, later, key, pending)
            except RuntimeError:  # closed
                self._drop(key, pending)
                return
            job.add_done_callback(functools.partial(self._dropped, key, pending))

    def _dropped(self, key: Key, pending: Future[SegmentBatches], job: Future[None]) -> None:
        if job.cancelled():
            self._drop(key, pending)

    def _drop(self, key: Key, pending: Future[SegmentBatches]) -> None:
        """Forget a read-ahead that will not run; whoever waits for it builds the segment itself."""
        with self._lock:
            if self._building.get(key) is pending:
                del self._building[key]
        pending.cancel()

    def _served(self, key: Key) -> bool:
        """Whether the segment was built ahead and is served for the first time now (then it is no longer
        ahead). Called holding the lock."""
        size = self._ahead.pop(key, None)
        if size is None:
            return False
        self._ahead_bytes -= size
        return True

    def _bytes_in_flight(self) -> int:
        # Builds under way, at the size of the last segment built: about right for one topic.
        return len(self._building) * self._last_size

    def _build_ahead(self, reader: PartitionArchive, entry: Entry, key: Key, pending: Future[SegmentBatches]) -> None:
        try:
            self._build(reader, entry, key, pending, ahead=True)
        except Exception:
            log.debug("reading ahead %d..%d failed", entry.base, entry.end, exc_info=True)

    def _remember(self, key: Key, built: SegmentBatches) -> None:
        self._last_size = built.size
        if built.size > self.max_bytes:
            return
        self._built[key] = built
        self._bytes += built.size
        while self._bytes > self.max_bytes:
            dropped_key, dropped = self._built.popitem(last=False)
            self._bytes -= dropped.size
            self._ahead_bytes -= self._ahead.pop(dropped_key, 0)


def _key(entry: Entry) -> Key:
    if entry.digest is None:
        raise ValueError(f"entry {entry.base}..{entry.end} is a lost range: it has no batches")
    return (entry.digest, entry.base, entry.end)
