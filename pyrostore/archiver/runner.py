"""The archiver process: follow a Kafka topic as a consumer group member and archive what it reads.

The reading thread polls Kafka and adds each batch's runs of messages to their partition's open segment
(column by column, without per-record Python); full or old segments go to the partition's
:class:`~pyrostore.archiver.flusher.Flusher`, which encodes and commits them. After each archive commit the
same offset is committed to Kafka, only so that lag tools see progress: on assignment the archive's
``next_offset``, not Kafka's committed offset, decides where reading resumes.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pyrostore.archiver.config import ArchiverConfig, consumer_config
from pyrostore.archiver.decisions import largest, should_roll, start_position
from pyrostore.archiver.flusher import Flushed, Flusher, InFlight
from pyrostore.archiver.identity import TopicIdentity, ensure_descriptor
from pyrostore.archiver.metrics import ArchiverMetrics
from pyrostore.archiver.shutdown import KAFKA_STEP, Deadline, within
from pyrostore.errors import FencedError, HistoryLost, KafkaAccessDenied, KafkaUnavailable
from pyrostore.index.writer import PartitionWriter
from pyrostore.kafka import Refusals, admin_client, check_group_access, describe_topic, refusal
from pyrostore.messages import MessageColumns
from pyrostore.store import ObjectStore, open_store

log = logging.getLogger(__name__)

_BATCH = 10_000  # messages per consume() call
_RECHECK = 1.0  # seconds between looks at flush results while waiting for room in the memory budget


@dataclass
class _Partition:
    """An assigned partition: its writer's flusher and the segment being filled."""

    flusher: Flusher
    next_offset: int  # the offset after the last record read
    records: MessageColumns = field(default_factory=MessageColumns)  # the open segment
    opened: float = 0.0  # when the open segment got its first record (monotonic)


