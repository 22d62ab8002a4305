"""``pyrostore.Consumer``: a drop-in ``confluent_kafka.Consumer`` that reads history from the archive.

Inside, a real ``confluent_kafka.Consumer`` keeps group membership, commits and live reads. Each assigned
partition is served by one source at a time (see :mod:`pyrostore.consumer.decisions`): the archive, read
segment by segment with prefetch while the inner consumer's partition stays paused, or Kafka. At the archive's
end (after re-reading its newest commit) the inner consumer is sought to the archive's ``next_offset`` and
resumed: no gap, no duplicate. In ``archive-only`` mode there is no inner consumer and no broker is contacted.

This module is the facade: confluent_kafka's methods and signatures, each handing over to the parts that do
the work (:mod:`.router`, :mod:`.delivery`, :mod:`.group`, :mod:`.answers`, :mod:`.inner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import ClusterMetadata

from pyrostore.archive import open_archive
from pyrostore.consumer import arguments
from pyrostore.consumer.answers import Answers
from pyrostore.consumer.config import ConsumerSettings, parse_settings
from pyrostore.consumer.decisions import OFFSET_INVALID, ReadMode
from pyrostore.consumer.delivery import Delivery
from pyrostore.consumer.group import Membership, RebalanceCallback
from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.offsets import OffsetBook
from pyrostore.consumer.ready import ReadyMessages
from pyrostore.consumer.router import Router


class _Parts:
    """The working parts of one open consumer."""

    def __init__(self, owner: Consumer, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.archive = open_archive(settings.store_url, **settings.store_options)
        try:
            self.inner = None if settings.mode is ReadMode.ARCHIVE_ONLY else InnerConsumer(settings.kafka)
        except BaseException:
            self.archive.close()
            raise
        ready = ReadyMessages()
        self.book = OffsetBook(settings.auto_offset_store, self.inner)
        self.router = Router(settings, self.archive, self.inner, ready, self.book)
        self.delivery = Delivery(self.router, self.inner, ready, settings.refresh_seconds)
        self.answers = Answers(self.archive, self.inner, settings.mode, settings.auto_offset_reset)
        self.group = None if self.inner is None else Membership(owner, self.router, self.inner, settings.cooperative)

    def kafka(self, what: str) -> InnerConsumer:
        """The inner consumer, for calls that need Kafka. Raises KafkaException in archive-only mode."""
        if self.inner is None:
            raise KafkaException(
                KafkaError(
                    KafkaError._NOT_IMPLEMENTED,
                    f"{what} needs Kafka, and pyrostore.read.mode=archive-only never contacts a broker",
                )
            )
        return self.inner


class Consumer:
    """A ``confluent_kafka.Consumer`` whose history reads come from a Pyrostore archive.

    ``conf`` is confluent_kafka's configuration plus ``pyrostore.store.url``, store options as
    ``pyrostore.store.<option>``, ``pyrostore.read.mode`` (``archive-preferred``, ``kafka-preferred`` or
    ``archive-only``), ``pyrostore.prefetch.segments`` (segments read ahead per partition, default 2) and
    ``pyrostore.refresh.ms`` (how often an archive-only reader at the archive's end looks for new commits).
    Raises ConsumerConfigError for a bad ``pyrostore.*`` setting, StoreError when the store cannot be opened,
    and what confluent_kafka raises for its own settings.
    """

    _parts: _Parts | None = None  # None once closed, or in a subclass that never called __init__
    _counts: dict[str, int] | None = None  # what was read from each side, once closed

    def __init__(self, conf: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._parts = _Parts(self, parse_settings({**(conf or {}), **kwargs}))

    def _open(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("Consumer closed")
        return self._parts

    def _handle(self) -> _Parts:
        """As :meth:`_open`, for the calls confluent_kafka makes on the client handle itself."""
        if self._parts is None:
            raise RuntimeError("Handle has been closed")
        return self._parts

    # -- reading --------------------------------------------------------------------------------------------

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next message or event, waiting up to ``timeout`` seconds (None or negative: forever)."""
        parts = self._parts
        if parts is None:
            raise RuntimeError("Consumer closed")
        if timeout is None:
            return parts.delivery.poll(-1)
        return parts.delivery.poll(timeout if isinstance(timeout, int | float) else arguments.seconds(timeout))

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` messages and events, waiting up to ``timeout`` seconds (negative: forever)."""
        parts = self._open()
        count, seconds = arguments.message_count(num_messages), arguments.seconds(timeout)
        return parts.delivery.consume(count, seconds) if count else []

    def consume_batches(self, max_records: int = 100_000, timeout: float = -1) -> list[pa.RecordBatch]:
        """Records as Arrow record batches for analytics, each from one partition, with ``topic`` and
        ``partition`` columns before the segment schema's. Archived records are handed out as decoded, never
        turned into Messages. Positions and stored offsets move as with :meth:`consume`. Errors that
        :meth:`consume` would return as events are raised as KafkaException; end-of-partition events are
        skipped (Pyrostore's addition to the interface).
        """
        return self._open().delivery.consume_batches(max_records, arguments.seconds(timeout))

    # -- assignment -----------------------------------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Replace the assignment with ``partitions``, each read from its offset; returns at once (where to
        start is looked up in the background)."""
        self._open().router.assign(arguments.partition_list(partitions), incremental=False)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """Add ``partitions`` to the assignment."""
        self._open().router.assign(arguments.partition_list(partitions), incremental=True)

    def unassign(self) -> None:
        """Drop the whole assignment."""
        self._open().router.unassign(None)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        """Remove ``partitions`` from the assignment."""
        self._open().router.unassign(arguments.partition_list(partitions))

    def assignment(self) -> list[TopicPartition]:
        """The assigned partitions."""
        parts = self._open()
        states = parts.router.partitions
        if parts.inner is None:
            return [TopicPartition(s.topic, s.partition, s.assigned_at) for s in states.values()]
        found = []
        for tp in parts.inner.client.assignment():  # in librdkafka's order, with the offsets the assignment named
            state = states.get((tp.topic, tp.partition))
            found.append(TopicPartition(tp.topic, tp.partition, state.assigned_at if state else tp.offset))
        return found

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group for ``topics``; rebalance callbacks get this consumer, as with confluent_kafka."""
        parts = self._open()
        parts.kafka("subscribe")
        assert parts.group is not None  # there is a group wherever there is an inner consumer
        callbacks = [
            arguments.callback(name, value)
            for name, value in (("on_assign", on_assign), ("on_revoke", on_revoke), ("on_lost", on_lost))
        ]
        parts.group.subscribe(topics, *callbacks)

    def unsubscribe(self) -> None:
        """Leave the group's subscription."""
        parts = self._open()
        parts.kafka("unsubscribe")
        assert parts.group is not None
        parts.group.unsubscribe()

    def memberid(self) -> str | None:
        """The group member id (None in archive-only mode or before joining)."""
        parts = self._open()
        return parts.inner.client.memberid() if parts.inner is not None else None

    def consumer_group_metadata(self) -> Any:
        """The group metadata for transactional producers' ``send_offsets_to_transaction``."""
        return self._open().kafka("consumer_group_metadata").client.consumer_group_metadata()

    # -- positions and offsets ------------------------------------------------------------------------------

    def seek(self, partition: TopicPartition) -> None:
        """Read ``partition`` from its offset next (logical offsets allowed); its position becomes unknown."""
        parts = self._open()
        state = parts.router.partitions.get((arguments.partition(partition).topic, partition.partition))
        if state is not None:
            parts.router.seek(state, partition.offset)
        elif parts.inner is not None:
            parts.inner.client.seek(partition)  # not assigned: fails as confluent_kafka's seek fails
        else:
            text = f"Failed to seek to offset {partition.offset}: Local: Unknown partition"
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION, text))

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """After the last message handed out of each partition (OFFSET_INVALID before any, or after a seek)."""
        known = self._open().router.partitions
        found = []
        for tp in arguments.partition_list(partitions):
            state = known.get((tp.topic, tp.partition))
            found.append(TopicPartition(tp.topic, tp.partition, state.position if state else OFFSET_INVALID))
        return found

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop handing out messages of ``partitions`` until :meth:`resume`; what was fetched ahead is dropped."""
        parts = self._open()
        parts.router.pause(_states(parts.router, arguments.partition_list(partitions)))

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Hand out messages of ``partitions`` again, from the next one the application has not had."""
        parts = self._open()
        parts.router.resume(_states(parts.router, arguments.partition_list(partitions)))

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        """The lowest offset the archive or Kafka holds, and the end (Kafka's high watermark, or the archive's
        ``next_offset`` in archive-only mode)."""
        parts = self._open()
        return parts.answers.watermark_offsets(arguments.partition(partition), timeout, cached)

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """For each partition, the earliest offset whose timestamp (the ``offset`` field, in ms) is at or after
        it, over the archive and Kafka together; -1 when there is none."""
        return self._open().answers.offsets_for_times(arguments.partition_list(partitions), timeout)

    def store_offsets(self, message: Message | None = None, offsets: list[TopicPartition] | None = None) -> None:
        """Store an offset to commit (the message's offset + 1, or the given offsets); needs
        ``enable.auto.offset.store=false``, as with confluent_kafka."""
        parts = self._open()
        if message is None and offsets is None:
            raise ValueError("expected either message or offsets")
        if message is not None and offsets is not None:
            raise ValueError("message and offsets are mutually exclusive")
        if message is not None:
            error = arguments.message(message).error()
            if error is not None:
                text = f"Cannot store offsets for message with error: '{KafkaError(error.code()).str()}'"
                raise KafkaException(KafkaError(KafkaError._INVALID_ARG, text))
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None  # records name all three
            offsets = [TopicPartition(topic, partition, offset + 1)]
        chosen = arguments.partition_list(offsets)
        if parts.settings.auto_offset_store:  # librdkafka: storing by hand needs the setting off
            text = "StoreOffsets failed: Local: Invalid argument or configuration"
            raise KafkaException(KafkaError(KafkaError._INVALID_ARG, text))
        parts.book.store(chosen, parts.router.partitions.values())

    def commit(
        self, message: Message | None = None, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        """Commit the stored offsets, a message's (its offset + 1) or the given ones, as confluent_kafka does."""
        parts = self._open()
        client = parts.kafka("commit").client
        if message is not None and offsets is not None:
            raise ValueError("message and offsets are mutually exclusive")
        parts.router.flush_offsets()
        # confluent_kafka's stubs overload commit() on Literal[True] / Literal[False]: one call for each.
        if message is not None:
            if asynchronous:
                return client.commit(message=message, asynchronous=True)
            return client.commit(message=message, asynchronous=False)
        if offsets is not None:
            if asynchronous:
                return client.commit(offsets=offsets, asynchronous=True)
            return client.commit(offsets=offsets, asynchronous=False)
        if asynchronous:
            return client.commit(asynchronous=True)
        return client.commit(asynchronous=False)

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """The group's committed offsets for ``partitions``."""
        client = self._open().kafka("committed").client
        arguments.partition_list(partitions)
        return client.committed(partitions) if timeout is None else client.committed(partitions, timeout=timeout)

    def source_counts(self) -> dict[str, int]:
        """How many records were handed out from each side so far: ``{"archive": n, "kafka": m}``
        (Pyrostore's addition to the interface; also after close)."""
        if self._parts is not None:
            return self._parts.book.counts(self._parts.router.partitions.values())
        if self._counts is None:
            raise RuntimeError("Consumer closed")
        return dict(self._counts)

    # -- metadata and lifecycle -----------------------------------------------------------------------------

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """Cluster metadata from Kafka, or in archive-only mode the archived topics and partitions."""
        parts = self._handle()
        if parts.inner is not None:
            return parts.inner.client.list_topics(topic, timeout)
        return parts.answers.archive_metadata(topic)

    def cluster_id(self, timeout: float = -1) -> str | None:
        """Kafka's cluster id (None in archive-only mode)."""
        parts = self._handle()
        return parts.inner.client.cluster_id(timeout) if parts.inner is not None else None

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """Change the SASL credentials the inner consumer uses from now on."""
        parts = self._handle()
        parts.kafka("set_sasl_credentials").client.set_sasl_credentials(username, password)

    def close(self) -> None:
        """Commit (with auto commit on) and leave the group, stop prefetching; later calls raise RuntimeError."""
        parts = self._parts
        if parts is None:
            return
        try:
            parts.router.flush_offsets()
            if parts.inner is not None:
                parts.inner.close()
        finally:
            self._counts = parts.book.counts(parts.router.partitions.values())
            self._parts = None
            parts.router.close()
            parts.archive.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _states(router: Router, partitions: list[TopicPartition]) -> list:
    """The assigned partitions' states among ``partitions`` (others are ignored, as by confluent_kafka)."""
    found = [router.partitions.get((tp.topic, tp.partition)) for tp in partitions]
    return [state for state in found if state is not None]
