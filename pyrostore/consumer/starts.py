"""Where a partition starts reading, looked up off the application's thread.

``assign()``, ``seek()`` and ``resume()`` return at once, as confluent_kafka's do; what the start depends on
(the archive's extent, Kafka's watermarks, the committed offset) is looked up by :class:`StartFinder` on a
worker thread, and the pure decisions (:mod:`pyrostore.consumer.decisions`) turn the answers into a source.
Kafka is asked only when the answer depends on it. When Kafka does not answer, a start the archive can serve
goes ahead (``archive-preferred`` reads history with Kafka down); a start that needs Kafka waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pyrostore.archive import Archive, PartitionArchive
from pyrostore.consumer.config import ConsumerSettings
from pyrostore.consumer.decisions import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    OFFSET_STORED,
    Decision,
    Extent,
    ReadMode,
    Source,
    decide,
    reset_offset,
    resolve,
)
from pyrostore.errors import TopicNotFound
from pyrostore.kafka import QuietLogger

LOOKUP_TIMEOUT = 5.0  # seconds one Kafka request may take before it is retried (or, if optional, skipped)
_RETRY_SECONDS = 1.0


class KafkaLookups:
    """Watermarks and committed offsets through an admin client of its own: on the inner consumer's connection
    these requests wait behind its long-polling fetches (up to ``fetch.wait.max.ms``)."""

    def __init__(self, conf: Mapping[str, Any], group_id: str | None) -> None:
        self._admin = AdminClient(dict(conf), logger=QuietLogger())
        self._group_id = group_id
        self._known: set[str] = set()

    def watermarks(self, topic: str, partition: int) -> tuple[int, int] | None:
        """Kafka's log start and high watermark; None when Kafka has no such partition. Raises KafkaException."""
        if topic not in self._known:
            # A client's first ListOffsets sometimes waits 1 to 3 s for the partition's leader (librdkafka 2.16);
            # with the topic's metadata asked first, it does not.
            self._admin.list_topics(topic, timeout=LOOKUP_TIMEOUT)
            self._known.add(topic)
        tp = TopicPartition(topic, partition)
        answers = []
        for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
            futures = self._admin.list_offsets({tp: spec}, request_timeout=LOOKUP_TIMEOUT)
            try:
                answers.append(futures[tp].result().offset)
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    return None
                raise
        return answers[0], answers[1]

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset, None without a group or a commit. Raises KafkaException."""
        if self._group_id is None:
            return None
        request = ConsumerGroupTopicPartitions(self._group_id, [TopicPartition(topic, partition)])
        futures = self._admin.list_consumer_group_offsets([request], request_timeout=LOOKUP_TIMEOUT)
        found = futures[self._group_id].result().topic_partitions or []
        offsets = [tp.offset for tp in found if tp.offset >= 0]
        return offsets[0] if offsets else None


@dataclass(frozen=True)
class Start:
    """Where a partition reads from: ``decision`` (None: no committed offset and ``auto.offset.reset=error``),
    the archive reader it was made from, and for a failed Kafka fetch the event to report if it is a hole."""

    decision: Decision | None
    reader: PartitionArchive | None
    event: Message | None = None


@dataclass(frozen=True)
class StartRequest:
    """Look up where ``offset`` of a partition is read from; ``failed`` is the inner consumer's out-of-range
    event when Kafka refused the offset."""

    topic: str
    partition: int
    offset: int
    generation: int
    failed: Message | None = None


class StartFinder:
    """Runs start look-ups on worker threads; each answer is a future of :class:`Start`."""

    def __init__(self, settings: ConsumerSettings, archive: Archive, local_offsets: dict[tuple[str, int], int]):
        self._settings = settings
        self._mode = settings.mode
        self._archive = archive
        self._local_offsets = local_offsets  # archive-only mode: offsets stored without a group
        self._kafka = (
            None
            if settings.mode is ReadMode.ARCHIVE_ONLY
            else KafkaLookups(settings.admin, settings.kafka.get("group.id"))
        )
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pyrostore-start")
        self._closed = threading.Event()

    def submit(self, request: StartRequest, current: Callable[[], int]) -> Future[Start]:
        """Look ``request`` up; ``current()`` is the partition's generation now (a changed one stops retries)."""
        return self._pool.submit(self._find, request, lambda: self._closed.is_set() or current() != request.generation)

    def close(self) -> None:
        """Stop retrying; look-ups running finish in the background."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _find(self, request: StartRequest, stale: Callable[[], bool]) -> Start:
        reader = self._reader(request.topic, request.partition)
        extent = Extent(reader.start_offset, reader.next_offset) if reader is not None else Extent(None, None)
        offset, reset = request.offset, self._settings.auto_offset_reset
        if request.failed is not None:
            return self._after_failed_fetch(request, reader, extent, stale)
        if offset in (OFFSET_STORED, OFFSET_INVALID):
            committed = self._committed(request, stale)
            if committed is None and reset == "error":
                return Start(None, reader)
            offset = committed if committed is not None else OFFSET_STORED
        if offset >= 0:
            extent = replace(extent, lost=_lost_at(reader, offset))
            decision = decide(offset, extent, self._mode)
            if self._mode is ReadMode.KAFKA_PREFERRED or (
                self._mode is ReadMode.ARCHIVE_PREFERRED and decision.source is not Source.ARCHIVE
            ):
                decision = decide(offset, self._with_kafka(request, extent, stale), self._mode)
            return Start(decision, reader)
        # Logical: the beginning can do without Kafka's answer when Kafka is down; the end cannot.
        logical = reset_offset(reset) if offset == OFFSET_STORED else offset
        optional = logical == OFFSET_BEGINNING
        extent = self._with_kafka(request, extent, stale, optional=optional and extent.archive_start is not None)
        offset = resolve(offset, extent, self._mode, None, reset)
        return Start(decide(offset, replace(extent, lost=_lost_at(reader, offset)), self._mode), reader)

    def _after_failed_fetch(
        self, request: StartRequest, reader: PartitionArchive | None, extent: Extent, stale: Callable[[], bool]
    ) -> Start:
        """Kafka does not hold the offset it was asked for. Below its log start the archive may hold it (or it is
        a hole); past its end ``auto.offset.reset`` applies, as it would with Kafka alone."""
        offset = request.offset
        extent = self._with_kafka(request, replace(extent, lost=_lost_at(reader, offset)), stale)
        if extent.kafka_high is None or offset <= extent.kafka_high:
            return Start(decide(offset, extent, self._mode), reader)
        if self._settings.auto_offset_reset == "error":
            return Start(Decision(Source.HOLE, offset), reader, event=request.failed)
        offset = resolve(OFFSET_STORED, extent, self._mode, None, self._settings.auto_offset_reset)
        return Start(decide(offset, replace(extent, lost=_lost_at(reader, offset)), self._mode), reader)

    def _reader(self, topic: str, partition: int) -> PartitionArchive | None:
        try:
            return self._archive.partition(topic, partition)
        except TopicNotFound:
            return None

    def _with_kafka(
        self, request: StartRequest, extent: Extent, stale: Callable[[], bool], optional: bool = False
    ) -> Extent:
        """``extent`` with Kafka's watermarks, asked until Kafka answers (once, when ``optional``)."""
        kafka = self._kafka
        if kafka is None:
            return extent
        marks = self._ask(lambda: kafka.watermarks(request.topic, request.partition), stale, optional)
        if marks is None or marks is _UNANSWERED:
            return extent
        return replace(extent, kafka_low=marks[0], kafka_high=marks[1])

    def _committed(self, request: StartRequest, stale: Callable[[], bool]) -> int | None:
        kafka = self._kafka
        if kafka is None:
            offset = self._local_offsets.get((request.topic, request.partition), -1)
            return offset if offset >= 0 else None
        found = self._ask(lambda: kafka.committed(request.topic, request.partition), stale, optional=False)
        return None if found is _UNANSWERED else found

    def _ask(self, question: Callable[[], Any], stale: Callable[[], bool], optional: bool) -> Any:
        """Kafka's answer; retried while Kafka does not answer unless ``optional`` (then _UNANSWERED)."""
        while True:
            try:
                return question()
            except KafkaException:
                if optional or stale():
                    return _UNANSWERED
                self._closed.wait(_RETRY_SECONDS)


_UNANSWERED: Any = object()


def _lost_at(reader: PartitionArchive | None, offset: int) -> tuple[tuple[int, int], ...]:
    """The range recorded as lost that holds ``offset``, if any, as :class:`Extent` takes it."""
    if reader is None or not reader.start_offset <= offset < reader.next_offset:
        return ()
    entry = reader.find(offset)
    return ((entry.base, entry.end),) if entry is not None and entry.lost else ()
