"""A store that only reads: the store of an archive opened as of a past time or commit.

Whatever writes an archive (a writer, ``gc``) writes through its store, so refusing here stops every write,
whoever makes it, before anything reaches the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

from pyrostore.errors import ReadOnlyArchive
from pyrostore.store.base import ObjectInfo, ObjectStore


class ReadOnlyStore:
    """Reads through to ``inner``; ``put``, ``create`` and ``delete`` raise ReadOnlyArchive naming ``why``."""

    def __init__(self, inner: ObjectStore, why: str) -> None:
        self.inner = inner
        self.why = why

    @property
    def url(self) -> str:
        """The inner store's URL."""
        return self.inner.url

    def location(self, key: str) -> str:
        """Where the object is, as the inner store says."""
        return self.inner.location(key)

    def get(self, key: str) -> bytes:
        """The whole object, from the inner store."""
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Part of the object, from the inner store."""
        return self.inner.get_range(key, start, length)

    def stat(self, key: str) -> ObjectInfo:
        """The object's size and time, from the inner store."""
        return self.inner.stat(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """The inner store's listing."""
        return self.inner.list(prefix, start_after)

    def put(self, key: str, data: bytes) -> NoReturn:
        """Refused: raises ReadOnlyArchive."""
        self._refuse("put", key)

    def create(self, key: str, data: bytes) -> NoReturn:
        """Refused: raises ReadOnlyArchive."""
        self._refuse("create", key)

    def delete(self, key: str) -> NoReturn:
        """Refused: raises ReadOnlyArchive."""
        self._refuse("delete", key)

    def close(self) -> None:
        """Release the inner store's connections."""
        self.inner.close()

    def _refuse(self, operation: str, key: str) -> NoReturn:
        raise ReadOnlyArchive(f"cannot {operation} {self.url}/{key}: the archive is opened {self.why}, read-only")
