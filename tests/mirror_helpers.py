"""Helpers for mirror tests: a store wrapper that counts requests (and can crash at the n-th write), archives
built with the index writer, and what an archive's commits reach."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from pyrostore.archive import Archive
from pyrostore.index import tree
from pyrostore.index.commits import iter_commits, read_head
from pyrostore.layout import node_key
from pyrostore.store import ObjectInfo, ObjectStore
from pyrostore.verify import verify_partition


class Crash(Exception):
    """Raised by :class:`CountingStore` in place of its ``crash_at``-th write: a process killed right there."""


class CountingStore:
    """Wraps a real store, counting requests by kind (``get``, ``stat``, ``list``, ``put``, ``create``) and the keys
    read and written; with ``crash_at`` the n-th write (1-based) raises :class:`Crash` instead of writing."""

    def __init__(self, inner: ObjectStore, crash_at: int | None = None) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.calls: Counter[str] = Counter()
        self.read_keys: list[str] = []
        self.written_keys: list[str] = []

    @property
    def url(self) -> str:
        return self.inner.url

    def location(self, key: str) -> str:
        return self.inner.location(key)

    def get(self, key: str) -> bytes:
        self.calls["get"] += 1
        self.read_keys.append(key)
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.calls["get"] += 1
        self.read_keys.append(key)
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes) -> None:
        self._write("put", key)
        self.inner.put(key, data)

    def create(self, key: str, data: bytes) -> None:
        self._write("create", key)
        self.inner.create(key, data)

    def stat(self, key: str) -> ObjectInfo:
        self.calls["stat"] += 1
        return self.inner.stat(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        self.calls["list"] += 1
        return self.inner.list(prefix, start_after)

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()

    def _write(self, kind: str, key: str) -> None:
        writes = self.calls["put"] + self.calls["create"] + 1
        if self.crash_at is not None and writes >= self.crash_at:
            raise Crash(f"killed before write {writes} ({key})")
        self.calls[kind] += 1
        self.written_keys.append(key)


def problems(store: ObjectStore) -> list[str]:
    """Every problem ``pyrostore verify`` would report for the archive in ``store`` (partitions from the logs)."""
    found = []
    for topic, partitions in Archive(store).logged_partitions().items():
        nodes = tree.NodeStore(store, topic)
        found += [str(p) for partition in partitions for p in verify_partition(store, nodes, topic, partition).problems]
    return found


def roots(store: ObjectStore, topic: str, partitions: range) -> dict[int, str | None]:
    """Each partition's newest root digest (None: no commit or an empty tree)."""
    found = {}
    for partition in partitions:
        head = read_head(store, topic, partition)
        found[partition] = head.root.digest if head is not None and head.root is not None else None
    return found


def reachable(store: ObjectStore, topic: str, partition: int, after: int | None = None) -> set[str]:
    """Keys of every node and segment that the partition's commits (after seq ``after``, when given) reach."""
    nodes = tree.NodeStore(store, topic)
    live: set[str] = set()
    commits = iter_commits(store, topic, partition, after)
    for visit in tree.walk(nodes, (commit.root for commit in commits)):
        assert visit.error is None, visit.error
        if visit.first and visit.entry.digest is not None:
            live.add(node_key(topic, visit.entry.digest))
            live.update(e.segment_key(topic, partition) for e in visit.leaves if not e.lost)
    return live
