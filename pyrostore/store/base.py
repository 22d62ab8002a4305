"""The object store contract: the few operations the archive needs, and nothing else.

Keys are ``/``-separated paths relative to the store's root (the URL's bucket and prefix); a store never
touches anything outside its root. Every method wraps backend failures in a :class:`~pyrostore.errors.StoreError`
subclass whose message names the operation, the store and the key.

Transient failures (unreachable endpoint, throttling, server errors) are retried with capped exponential
backoff, each retry logged at WARNING on logger ``pyrostore.store``, until the store's ``retry_deadline``
option (seconds) runs out; then the last failure is raised, as StoreUnreachable if the endpoint could not be
reached. Without the option a store retries for ever (what long-running archivers and replays want).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a stat says about one object."""

    key: str
    size: int
    modified: datetime  # timezone-aware, UTC


@runtime_checkable
class ObjectStore(Protocol):
    """A bucket-like store of immutable-by-convention objects."""

    @property
    def url(self) -> str:
        """The URL this store was opened with, without credentials."""
        ...

    def location(self, key: str) -> str:
        """Where the object is, as engines (DuckDB, Arrow, Spark) name it: an absolute path for a local folder,
        ``s3://bucket/prefix/key``, ``gs://bucket/prefix/key`` (not percent-encoded).

        Sends nothing and does not check that the object exists. Raises ValueError for an invalid key.
        """
        ...

    def get(self, key: str) -> bytes:
        """Return the whole object.

        Raises ObjectNotFound, AccessDenied, BucketNotFound, StoreUnreachable, StoreError.
        """
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start`` (fewer at the object's end). Raises as :meth:`get`."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write the object, replacing any existing one.

        Raises AccessDenied, BucketNotFound, StoreUnreachable, StoreError.
        """
        ...

    def create(self, key: str, data: bytes) -> None:
        """Write the object only if no object has that key; atomic against concurrent writers.

        Raises ObjectExists when the key is taken (exactly one of many racing creators succeeds), and
        AccessDenied, BucketNotFound, StoreUnreachable, StoreError as :meth:`put`.
        """
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size and modification time. Raises ObjectNotFound and as :meth:`get`."""
        ...

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order, after ``start_after``.

        Raises AccessDenied, BucketNotFound, StoreUnreachable, StoreError (possibly after yielding some objects).
        """
        ...

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error.

        Raises AccessDenied, StoreUnreachable, StoreError.
        """
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
