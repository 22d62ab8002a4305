"""Consumer groups' committed offsets, durable in the archive's store beside (never inside) the archived data.

One object per group (:func:`~pyrostore.layout.group_offsets_key`) holds all of its committed offsets as JSON:
offset, leader epoch, metadata and commit time per partition. A group's object is read on its first
OffsetFetch or OffsetCommit and then kept in memory; commits of one group are serialized (one lock per group)
and rewrite the whole object from the kept copy plus the new offsets, which are kept only once the store took
them. Store calls block, so they run on worker threads. Nothing is cached for a group that never committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from pyrostore.errors import FormatError, ObjectNotFound
from pyrostore.layout import group_offsets_key, groups_prefix, parse_group_offsets_key
from pyrostore.store import ObjectStore

FORMAT = 1
log = logging.getLogger("pyrostore.serve")

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Committed:
    """A committed offset, as OffsetCommit gave it."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    committed_at: int = 0  # milliseconds since the epoch


def encode(group: str, offsets: Mapping[Partition, Committed]) -> bytes:
    """The stored form of a group's offsets: JSON, topics and partitions in order."""
    topics: dict[str, dict[str, dict]] = {}
    for (topic, partition), committed in sorted(offsets.items()):
        topics.setdefault(topic, {})[str(partition)] = asdict(committed)
    return json.dumps({"format": FORMAT, "group": group, "topics": topics}, indent=1).encode()


def decode(data: bytes) -> tuple[str, dict[Partition, Committed]]:
    """The group id and offsets of a stored object. Raises FormatError."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise FormatError(f"unknown group offsets format {doc.get('format')!r}")
        offsets = {
            (topic, int(partition)): Committed(
                int(entry["offset"]), int(entry["leader_epoch"]), str(entry["metadata"]), int(entry["committed_at"])
            )
            for topic, partitions in doc["topics"].items()
            for partition, entry in partitions.items()
        }
        return str(doc["group"]), offsets
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FormatError(f"unreadable group offsets: {exc}") from exc


class GroupOffsets:
    """The committed offsets of every group, read from and written to ``store``."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._kept: dict[str, dict[Partition, Committed]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def fetch(self, group: str) -> Mapping[Partition, Committed]:
        """The group's committed offsets. Raises StoreError when they cannot be read."""
        kept = self._kept.get(group)
        if kept is not None:
            return kept
        async with self._lock(group):
            return await self._load(group)

    async def commit(self, group: str, offsets: Mapping[Partition, Committed]) -> None:
        """Store ``offsets`` (replacing those of the same partitions). Raises StoreError when the store refuses
        or cannot be reached; the offsets kept in memory are then unchanged."""
        async with self._lock(group):
            merged = {**await self._load(group), **offsets}
            await asyncio.to_thread(self.store.put, group_offsets_key(group), encode(group, merged))
            self._kept[group] = merged

    async def groups(self) -> set[str]:
        """Every group with committed offsets in the store or in memory. Raises StoreError."""
        return await asyncio.to_thread(self._list) | {group for group, kept in self._kept.items() if kept}

    def _lock(self, group: str) -> asyncio.Lock:
        lock = self._locks.get(group)
        if lock is None:
            lock = self._locks[group] = asyncio.Lock()
        return lock

    async def _load(self, group: str) -> dict[Partition, Committed]:
        """The kept offsets, read from the store the first time (the caller holds the group's lock)."""
        kept = self._kept.get(group)
        if kept is not None:
            return kept
        key = group_offsets_key(group)
        try:
            data = await asyncio.to_thread(self.store.get, key)
        except ObjectNotFound:
            return {}
        try:
            _, offsets = decode(data)
        except FormatError as exc:
            log.warning("group %s: the committed offsets in %s are unreadable, starting from none: %s", group, key, exc)
            offsets = {}
        self._kept[group] = offsets
        return offsets

    def _list(self) -> set[str]:
        found = set()
        for info in self.store.list(groups_prefix()):
            group = parse_group_offsets_key(info.key)
            if group is None and info.key.endswith("/offsets.json"):
                try:
                    group, _ = decode(self.store.get(info.key))
                except (ObjectNotFound, FormatError):
                    continue
            if group is not None:
                found.add(group)
        return found