class Archiver:
    """Archives one topic into one store; run several (processes or hosts) to share its partitions."""

    def __init__(self, config: ArchiverConfig, store: ObjectStore | None = None) -> None:
        self.config = config
        self.store = store or open_store(config.store_url, **config.store_options)
        self.metrics = ArchiverMetrics()
        self.writer_id = f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10000}"
        self._partitions: dict[int, _Partition] = {}
        self._results: queue.Queue[Flushed] = queue.Queue()
        self._in_flight = InFlight()  # segments handed to flushers and not committed yet
        self._cooperative = "cooperative" in config.kafka_properties.get("partition.assignment.strategy", "")
        self._refusals = Refusals(config.bootstrap_servers, lambda error: log.warning("Kafka: %s", error.str()))
        self._closing = False  # set once shutdown has released every partition: callbacks have nothing to do

    # --- lifecycle ---------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Archive until ``stop`` is set, then commit everything buffered. Raises on a fatal error."""
        config = self.config
        admin = admin_client(config.kafka_properties, config.bootstrap_servers)
        cluster_id, topic_id, partitions = describe_topic(admin, config.topic, config.bootstrap_servers)
        # A consumer denied its group gets an error event confluent-kafka cannot hand over (see _loop): ask first.
        check_group_access(admin, config.group, config.bootstrap_servers)
        identity = TopicIdentity(topic=config.topic, cluster_id=cluster_id, topic_id=topic_id)
        ensure_descriptor(self.store, identity)
        log.info(
            "archiving %s (%d partitions, topic id %s) into %s as group %s",
            config.topic,
            partitions,
            identity.topic_id,
            self.store.url,
            config.group,
        )
        if config.metrics_port is not None:
            self.metrics.serve(config.metrics_port)
        # Refusals are noted by the error callback and raised after the consume() that served it: an exception
        # raised inside the callback reaches Python as a SystemError.
        consumer = Consumer({**consumer_config(config, self.writer_id), "error_cb": self._refusals}, logger=log)
        consumer.subscribe([config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        thresholds = gc.get_threshold()
        # A consumed batch is up to 10k Message objects, which the garbage collector tracks. At the default
        # threshold (700) it runs in the middle of every batch, promotes the live messages to older
        # generations, and soon walks them in full collections (measured: a fifth of the reading thread).
        # Only performance depends on it, so two archivers in one process restoring out of order is harmless.
        gc.set_threshold(_BATCH * 5, *thresholds[1:])
        try:
            self._loop(consumer, stop)
        finally:
            gc.set_threshold(*thresholds)
            self._shutdown(consumer)

    def _loop(self, consumer: Consumer, stop: threading.Event) -> None:
        lag_updated = 0.0
        while not stop.is_set():
            try:
                self._take(consumer.consume(num_messages=_BATCH, timeout=0.2))
            except SystemError as exc:  # confluent-kafka 2.x returns some error events with an exception pending
                raise KafkaUnavailable(
                    f"Kafka consumer failed: an error event could not be read ({exc.__cause__})"
                ) from exc
            self._refusals.check()
            self._roll_due(consumer)
            self._collect(consumer)
            if time.monotonic() - lag_updated > 2.0:
                self._update_lag(consumer)
                lag_updated = time.monotonic()

    def _shutdown(self, consumer: Consumer) -> None:
        """Within the grace period: commit every open segment to the archive, then (what time is left allowing)
        commit Kafka offsets and leave the group.

        The archive goes first: it is what a restarted archiver resumes from. The Kafka steps only serve lag
        tools and a quick hand-over, and with the broker gone they would block for ever, so together they get at
        most KAFKA_STEP and are given up after that (the process's exit ends them).
        """
        deadline = Deadline(self.config.shutdown_grace)
        offsets: list[TopicPartition] = []
        try:
            offsets = self._release(list(self._partitions), consumer, deadline)
        finally:
            self._closing = True
            kafka = deadline.share(KAFKA_STEP)
            self._commit_offsets(consumer, offsets, kafka)  # bounded, never raises
            # close() leaves the group (a static member does not: KIP-345) and calls _on_revoke, a no-op now;
            # it is started even with no time left to wait for it (see within).
            within(consumer.close, kafka.remaining(), "close the Kafka consumer")
            self.store.close()

    # --- segments ----------------------------------------------------------------------------------------

    def _take(self, messages: list[Message]) -> None:
        """Add a consumed batch to the open segments, a run of one partition's messages at a time."""
        errors = list(map(Message.error, messages))
        if errors.count(None) != len(messages):  # rare: events among the records
            for error in filter(None, errors):
                self._on_error(error)
            messages = [m for m, error in zip(messages, errors, strict=True) if error is None]
        for partition, run in itertools.groupby(messages, Message.partition):
            state = self._partitions.get(partition) if partition is not None else None
            if state is None:
                continue  # revoked while this batch was in flight
            records = list(run)
            if not state.records:
                state.opened = time.monotonic()
            state.records.add(records)
            state.next_offset = (records[-1].offset() or 0) + 1  # records always have offsets

    def _roll_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        config = self.config
        for partition, state in self._partitions.items():
            age = now - state.opened
            if should_roll(state.records.approx_bytes, age, config.segment_bytes, config.segment_age):
                self._roll(consumer, partition, state)
        buffered = {p: s.records.approx_bytes for p, s in self._partitions.items() if s.records}
        while sum(buffered.values()) > config.max_buffer_bytes:
            biggest = largest(buffered)
            if biggest is None:
                break
            self._roll(consumer, biggest, self._partitions[biggest])
            del buffered[biggest]
        # Backpressure: segments being committed count against the same budget as open ones.
        while not self._in_flight.wait_at_most(config.max_buffer_bytes, _RECHECK):
            self._collect(consumer)  # a failed flusher's error surfaces even while others still commit

    def _roll(self, consumer: Consumer, partition: int, state: _Partition, timeout: float | None = None) -> None:
        """Hand the open segment to the flusher, waiting at most ``timeout`` for room in its queue; the segment's
        end covers trailing gaps the consumer has passed."""
        if not state.records:
            return
        position = consumer.position([TopicPartition(self.config.topic, partition)])[0].offset
        next_offset = max(state.next_offset, position)
        if not state.flusher.submit(state.records, next_offset, timeout) and state.flusher.failed is None:
            log.error("partition %d: no room to commit the open segment before the end of the grace", partition)
        state.records, state.next_offset = MessageColumns(), next_offset

    def _collect(self, consumer: Consumer) -> None:
        """Take flush results and commit their offsets to Kafka asynchronously."""
        if offsets := self._results_taken():
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # only for lag tools: the archive is committed already
                log.warning("committing offsets to Kafka failed: %s", exc)

    def _results_taken(self) -> list[TopicPartition]:
        """Take flush results into the metrics; the archive's new ends, as offsets to commit to Kafka.

        A fenced partition is dropped (another archiver owns it now); any other flush error is fatal.
        """
        offsets: list[TopicPartition] = []
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return offsets
            labels = (self.config.topic, str(result.partition))
            if result.error is not None:
                if not isinstance(result.error, FencedError):
                    raise result.error
                log.warning("partition %d: %s", result.partition, result.error)
                self._partitions.pop(result.partition, None)
                continue
            self.metrics.records.labels(*labels).inc(result.records)
            self.metrics.bytes.labels(*labels).inc(result.bytes)
            self.metrics.segments.labels(*labels).inc()
            self.metrics.commit_seconds.labels(self.config.topic).observe(result.seconds)
            self.metrics.next_offset.labels(*labels).set(result.next_offset)
            offsets.append(TopicPartition(self.config.topic, result.partition, result.next_offset))

    def _commit_offsets(self, consumer: Consumer, offsets: list[TopicPartition], deadline: Deadline) -> None:
        """Commit ``offsets`` to Kafka and wait for the answer until ``deadline``."""
        if offsets:
            commit = lambda: consumer.commit(offsets=offsets, asynchronous=False)  # noqa: E731
            within(commit, deadline.remaining(), "commit offsets to Kafka")

    def _update_lag(self, consumer: Consumer) -> None:
        for partition, state in self._partitions.items():
            tp = TopicPartition(self.config.topic, partition)
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                lag = max(0, high - state.flusher.writer.head.next_offset)
                self.metrics.lag.labels(self.config.topic, str(partition)).set(lag)

    # --- rebalancing -------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Claim each partition in the archive and start reading it at the archive's end."""
        for tp in assigned:
            tp.offset = self._claim(consumer, tp.partition)
        (consumer.incremental_assign if self._cooperative else consumer.assign)(assigned)

    def _claim(self, consumer: Consumer, partition: int) -> int:
        topic = self.config.topic
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        writer = PartitionWriter(self.store, topic, partition, writer_id=self.writer_id)
        # Decide from the claim itself (the newest commit plus this writer's epoch): nothing can slip in between.
        start = start_position(writer.claim(start_offset=low), low)
        if start.lost:
            self.metrics.lost.labels(topic, str(partition)).inc(start.lost)
            message = (
                f"{topic}/{partition}: offsets {start.lost_from}..{start.offset - 1} ({start.lost} offsets) were "
                "deleted by Kafka's retention before they were archived"
            )
            if not self.config.accept_loss:
                log.error("%s; stopping (pass --accept-loss to record the loss and go on)", message)
                raise HistoryLost(message)
            log.error("%s; recording the loss in the archive and going on", message)
            writer.record_lost(start.offset)
        self._partitions[partition] = _Partition(Flusher(writer, self._results.put, self._in_flight), start.offset)
        log.info("assigned %s/%d: resuming at offset %d (epoch %d)", topic, partition, start.offset, writer.epoch)
        return start.offset

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Commit the revoked partitions' open segments before another member takes them."""
        if self._closing:
            return
        deadline = Deadline(self.config.shutdown_grace)
        offsets = self._release([tp.partition for tp in revoked], consumer, deadline)
        self._commit_offsets(consumer, offsets, deadline.share(KAFKA_STEP))

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        """Partitions lost without a clean revoke: another member may own them; commit nothing to Kafka."""
        log.warning(
            "lost partitions %s; their open segments are committed only if not fenced",
            [tp.partition for tp in lost],
        )
        if not self._closing:
            self._release([tp.partition for tp in lost], consumer, Deadline(self.config.shutdown_grace))

    def _release(self, partitions: list[int], consumer: Consumer, deadline: Deadline) -> list[TopicPartition]:
        """Commit the partitions' open segments, wait for their flushers until ``deadline``, and forget the
        partitions; the archive's new ends, as offsets to commit to Kafka."""
        for partition in partitions:
            if (state := self._partitions.get(partition)) is not None:
                self._roll(consumer, partition, state, deadline.remaining())
        for partition in partitions:  # every flusher gets its last segment before any is waited for
            if (state := self._partitions.get(partition)) is not None and not state.flusher.close(deadline.remaining()):
                log.error("partition %d: segment still committing at the end of the shutdown grace", partition)
        try:
            return self._results_taken()
        finally:
            for partition in partitions:
                self._partitions.pop(partition, None)

    def _on_error(self, error: KafkaError) -> None:
        """A consumer error event: a refusal (credentials, certificate, ACL) or a fatal error stops the archiver;
        anything else (a broker down, a connection reset) is logged while librdkafka retries."""
        try:
            refused = refusal(error, self.config.bootstrap_servers, self.config.topic)
            fatal = error.fatal() or error.code() == KafkaError._FATAL  # a fenced static member: _FATAL, not fatal()
        except SystemError:  # confluent-kafka 2.x hands some fatal error events over with an exception pending
            refused, fatal = None, True
        if refused is not None:
            raise KafkaAccessDenied(refused)
        if fatal:
            raise KafkaUnavailable(f"Kafka consumer failed: {error.str()}")
        log.warning("Kafka: %s", error.str())
