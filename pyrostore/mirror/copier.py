"""Moving objects from the source store to the target: digest-checked reads, rate-limited writes, counts.

Every byte the mirror writes passes through here, so this is where the rate limit and the copied-object counts
live. A segment is checked against the digest its index entry names before it is written; a damaged one is
never copied. At most ``PARALLEL_COPIES`` segments are copied at once across all partitions being mirrored.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyrostore.errors import IntegrityError, ObjectNotFound
from pyrostore.replay.ratelimit import TokenBucket
from pyrostore.store import ObjectStore

PARALLEL_COPIES = 4  # segments copied at once: each is a read, a digest and a write of up to tens of MB
# Called after each object written to the target, with its key and size.
OnCopied = Callable[[str, int], None]


class Copier:
    """Reads from ``source``, writes to ``target``; at most ``rate_limit`` bytes per second written (None: no
    limit). Thread-safe: segments are copied by several threads at once."""

    def __init__(
        self,
        source: ObjectStore,
        target: ObjectStore,
        rate_limit: float | None = None,
        on_copied: OnCopied | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.on_copied = on_copied
        self._bucket = TokenBucket(rate_limit, rate_limit) if rate_limit else None  # bursts of one second
        self._lock = threading.Lock()
        self._copying = threading.BoundedSemaphore(PARALLEL_COPIES)
        self.objects = 0
        self.bytes = 0

    def target_has(self, key: str) -> bool:
        """Whether the target holds an object under ``key``."""
        try:
            self.target.stat(key)
        except ObjectNotFound:
            return False
        return True

    def read(self, key: str) -> bytes:
        """The source's object. Raises ObjectNotFound (as an IntegrityError: something names it) and StoreError."""
        try:
            return self.source.get(key)
        except ObjectNotFound as exc:
            raise IntegrityError(f"{self.source.url}/{key} is referenced by the source's index but missing") from exc

    def read_segment(self, key: str, digest: str, size: int) -> bytes:
        """The source's segment, after checking its bytes against ``digest`` and ``size``. Raises IntegrityError
        naming the object when they differ."""
        data = self.read(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest or len(data) != size:
            raise IntegrityError(
                f"segment {self.source.url}/{key} is damaged: {len(data)} bytes with digest {actual}, its index "
                f"entry says {size} bytes with digest {digest}; nothing of it was copied"
            )
        return data

    @contextmanager
    def copy_slot(self) -> Iterator[None]:
        """Hold one of the ``PARALLEL_COPIES`` slots for copying a segment (waits for one to be free)."""
        with self._copying:
            yield

    def write(self, key: str, data: bytes) -> None:
        """Put ``data`` under ``key`` in the target (idempotent: content-addressed keys)."""
        self._throttle(len(data))
        self.target.put(key, data)
        self._count(key, len(data))

    def create(self, key: str, data: bytes) -> None:
        """Create ``data`` under ``key`` in the target, create-only. Raises ObjectExists."""
        self._throttle(len(data))
        self.target.create(key, data)
        self._count(key, len(data))

    def _throttle(self, size: int) -> None:
        if self._bucket is None:
            return
        with self._lock:
            wait = self._bucket.take(size, time.monotonic())
        if wait > 0:
            time.sleep(wait)

    def _count(self, key: str, size: int) -> None:
        with self._lock:
            self.objects += 1
            self.bytes += size
        if self.on_copied is not None:
            self.on_copied(key, size)
