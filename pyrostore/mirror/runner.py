"""Mirroring a whole archive: every topic (or the chosen ones), their descriptors, then every partition.

A pass copies what the target lacks and returns; following, passes repeat every interval until stopped.
Partitions are mirrored several at once (their commit chains are independent), so one partition's small
writes (nodes, commits, hints) overlap another's segment copies; the copier bounds segment copies overall.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyrostore.archive import Archive
from pyrostore.errors import (
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    TopicIdentityMismatch,
    TopicNotFound,
)
from pyrostore.layout import check_topic, topic_key
from pyrostore.mirror.copier import Copier
from pyrostore.mirror.metrics import MirrorMetrics, kind_of
from pyrostore.mirror.partition import OnCommit, PartitionState, mirror_partition
from pyrostore.store import ObjectStore

log = logging.getLogger("pyrostore.mirror")
PARALLEL_PARTITIONS = 4


@dataclass(frozen=True)
class MirrorOptions:
    """What to mirror and how fast: topics (empty: every topic the source holds), bytes per second (None: no
    limit)."""

    topics: tuple[str, ...] = ()
    rate_limit: float | None = None


class Mirror:
    """Makes ``target`` an exact, independently readable copy of ``source``'s archive, pass after pass."""

    def __init__(
        self,
        source: ObjectStore,
        target: ObjectStore,
        options: MirrorOptions | None = None,
        metrics: MirrorMetrics | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self.options = options or MirrorOptions()
        for topic in self.options.topics:
            check_topic(topic)
        self.metrics = metrics
        self.on_commit = on_commit
        self.copier = Copier(source, target, self.options.rate_limit, self._copied)
        self._described: set[str] = set()
        self._counted: dict[tuple[str, int], int] = {}  # commits already counted in the metrics, per pass

    def run_once(self, stop: threading.Event | None = None) -> list[PartitionState]:
        """One pass over every topic and partition; returns each partition's state (those reached before a
        stop). Raises ArchivesDiverged, IntegrityError, TopicIdentityMismatch, TopicNotFound, StoreError."""
        stop = stop or threading.Event()
        source = Archive(self.copier.source)
        work: list[tuple[str, int]] = []
        for topic in self.options.topics or tuple(source.topics()):
            partitions = source.partitions(topic)  # TopicNotFound for a chosen topic the source lacks
            self._copy_descriptor(topic)
            work += [(topic, partition) for partition in partitions]
        failed = threading.Event()  # one partition's error ends the pass: the others stop at their next commit

        def stopping() -> bool:
            return stop.is_set() or failed.is_set()

        def one(topic: str, partition: int) -> PartitionState | None:
            if stopping():
                return None
            self._counted.pop((topic, partition), None)
            try:
                state = mirror_partition(self.copier, topic, partition, stopping, self._on_commit)
            except BaseException:
                failed.set()
                raise
            if state.copied:
                log.info("%s/%d: copied %d commit(s), now at %s", topic, partition, state.copied, state.target_seq)
            return state

        with ThreadPoolExecutor(PARALLEL_PARTITIONS, thread_name_prefix="pyrostore-mirror-partition") as pool:
            futures = [pool.submit(one, topic, partition) for topic, partition in work]
        return [state for state in (future.result() for future in futures) if state is not None]

    def follow(self, interval: float, stop: threading.Event, on_error: Callable[[Exception], None]) -> None:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set. A failure that another pass may
        cure (a store error, a topic not archived yet) goes to ``on_error``; damage and divergence raise."""
        while not stop.is_set():
            try:
                self.run_once(stop)
            except (StoreError, TopicNotFound) as exc:
                on_error(exc)
            if stop.wait(interval):
                return

    def _copy_descriptor(self, topic: str) -> None:
        """Copy the topic's descriptor (written once) unless the target has one; a different one created
        meanwhile is refused."""
        if topic in self._described:
            return
        key = topic_key(topic)
        if self.copier.target_has(key):  # written once: a different one would show as diverged commits
            self._described.add(topic)
            return
        try:
            data = self.copier.source.get(key)
        except ObjectNotFound:
            return  # an archive written without an archiver (the index writer alone) has none
        ours = _identity(data, f"{self.copier.source.url}/{key}")
        try:
            self.copier.create(key, data)
        except ObjectExists:
            theirs = _identity(self.copier.target.get(key), f"{self.copier.target.url}/{key}")
            if theirs != ours:
                raise TopicIdentityMismatch(
                    f"topic {topic!r}: the target's descriptor names cluster {theirs[0]} topic id {theirs[1]}, the "
                    f"source's cluster {ours[0]} topic id {ours[1]}; refusing to mirror into it"
                ) from None
        self._described.add(topic)

    def _copied(self, key: str, size: int) -> None:
        if self.metrics is not None:
            kind = kind_of(key)
            self.metrics.objects.labels(kind).inc()
            self.metrics.bytes.labels(kind).inc(size)

    def _on_commit(self, state: PartitionState) -> None:
        if self.metrics is not None:
            labels = (state.topic, str(state.partition))
            where = (state.topic, state.partition)
            self.metrics.commits.labels(*labels).inc(state.copied - self._counted.get(where, 0))
            self._counted[where] = state.copied
            self.metrics.lag_commits.labels(*labels).set(state.pending)
            self.metrics.lag_seconds.labels(*labels).set(state.lag_seconds)
        if self.on_commit is not None:
            self.on_commit(state)


def _identity(data: bytes, name: str) -> tuple[str, str]:
    """The (cluster id, topic id) a topic descriptor records. Raises IntegrityError."""
    try:
        doc = json.loads(data)
        return str(doc["cluster_id"]), str(doc["topic_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"topic descriptor {name} is not valid ({exc})") from exc
