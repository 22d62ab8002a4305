"""Questions the application asks about partitions, answered over the archive and Kafka together: watermarks,
offsets for times, and (in archive-only mode) the topics' metadata. These block as confluent_kafka's do."""

from __future__ import annotations

from dataclasses import replace

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import ClusterMetadata, PartitionMetadata, TopicMetadata

from pyrostore.archive import Archive, PartitionArchive
from pyrostore.consumer.decisions import Extent, ReadMode, resolve, watermarks
from pyrostore.consumer.inner import InnerConsumer
from pyrostore.errors import TopicNotFound

KAFKA_TIMEOUT = 30.0  # for broker requests the application gave no timeout for


class Answers:
    """Answers about any partition (assigned or not) from the archive's newest commit and Kafka."""

    def __init__(self, archive: Archive, inner: InnerConsumer | None, mode: ReadMode, reset: str) -> None:
        self._archive = archive
        self._inner = inner
        self._mode = mode
        self._reset = reset

    def watermark_offsets(self, tp: TopicPartition, timeout: float | None, cached: bool) -> tuple[int, int]:
        """The lowest offset either side holds, and the end (Kafka's high watermark; the archive's next offset in
        archive-only mode)."""
        return watermarks(self._both_sides(tp, timeout, cached), self._mode)

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float | None) -> list[TopicPartition]:
        """For each partition, the earliest offset whose timestamp (the ``offset`` field, in ms) is at or after
        it, over both sides; -1 when there is none. Logical offsets are resolved."""
        kafka: dict[tuple[str, int], int] = {}
        if self._inner is not None:
            answers = self._inner.client.offsets_for_times(partitions, timeout=timeout or KAFKA_TIMEOUT)
            kafka = {(tp.topic, tp.partition): tp.offset for tp in answers}
        found = []
        for tp in partitions:
            if tp.offset < 0:  # logical: -2 earliest, -1 latest
                found.append(TopicPartition(tp.topic, tp.partition, self._resolve(tp)))
                continue
            reader = self._reader(tp)
            archived = reader.offset_for_time(tp.offset) if reader is not None else None
            candidates = [o for o in (archived, kafka.get((tp.topic, tp.partition), -1)) if o is not None and o >= 0]
            found.append(TopicPartition(tp.topic, tp.partition, min(candidates) if candidates else -1))
        return found

    def archive_metadata(self, topic: str | None) -> ClusterMetadata:
        """archive-only mode's ``list_topics``: the archived topics and their partitions."""
        metadata = ClusterMetadata()
        for name in [topic] if topic else self._archive.topics():
            found = TopicMetadata()
            found.topic = name
            try:
                numbers = self._archive.partitions(name)
            except TopicNotFound:
                found.error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"the archive holds no topic {name!r}")
                numbers = []
            for number in numbers:
                partition = PartitionMetadata()
                partition.id = number
                found.partitions[number] = partition
            metadata.topics[name] = found
        return metadata

    def _resolve(self, tp: TopicPartition) -> int:
        return resolve(tp.offset, self._both_sides(tp), self._mode, None, self._reset)

    def _both_sides(self, tp: TopicPartition, timeout: float | None = None, cached: bool = False) -> Extent:
        """What the archive holds of the partition, with Kafka's watermarks unless in archive-only mode."""
        extent = self._extent(tp)
        if self._inner is None:
            return extent
        if cached:
            low, high = self._inner.client.get_watermark_offsets(tp, cached=True)
        else:
            low, high = self._inner.client.get_watermark_offsets(tp, timeout=timeout or KAFKA_TIMEOUT)
        return replace(extent, kafka_low=low, kafka_high=high)

    def _reader(self, tp: TopicPartition) -> PartitionArchive | None:
        try:
            return self._archive.partition(tp.topic, tp.partition)
        except TopicNotFound:
            return None

    def _extent(self, tp: TopicPartition) -> Extent:
        reader = self._reader(tp)
        return Extent(reader.start_offset, reader.next_offset) if reader is not None else Extent(None, None)
