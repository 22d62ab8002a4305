"""``pyrostore.Consumer``: a drop-in ``confluent_kafka.Consumer`` that reads history from the archive.

Inside, a real ``confluent_kafka.Consumer`` keeps group membership, commits and live reads. Each assigned
partition is served by one source at a time (see :mod:`pyrostore.consumer.decisions`): the archive, read
segment by segment with prefetch while the inner consumer's partition stays paused, or Kafka. At the archive's
end (after re-reading its newest commit) the inner consumer is sought to the archive's ``next_offset`` and
resumed: no gap, no duplicate. In ``archive-only`` mode there is no inner consumer and no broker is contacted.

Offsets are stored by this wrapper (for archived records too) and committed through the inner consumer, so
commits, ``committed()`` and lag tools see one consistent position whichever side served the records.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import confluent_kafka
import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import ClusterMetadata, PartitionMetadata, TopicMetadata

from pyrostore.archive import PartitionArchive, open_archive
from pyrostore.consumer.config import ConsumerSettings, parse_settings
from pyrostore.consumer.cursor import ArchiveCursor
from pyrostore.consumer.decisions import (
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    Decision,
    Extent,
    ReadMode,
    Source,
    decide,
    resolve,
    watermarks,
)
from pyrostore.errors import PyrostoreError, TopicNotFound
from pyrostore.messages import batch_of_messages, event, messages_of

Key = tuple[str, int]
RebalanceCallback = Callable[[Any, list[TopicPartition]], None]

_CHUNK = 1000  # archived records turned into Messages at a time
_KEEPALIVE_SECONDS = 0.1  # serve the inner consumer this often while archived records are handed out
_KAFKA_TIMEOUT = 30.0  # for broker requests the application gave no timeout for


@dataclass
class _Partition:
    """What the consumer knows of one assigned partition."""

    topic: str
    partition: int
    source: Source = Source.KAFKA
    next: int = OFFSET_INVALID  # the next offset the application gets from this partition
    fetch: int = OFFSET_INVALID  # where the current source continues (past records waiting to be handed out)
    position: int = OFFSET_INVALID  # what position() answers: after the last record handed out, if any
    cursor: ArchiveCursor | None = None
    reader: PartitionArchive | None = None
    paused: bool = False  # by the application
    eof_sent: bool = False
    refresh_at: float = 0.0
    seek_to: int | None = None  # a seek of the inner consumer to retry: librdkafka starts fetchers asynchronously
    fetch_failed: bool = False  # the inner consumer stopped the partition (out of range): seeks fail until reassigned
    archived_below: int = -1  # messages below this offset still waiting to be handed out came from the archive

    @property
    def key(self) -> Key:
        return (self.topic, self.partition)

    def drop_cursor(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None


class Consumer:
    """A ``confluent_kafka.Consumer`` whose history reads come from a Pyrostore archive.

    ``conf`` is confluent_kafka's configuration plus ``pyrostore.store.url``, store options as
    ``pyrostore.store.<option>``, ``pyrostore.read.mode`` (``archive-preferred``, ``kafka-preferred`` or
    ``archive-only``), ``pyrostore.prefetch.segments`` (segments read ahead per partition, default 2) and
    ``pyrostore.refresh.ms`` (how often an archive-only reader at the archive's end looks for new commits).
    Raises ConsumerConfigError for a bad ``pyrostore.*`` setting and StoreError when the store cannot be opened.
    """

    def __init__(self, conf: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._settings: ConsumerSettings = parse_settings({**(conf or {}), **kwargs})
        self._archive = open_archive(self._settings.store_url, **self._settings.store_options)
        self._mode = self._settings.mode
        self._inner: confluent_kafka.Consumer | None = (
            None if self._mode is ReadMode.ARCHIVE_ONLY else confluent_kafka.Consumer(self._settings.kafka)
        )
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pyrostore-prefetch")
        self._partitions: dict[Key, _Partition] = {}
        self._ready: deque[Message] = deque()
        self._unstored: dict[Key, int] = {}  # offsets stored on delivery, not yet handed to the inner consumer
        self._local_offsets: dict[Key, int] = {}  # archive-only mode: store_offsets() without a group
        self._callbacks: tuple[RebalanceCallback | None, ...] = (None, None, None)
        self._rebalance_assigned = False
        self._subscribed = False
        self._keepalive_at = 0.0
        self._counts = {"archive": 0, "kafka": 0}
        self._closed = False

    # -- reading ------------------------------------------------------------------------------------------------

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next message or event, waiting up to ``timeout`` seconds (None or negative: forever)."""
        self._check_open()
        if self._ready and (self._inner is None or time.monotonic() < self._keepalive_at):  # the common case
            message = self._ready.popleft()
            self._delivered(message)
            return message
        found = self._take_messages(1, -1 if timeout is None else timeout)
        return found[0] if found else None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` messages and events, waiting up to ``timeout`` seconds (negative: forever)."""
        self._check_open()
        if not 1 <= num_messages <= 1_000_000:
            raise ValueError("num_messages must be between 1 and 1000000 (1M)")
        return self._take_messages(num_messages, timeout)

    def _take_messages(self, num_messages: int, timeout: float) -> list[Message]:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        taken: list[Message] = []
        while True:
            if self._inner is not None and self._ready and time.monotonic() >= self._keepalive_at:
                self._pump_inner(0)
            while self._ready and len(taken) < num_messages:
                message = self._ready.popleft()
                self._delivered(message)
                taken.append(message)
            if len(taken) >= num_messages:
                return taken
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0 and taken:
                return taken
            self._fill(max(remaining, 0.0) if remaining is not None else 1.0)
            if not self._ready and remaining is not None and remaining <= 0:
                return taken

    def consume_batches(self, max_records: int = 100_000, timeout: float = -1) -> list[pa.RecordBatch]:
        """Records as Arrow record batches for analytics, each from one partition, with ``topic`` and
        ``partition`` columns before the segment schema's. Archived records are handed out as decoded, never
        turned into Messages. Positions and stored offsets move as with :meth:`consume`. Errors that
        :meth:`consume` would return as events are raised as KafkaException; end-of-partition events are
        skipped.
        """
        self._check_open()
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            batches = self._ready_batches(max_records)
            if batches:
                return batches
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            self._fill(remaining if remaining is not None else 1.0, chunk=0)

    def _ready_batches(self, max_records: int) -> list[pa.RecordBatch]:
        batches: list[pa.RecordBatch] = []
        count = 0
        while self._ready and count < max_records:  # messages already made (from Kafka, or a poll's leftovers)
            run: list[Message] = []
            key = _message_key(self._ready[0])
            while self._ready and count < max_records and _message_key(self._ready[0]) == key:
                message = self._ready.popleft()
                self._delivered(message)
                error = message.error()
                if error is None:
                    run.append(message)
                    count += 1
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            if run:
                assert key is not None  # records (not events) always name their partition
                batches.append(_with_partition(batch_of_messages(run), *key))
        for state, cursor in self._archive_states():
            if count >= max_records or not cursor.ready():
                continue
            batch = self._take(state, cursor, max_records - count)
            if batch is not None and batch.num_rows:
                self._delivered_batch(state, batch)
                batches.append(_with_partition(batch, state.topic, state.partition))
                count += batch.num_rows
        return batches

    def _fill(self, wait: float, chunk: int = _CHUNK) -> None:
        """One round of fetching: archived records that are ready (``chunk`` per partition made into Messages; 0
        leaves them as batches), the inner consumer, then a short wait."""
        self._advance_archive(chunk)
        now = time.monotonic()
        reading = [cursor for _, cursor in self._archive_states() if not cursor.ready()]
        if self._ready or any(cursor.ready() for _, cursor in self._archive_states()):
            if self._inner is not None and now >= self._keepalive_at:
                self._pump_inner(0)
            return
        if self._inner is not None:
            self._pump_inner(0 if reading else min(wait, 0.2))
        if not self._ready and reading:
            reading[0].wait(min(wait, 0.05))
        elif not self._ready and self._inner is None:
            time.sleep(min(wait, self._settings.refresh_seconds, 0.05))

    def _archive_states(self) -> list[tuple[_Partition, ArchiveCursor]]:
        """The partitions the archive serves now (not paused), each with its cursor."""
        return [
            (s, s.cursor)
            for s in self._partitions.values()
            if s.source is Source.ARCHIVE and not s.paused and s.cursor is not None
        ]

    def _advance_archive(self, chunk: int) -> None:
        """Turn ready archived records into Messages (``chunk`` per partition; 0: leave them as batches), and
        move partitions that reached the archive's end on."""
        now = time.monotonic()
        for state in list(self._partitions.values()):
            if state.paused:
                continue
            if state.source is Source.END and now >= state.refresh_at:
                self._refresh_end(state, now)
            cursor = state.cursor
            if state.source is not Source.ARCHIVE or cursor is None:
                continue
            if chunk and cursor.ready():
                batch = self._take(state, cursor, chunk)
                if batch is not None:
                    self._ready.extend(messages_of(batch, state.topic, state.partition))
            if cursor.at_end:
                self._archive_ended(state, cursor)

    @staticmethod
    def _take(state: _Partition, cursor: ArchiveCursor, max_records: int) -> pa.RecordBatch | None:
        try:
            return cursor.take(max_records)
        except PyrostoreError as exc:
            raise KafkaException(
                KafkaError(
                    KafkaError._FAIL,
                    f"reading the archive of {state.topic} [{state.partition}] at offset {cursor.offset}: {exc}",
                )
            ) from exc

    def _archive_ended(self, state: _Partition, cursor: ArchiveCursor) -> None:
        """The cursor handed out everything up to its commit's end or a lost range: continue or switch."""
        if cursor.lost is not None:
            self._route(state, cursor.offset)
            return
        if cursor.stop is None or cursor.offset < cursor.stop:
            cursor.reader.refresh()
            if cursor.reader.next_offset > cursor.offset:
                cursor.extend()
                return
        if self._mode is ReadMode.ARCHIVE_ONLY:
            self._route(state, cursor.offset)
        else:
            # Straight to Kafka, without asking for its watermarks (that request waits behind fetches): if Kafka
            # no longer holds the offset, the out-of-range error routes the partition again.
            self._apply(state, Decision(Source.KAFKA, cursor.offset))

    def _refresh_end(self, state: _Partition, now: float) -> None:
        """archive-only mode at the archive's end: look for new commits now and then."""
        state.refresh_at = now + self._settings.refresh_seconds
        self._route(state, state.fetch)

    def _pump_inner(self, timeout: float) -> None:
        """Serve the inner consumer (fetches, rebalances, callbacks) and keep what the application should get."""
        self._store_pending()
        for waiting in self._partitions.values():
            if waiting.seek_to is not None and waiting.source is Source.KAFKA:
                self._seek_inner(waiting, waiting.seek_to)
        self._keepalive_at = time.monotonic() + _KEEPALIVE_SECONDS
        # Rebalances and callbacks need polls even while archived records are handed out; while many records
        # wait, take one message per poll so memory stays bounded.
        wanted = 1 if len(self._ready) >= _CHUNK else _CHUNK
        for message in self._inner_messages(wanted, timeout):
            error = message.error()
            key = _message_key(message)
            state = self._partitions.get(key) if key is not None else None
            if error is None or error.code() == KafkaError._PARTITION_EOF:
                if state is not None and state.source is Source.KAFKA and not state.paused:
                    self._ready.append(message)
            elif error.code() == KafkaError._AUTO_OFFSET_RESET and state is not None:
                state.fetch_failed = True
                if state.source is Source.KAFKA and state.seek_to is None:
                    self._out_of_range(state, message)
            else:
                self._ready.append(message)

    def _inner_messages(self, wanted: int, timeout: float) -> list[Message]:
        """Up to ``wanted`` messages of the inner consumer, returned as soon as there is one (within ``timeout``).

        ``consume(n, timeout)`` waits out its whole timeout unless ``n`` messages come: a live record would wait
        up to that long. ``poll`` returns at the first message; what else is ready comes without waiting.
        """
        inner = self._kafka
        ready = inner.consume(num_messages=wanted, timeout=0)
        if ready or timeout <= 0:
            return ready
        first = inner.poll(timeout)
        if first is None:
            return []
        return [first, *inner.consume(num_messages=wanted - 1, timeout=0)] if wanted > 1 else [first]

    def _seek_inner(self, state: _Partition, offset: int) -> None:
        """Move the inner consumer's partition to ``offset`` (its ``seek_to``) and resume it; retried on the next
        round while the partition's fetcher has not started yet (right after an assignment)."""
        inner = self._kafka
        tp = TopicPartition(state.topic, state.partition, offset)
        try:
            inner.seek(tp)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:
                raise
            if state.fetch_failed:
                self._reassign_inner(state)
            return
        state.seek_to = None
        if not state.paused:
            inner.resume([tp])

    def _reassign_inner(self, state: _Partition) -> None:
        """Assign the partition to the inner consumer afresh at ``state.seek_to``: after an out-of-range error
        librdkafka refuses seeks. The eager group protocol only takes whole assignments, so there every
        partition is assigned again where it stands."""
        inner = self._kafka
        if self._subscribed and not self._settings.cooperative:
            self._purge({s.key for s in self._partitions.values() if s.source is Source.KAFKA})
            for other in self._partitions.values():
                if other.source is Source.KAFKA and other.seek_to is None:
                    other.seek_to = other.next
            self._rebalance_assigned = True
            inner.assign([self._inner_position(s) for s in self._partitions.values()])
            changed = list(self._partitions.values())
        else:
            tp = TopicPartition(state.topic, state.partition)
            inner.incremental_unassign([tp])
            inner.incremental_assign([self._inner_position(state)])
            changed = [state]
        for done in changed:
            done.fetch_failed = False
            if done.source is Source.KAFKA:
                done.seek_to = None
        # librdkafka keeps a partition's pause across assignments: set both ways explicitly.
        running = [s for s in changed if s.source is Source.KAFKA and not s.paused]
        inner.resume([TopicPartition(s.topic, s.partition) for s in running])
        paused = [TopicPartition(s.topic, s.partition) for s in changed if s not in running]
        if paused:
            inner.pause(paused)

    def _inner_position(self, state: _Partition) -> TopicPartition:
        """Where the inner consumer should fetch the partition from: its pending seek, or the archive's end."""
        offset = state.seek_to if state.source is Source.KAFKA and state.seek_to is not None else None
        return TopicPartition(state.topic, state.partition, self._crossover_guess(state) if offset is None else offset)

    def _out_of_range(self, state: _Partition, message: Message) -> None:
        """Kafka does not hold the offset it was asked for. Below its log start the archive may hold it (or it
        is a hole, reported); past its end ``auto.offset.reset`` applies, as it would with Kafka alone."""
        offset = message.offset()
        if offset is None:  # the failed position is unknown: continue after what the application has
            self._purge({state.key})
            offset = state.next
        # Messages of the partition still waiting are all below the failed position: they stay.
        extent = self._with_kafka(state, self._extent(state, offset))
        if extent.kafka_high is None or offset <= extent.kafka_high:
            self._route(state, offset)
        elif self._settings.auto_offset_reset == "error":
            state.source = Source.HOLE
            self._ready.append(message)
        else:
            self._route(state, resolve(OFFSET_STORED, extent, self._mode, None, self._settings.auto_offset_reset))

    # -- routing partitions to a source -------------------------------------------------------------------------

    def _reader(self, state: _Partition) -> PartitionArchive | None:
        """The partition's archive at its newest commit, or None while nothing of it is archived."""
        if state.reader is None:
            try:
                state.reader = self._archive.partition(state.topic, state.partition)
            except TopicNotFound:
                return None
        else:
            state.reader.refresh()
        return state.reader

    def _extent(self, state: _Partition, offset: int | None = None) -> Extent:
        """What the archive holds of the partition (at its newest commit), and whether ``offset`` was lost."""
        reader = self._reader(state)
        if reader is None:
            return Extent(None, None)
        lost = self._lost_at(reader, offset) if offset is not None else ()
        return Extent(reader.start_offset, reader.next_offset, lost=lost)

    @staticmethod
    def _lost_at(reader: PartitionArchive | None, offset: int) -> tuple[tuple[int, int], ...]:
        """The range recorded as lost that holds ``offset``, if any, as :class:`Extent` takes it."""
        if reader is None or not reader.start_offset <= offset < reader.next_offset:
            return ()
        entry = reader.find(offset)
        return ((entry.base, entry.end),) if entry is not None and entry.lost else ()

    def _with_kafka(self, state: _Partition, extent: Extent, timeout: float | None = None) -> Extent:
        """``extent`` with Kafka's watermarks (unchanged in archive-only mode)."""
        if self._inner is None:
            return extent
        tp = TopicPartition(state.topic, state.partition)
        low, high = self._inner.get_watermark_offsets(tp, timeout=timeout or _KAFKA_TIMEOUT, cached=False)
        return replace(extent, kafka_low=low, kafka_high=high)

    def _decide(self, state: _Partition, offset: int) -> Decision:
        """Which source serves ``offset``, asking Kafka for its watermarks only when the answer depends on them."""
        extent = self._extent(state, offset)
        decision = decide(offset, extent, self._mode)
        if self._mode is ReadMode.KAFKA_PREFERRED or (
            self._mode is ReadMode.ARCHIVE_PREFERRED and decision.source is not Source.ARCHIVE
        ):
            decision = decide(offset, self._with_kafka(state, extent), self._mode)
        return decision

    def _route(self, state: _Partition, offset: int) -> None:
        """Serve the partition from ``offset`` on (concrete) from the source the decisions pick."""
        self._apply(state, self._decide(state, offset))

    def _apply(self, state: _Partition, decision: Decision, inner_assigned: bool = True) -> None:
        was_kafka = state.source is Source.KAFKA
        state.archived_below = decision.offset if state.source is Source.ARCHIVE else -1
        state.drop_cursor()
        state.fetch = decision.offset
        state.source = decision.source
        tp = TopicPartition(state.topic, state.partition, decision.offset)
        if decision.source is Source.KAFKA:
            if inner_assigned:
                state.seek_to = decision.offset
                self._seek_inner(state, decision.offset)
            return
        if was_kafka and inner_assigned and self._inner is not None:
            self._inner.pause([tp])
        if decision.source is Source.ARCHIVE:
            # kafka-preferred: only up to where Kafka's log starts (decision.until); otherwise to the archive's end
            stop = decision.until if self._mode is ReadMode.KAFKA_PREFERRED else None
            depth = self._settings.prefetch_segments
            assert state.reader is not None  # the archive was chosen from what this reader holds
            state.cursor = ArchiveCursor(state.reader, decision.offset, self._executor, depth, stop)
        elif decision.source is Source.END:
            state.refresh_at = time.monotonic() + self._settings.refresh_seconds
            if self._settings.partition_eof and not state.eof_sent:
                state.eof_sent = True
                self._ready.append(
                    event(
                        state.topic,
                        state.partition,
                        decision.offset,
                        KafkaError._PARTITION_EOF,
                        f"Archive reached end of partition at offset {decision.offset}",
                    )
                )
        else:
            held = f"..{decision.hole_end - 1}" if decision.hole_end is not None else " on"
            self._ready.append(
                event(
                    state.topic,
                    state.partition,
                    decision.offset,
                    KafkaError.OFFSET_OUT_OF_RANGE,
                    f"{state.topic} [{state.partition}]: offsets {decision.offset}{held} are held neither by the "
                    "archive nor by Kafka (history lost); seek past them to continue",
                )
            )

    def _starts(self, partitions: list[TopicPartition]) -> dict[Key, Decision | None]:
        """Where each partition starts and which source serves it (None: no committed offset and
        auto.offset.reset=error). Logical offsets are resolved with one look at each side, reused to decide."""
        stored = [tp for tp in partitions if tp.offset in (OFFSET_STORED, OFFSET_INVALID)]
        committed = {_key_of(tp): tp.offset for tp in self._committed_or_none(stored)} if stored else {}
        starts: dict[Key, Decision | None] = {}
        for tp in partitions:
            key, state, offset = _key_of(tp), self._partitions[_key_of(tp)], tp.offset
            if offset in (OFFSET_STORED, OFFSET_INVALID):
                offset = committed.get(key, OFFSET_INVALID)
                if offset < 0 and self._settings.auto_offset_reset == "error":
                    starts[key] = None
                    continue
                offset = OFFSET_STORED
            if offset >= 0:
                starts[key] = self._decide(state, offset)
                continue
            extent = self._with_kafka(state, self._extent(state))
            offset = resolve(offset, extent, self._mode, committed.get(key), self._settings.auto_offset_reset)
            starts[key] = decide(offset, replace(extent, lost=self._lost_at(state.reader, offset)), self._mode)
        return starts

    def _resolve(self, state: _Partition, offset: int) -> int:
        """A concrete offset for a logical one (beginning or end)."""
        if offset >= 0:
            return offset
        extent = self._with_kafka(state, self._extent(state))
        return resolve(offset, extent, self._mode, None, self._settings.auto_offset_reset)

    def _committed_or_none(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        if self._inner is None or "group.id" not in self._settings.kafka:
            return [
                TopicPartition(tp.topic, tp.partition, self._local_offsets.get(_key_of(tp), -1)) for tp in partitions
            ]
        return [tp for tp in self._inner.committed(partitions, timeout=_KAFKA_TIMEOUT) if tp.offset >= 0]

    # -- assignment -------------------------------------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Replace the assignment with ``partitions``, each read from its offset (logical offsets resolved)."""
        self._check_open()
        self._forget(list(self._partitions))
        self._add(partitions, incremental=False)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """Add ``partitions`` to the assignment."""
        self._check_open()
        self._add(partitions, incremental=True)

    def unassign(self) -> None:
        """Drop the whole assignment."""
        self._check_open()
        self._forget(list(self._partitions))
        if self._inner is not None:
            self._rebalance_assigned = True
            self._inner.unassign()

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        """Remove ``partitions`` from the assignment."""
        self._check_open()
        self._forget([_key_of(tp) for tp in partitions])
        if self._inner is not None:
            self._rebalance_assigned = True
            self._inner.incremental_unassign(partitions)

    def assignment(self) -> list[TopicPartition]:
        """The assigned partitions."""
        self._check_open()
        if self._inner is not None:
            return self._inner.assignment()
        return [TopicPartition(topic, partition) for topic, partition in self._partitions]

    def _add(self, partitions: list[TopicPartition], incremental: bool) -> None:
        for tp in partitions:
            self._partitions[_key_of(tp)] = _Partition(tp.topic, tp.partition)
        starts = self._starts(partitions)
        if self._inner is not None:
            from_kafka = {key: d.offset for key, d in starts.items() if d is not None and d.source is Source.KAFKA}
            inner = [
                TopicPartition(
                    *key, from_kafka[key] if key in from_kafka else self._crossover_guess(self._partitions[key])
                )
                for key in starts
            ]
            self._rebalance_assigned = True
            (self._inner.incremental_assign if incremental else self._inner.assign)(inner)
            elsewhere = [tp for tp in inner if _key_of(tp) not in from_kafka]
            if elsewhere:
                self._inner.pause(elsewhere)
        for key, decision in starts.items():
            state = self._partitions[key]
            if decision is None:
                self._no_start(state)
            else:
                state.next = decision.offset
                self._apply(state, decision, inner_assigned=False)

    def _no_start(self, state: _Partition) -> None:
        state.drop_cursor()
        state.source = Source.HOLE
        reason = "no committed offset to start from, and auto.offset.reset is error"
        self._ready.append(event(state.topic, state.partition, OFFSET_INVALID, KafkaError._AUTO_OFFSET_RESET, reason))

    @staticmethod
    def _crossover_guess(state: _Partition) -> int:
        """Where the inner consumer's paused partition starts: the archive's end, where Kafka likely takes over."""
        return state.reader.next_offset if state.reader is not None else OFFSET_END

    def _forget(self, keys: list[Key]) -> None:
        self._store_pending()
        gone = set(keys)
        for key in keys:
            state = self._partitions.pop(key, None)
            if state is not None:
                state.drop_cursor()
            self._unstored.pop(key, None)
        self._purge(gone)

    def _purge(self, keys: set[Key]) -> None:
        """Drop the messages of ``keys`` not yet handed out (events without a partition stay)."""
        if keys and self._ready:
            self._ready = deque(m for m in self._ready if _message_key(m) not in keys)

    # -- group membership ---------------------------------------------------------------------------------------

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group for ``topics``; rebalance callbacks get this consumer, as with confluent_kafka."""
        self._check_open()
        inner = self._require_inner("subscribe")
        self._callbacks = (on_assign, on_revoke, on_lost)
        inner.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._subscribed = True

    def unsubscribe(self) -> None:
        """Leave the group's subscription."""
        self._check_open()
        self._require_inner("unsubscribe").unsubscribe()
        self._subscribed = False

    def _on_assign(self, _inner: Any, partitions: list[TopicPartition]) -> None:
        self._rebalance_assigned = False
        if self._callbacks[0] is not None:
            self._callbacks[0](self, partitions)
        if not self._rebalance_assigned:
            (self.incremental_assign if self._settings.cooperative else self.assign)(partitions)

    def _on_revoke(self, _inner: Any, partitions: list[TopicPartition]) -> None:
        self._revoked(self._callbacks[1], partitions)

    def _on_lost(self, _inner: Any, partitions: list[TopicPartition]) -> None:
        self._revoked(self._callbacks[2] or self._callbacks[1], partitions)

    def _revoked(self, callback: RebalanceCallback | None, partitions: list[TopicPartition]) -> None:
        self._store_pending()
        self._rebalance_assigned = False
        if callback is not None:
            callback(self, partitions)
        if not self._rebalance_assigned:
            if self._settings.cooperative:
                self.incremental_unassign(partitions)
            else:
                self.unassign()
        self._forget([_key_of(tp) for tp in partitions])

    def memberid(self) -> str | None:
        """The group member id (None in archive-only mode or before joining)."""
        self._check_open()
        return self._inner.memberid() if self._inner is not None else None

    def consumer_group_metadata(self) -> Any:
        """The group metadata for transactional producers' ``send_offsets_to_transaction``."""
        self._check_open()
        return self._require_inner("consumer_group_metadata").consumer_group_metadata()

    # -- positions and offsets ------------------------------------------------------------------------------------

    def seek(self, partition: TopicPartition) -> None:
        """Read ``partition`` from its offset next (logical offsets allowed); its position becomes unknown."""
        self._check_open()
        state = self._partitions.get(_key_of(partition))
        if state is None:
            raise KafkaException(
                KafkaError(KafkaError._UNKNOWN_PARTITION, f"{partition.topic} [{partition.partition}] is not assigned")
            )
        self._purge({state.key})
        state.position = OFFSET_INVALID
        state.eof_sent = False
        decision = self._starts([partition])[state.key]
        if decision is None:
            self._no_start(state)
        else:
            state.next = decision.offset
            self._apply(state, decision)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """After the last message handed out of each partition (OFFSET_INVALID before any, or after a seek)."""
        self._check_open()
        found = []
        for tp in partitions:
            state = self._partitions.get(_key_of(tp))
            found.append(TopicPartition(tp.topic, tp.partition, state.position if state else OFFSET_INVALID))
        return found

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop handing out messages of ``partitions`` until :meth:`resume`; what was fetched ahead is dropped."""
        self._check_open()
        keys = {_key_of(tp) for tp in partitions}
        for key in keys:
            if key in self._partitions:
                self._partitions[key].paused = True
        self._purge(keys)
        if self._inner is not None:
            self._inner.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Hand out messages of ``partitions`` again, from the next one the application has not had."""
        self._check_open()
        for tp in partitions:
            state = self._partitions.get(_key_of(tp))
            if state is None or not state.paused:
                continue
            state.paused = False
            if state.source in (Source.KAFKA, Source.ARCHIVE):
                self._route(state, state.next)
        if self._inner is not None:
            self._inner.resume([tp for tp in partitions if self._serves_from_kafka(tp)])

    def _serves_from_kafka(self, tp: TopicPartition) -> bool:
        state = self._partitions.get(_key_of(tp))
        return state is None or state.source is Source.KAFKA

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        """The lowest offset the archive or Kafka holds, and the end (Kafka's high watermark, or the archive's
        ``next_offset`` in archive-only mode)."""
        self._check_open()
        state = self._partitions.get(_key_of(partition)) or _Partition(partition.topic, partition.partition)
        if cached and self._inner is not None:
            low, high = self._inner.get_watermark_offsets(partition, cached=True)
            return watermarks(replace(self._extent(state), kafka_low=low, kafka_high=high), self._mode)
        return watermarks(self._with_kafka(state, self._extent(state), timeout), self._mode)

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """For each partition, the earliest offset whose timestamp (the ``offset`` field, in ms) is at or after
        it, over the archive and Kafka together; -1 when there is none."""
        self._check_open()
        kafka: dict[Key, int] = {}
        if self._inner is not None:
            answers = self._inner.offsets_for_times(partitions, timeout=timeout or _KAFKA_TIMEOUT)
            kafka = {_key_of(tp): tp.offset for tp in answers}
        found = []
        for tp in partitions:
            state = _Partition(tp.topic, tp.partition)
            if tp.offset < 0:  # logical: -2 earliest, -1 latest
                found.append(TopicPartition(tp.topic, tp.partition, self._resolve(state, tp.offset)))
                continue
            reader = self._reader(state)
            archived = reader.offset_for_time(tp.offset) if reader is not None else None
            candidates = [o for o in (archived, kafka.get(_key_of(tp), -1)) if o is not None and o >= 0]
            found.append(TopicPartition(tp.topic, tp.partition, min(candidates) if candidates else -1))
        return found

    def store_offsets(self, message: Message | None = None, offsets: list[TopicPartition] | None = None) -> None:
        """Store an offset to commit (the message's offset + 1, or the given offsets); needs
        ``enable.auto.offset.store=false``, as with confluent_kafka."""
        self._check_open()
        if message is not None:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                raise TypeError("store_offsets needs a message with a topic, a partition and an offset")
            offsets = [TopicPartition(topic, partition, offset + 1)]
        if not offsets:
            raise ValueError("store_offsets needs a message or offsets")
        if self._settings.auto_offset_store:  # as librdkafka: storing by hand needs enable.auto.offset.store=false
            raise KafkaException(
                KafkaError(KafkaError._INVALID_ARG, "StoreOffsets failed: enable.auto.offset.store is true")
            )
        if self._inner is None:
            self._local_offsets.update({_key_of(tp): tp.offset for tp in offsets})
            return
        self._store_pending()
        self._inner.store_offsets(offsets=offsets)

    def commit(
        self, message: Message | None = None, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        """Commit the stored offsets, a message's (its offset + 1) or the given ones, as confluent_kafka does."""
        self._check_open()
        inner = self._require_inner("commit")
        self._store_pending()
        # confluent_kafka's stubs overload commit() on Literal[True] / Literal[False]: one call for each.
        if message is not None:
            if asynchronous:
                return inner.commit(message=message, asynchronous=True)
            return inner.commit(message=message, asynchronous=False)
        if offsets is not None:
            if asynchronous:
                return inner.commit(offsets=offsets, asynchronous=True)
            return inner.commit(offsets=offsets, asynchronous=False)
        if asynchronous:
            return inner.commit(asynchronous=True)
        return inner.commit(asynchronous=False)

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """The group's committed offsets for ``partitions``."""
        self._check_open()
        inner = self._require_inner("committed")
        return inner.committed(partitions) if timeout is None else inner.committed(partitions, timeout=timeout)

    def _delivered(self, message: Message) -> None:
        if message.error() is not None:
            return
        key, offset = _message_key(message), message.offset()
        if key is None or offset is None:  # only events lack these
            return
        state = self._partitions.get(key)
        if state is not None:
            archived = state.source is not Source.KAFKA or offset < state.archived_below
            self._counts["archive" if archived else "kafka"] += 1
            state.next = state.position = offset + 1
            state.eof_sent = False
            if self._settings.auto_offset_store:
                self._unstored[state.key] = state.position

    def _delivered_batch(self, state: _Partition, batch: pa.RecordBatch) -> None:
        self._counts["archive"] += batch.num_rows
        state.next = state.position = batch.column("offset")[-1].as_py() + 1
        if self._settings.auto_offset_store:
            self._unstored[state.key] = state.position

    def _store_pending(self) -> None:
        if not self._unstored:
            return
        pending = [TopicPartition(t, p, o) for (t, p), o in self._unstored.items() if (t, p) in self._partitions]
        self._unstored.clear()
        if self._inner is None:
            self._local_offsets.update({_key_of(tp): tp.offset for tp in pending})
        elif pending:
            self._inner.store_offsets(offsets=pending)

    def source_counts(self) -> dict[str, int]:
        """How many records were handed out from each side so far: ``{"archive": n, "kafka": m}``
        (Pyrostore's addition to the interface)."""
        return dict(self._counts)

    # -- metadata and lifecycle -----------------------------------------------------------------------------------

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """Cluster metadata from Kafka, or in archive-only mode the archived topics and partitions."""
        self._check_open()
        if self._inner is not None:
            return self._inner.list_topics(topic, timeout)
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

    def cluster_id(self, timeout: float = -1) -> str | None:
        """Kafka's cluster id (None in archive-only mode)."""
        self._check_open()
        return self._inner.cluster_id(timeout) if self._inner is not None else None

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """Change the SASL credentials the inner consumer uses from now on."""
        self._check_open()
        self._require_inner("set_sasl_credentials").set_sasl_credentials(username, password)

    def close(self) -> None:
        """Commit (with auto commit on) and leave the group, stop prefetching; later calls raise RuntimeError."""
        if self._closed:
            return
        try:
            self._store_pending()
            if self._inner is not None:
                self._inner.close()
        finally:
            self._closed = True
            for state in self._partitions.values():
                state.drop_cursor()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._archive.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Consumer closed")

    @property
    def _kafka(self) -> confluent_kafka.Consumer:
        """The inner consumer, for paths that only run with Kafka (never in archive-only mode)."""
        return self._require_inner("the inner consumer")

    def _require_inner(self, what: str) -> confluent_kafka.Consumer:
        if self._inner is None:
            raise KafkaException(
                KafkaError(
                    KafkaError._NOT_IMPLEMENTED,
                    f"{what} needs Kafka, and pyrostore.read.mode=archive-only never contacts a broker",
                )
            )
        return self._inner


def _key_of(tp: TopicPartition) -> Key:
    return (tp.topic, tp.partition)


def _message_key(message: Message) -> Key | None:
    """The partition a message belongs to; None for events of the whole client (no topic or partition)."""
    topic, partition = message.topic(), message.partition()
    return None if topic is None or partition is None else (topic, partition)


def _with_partition(batch: pa.RecordBatch, topic: str, partition: int) -> pa.RecordBatch:
    rows = batch.num_rows
    columns = [pa.repeat(pa.scalar(topic), rows), pa.repeat(pa.scalar(partition, pa.int32()), rows), *batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=["topic", "partition", *batch.schema.names])
