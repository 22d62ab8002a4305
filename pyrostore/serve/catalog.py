"""The served topics, their partitions and each partition's newest commit, re-read as they go stale.

Store reads block, so they run on worker threads; a partition (or the topic list) being re-read is re-read
once however many requests want it. A snapshot is one commit's view of a partition (a consistent tree):
handlers read everything of one request from the snapshot they took. Index nodes are read through one
:class:`~pyrostore.index.node_cache.NodeCache` shared by every served topic.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pyrostore.archive import Archive, PartitionArchive
from pyrostore.archiver.identity import read_descriptor
from pyrostore.errors import FormatError, IntegrityError, ObjectNotFound, StoreError, TopicNotFound
from pyrostore.index.node_cache import NodeCache
from pyrostore.index.tree import NodeStore

log = logging.getLogger("pyrostore.serve")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class ServedTopic:
    """A topic as clients see it: its id and partitions ``0..count-1``."""

    name: str
    topic_id: uuid.UUID
    partitions: int


@dataclass(frozen=True)
class Snapshot:
    """A partition as of one commit; ``reader`` is None while the archive has no commit for it (an empty
    partition at offset 0)."""

    topic: str
    partition: int
    reader: PartitionArchive | None
    taken: float  # time.monotonic()

    @property
    def start(self) -> int:
        """The first offset served."""
        return self.reader.start_offset if self.reader else 0

    @property
    def next_offset(self) -> int:
        """The high watermark: the offset after the last archived position."""
        return self.reader.next_offset if self.reader else 0

    @property
    def max_timestamp(self) -> int | None:
        """The largest record timestamp archived, or None."""
        root = self.reader.commit.root if self.reader else None
        return root.max_ts if root else None


def topic_id(archive: Archive, topic: str) -> uuid.UUID:
    """The topic's Kafka id from its archived descriptor; for an archive without one (or an unreadable one), an id
    derived from the store URL and the topic's name, stable across restarts."""
    try:
        text = read_descriptor(archive.store, topic).topic_id
        return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ObjectNotFound, IntegrityError, FormatError, binascii.Error, ValueError):
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{archive.store.url}/{topic}")


class _SingleFlight:
    """At most one call per key at a time; callers for a key already being computed wait for that result."""

    def __init__(self) -> None:
        self._running: dict[object, asyncio.Future] = {}

    async def run(self, key: object, call: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(call())
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)


class Catalog:
    """The topics served from ``archive``: those named, or every archived topic when ``names`` is empty."""

    def __init__(
        self,
        archive: Archive,
        names: tuple[str, ...],
        refresh_interval: float,
        topics_interval: float,
        nodes: NodeCache | None = None,
    ) -> None:
        self.archive = archive
        self.nodes = nodes if nodes is not None else NodeCache()
        self._node_stores: dict[str, NodeStore] = {}
        self.names = names
        self.refresh_interval = refresh_interval
        self.topics_interval = topics_interval
        self._topics: dict[str, ServedTopic] = {}
        self._by_id: dict[uuid.UUID, ServedTopic] = {}
        self._listed = float("-inf")
        self._snapshots: dict[tuple[str, int], Snapshot] = {}
        self._flights = _SingleFlight()

    def load(self) -> dict[str, ServedTopic]:
        """List the topics and partitions now (blocking). Raises TopicNotFound for a named topic the archive does
        not hold, StoreError when the store cannot be read."""
        names = self.names or tuple(self.archive.topics())
        topics = {}
        for name in names:
            try:
                count = max(self.archive.partitions(name)) + 1
            except TopicNotFound:
                if self.names:
                    raise
                continue  # listed a moment ago, gone now: not served
            known = self._topics.get(name)
            identity = known.topic_id if known else topic_id(self.archive, name)
            topics[name] = ServedTopic(name, identity, count)
        self._topics = topics
        self._by_id = {t.topic_id: t for t in topics.values()}
        self._listed = time.monotonic()
        return topics

    async def topics(self) -> dict[str, ServedTopic]:
        """The served topics, re-listed when older than ``topics_interval`` (the last list while the store fails)."""
        if time.monotonic() - self._listed > self.topics_interval:
            try:
                await self._flights.run("topics", lambda: asyncio.to_thread(self.load))
            except (StoreError, IntegrityError, FormatError, TopicNotFound) as exc:
                log.warning("listing the served topics failed; serving the last list: %s", exc)
                self._listed = time.monotonic()  # try again after another interval, not at every request
        return self._topics

    def topic(self, name: str) -> ServedTopic | None:
        """A served topic by name (as last listed)."""
        return self._topics.get(name)

    def topic_by_id(self, identity: uuid.UUID) -> ServedTopic | None:
        """A served topic by id (as last listed)."""
        return self._by_id.get(identity)

    def cached(self, topic: str, partition: int) -> Snapshot | None:
        """The last snapshot taken of a partition, however old."""
        return self._snapshots.get((topic, partition))

    async def snapshot(self, topic: str, partition: int, max_age: float) -> Snapshot:
        """A snapshot of a served partition no older than ``max_age`` seconds (re-read from the store when the
        last one is older). Raises StoreError when the store cannot be read."""
        key = (topic, partition)
        last = self._snapshots.get(key)
        if last is not None and time.monotonic() - last.taken <= max_age:
            return last
        return await self._flights.run(key, lambda: asyncio.to_thread(self._read, topic, partition))

    def _read(self, topic: str, partition: int) -> Snapshot:
        taken = time.monotonic()
        nodes = self._node_stores.get(topic)
        if nodes is None:  # two threads may both make one: the cache they read through is shared anyway
            nodes = self._node_stores[topic] = NodeStore(self.archive.store, topic, self.nodes)
        newest = PartitionArchive(self.archive.store, topic, partition, nodes, self.archive.as_of)
        reader = newest if newest.refresh() is not None else None  # None: no commit yet
        last = self._snapshots.get((topic, partition))
        if last is not None and last.reader is not None and reader is not None and reader.commit == last.reader.commit:
            reader = last.reader  # the same commit: keep the reader already shared
        snapshot = Snapshot(topic, partition, reader, taken)
        self._snapshots[(topic, partition)] = snapshot
        return snapshot
