"""Handing messages to the application: ``poll``, ``consume`` and ``consume_batches`` over both sources.

When only Kafka has something to give, the inner consumer is asked exactly as the application asked
(``poll(timeout)`` or ``consume(n, timeout)``): live records come as soon as Kafka has them, and errors and
rebalance callbacks arrive in the same call as with confluent_kafka alone. While archived records are handed
out, the inner consumer is still served every 100 ms (group membership, ``max.poll.interval.ms``).
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException, Message

from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.partition import PartitionState
from pyrostore.consumer.ready import ReadyMessages, message_key
from pyrostore.consumer.router import Router
from pyrostore.messages import batch_of_messages

CHUNK = 1000  # archived records turned into Messages at a time
_KEEPALIVE_SECONDS = 0.1  # serve the inner consumer this often while archived records are handed out
_LOOK_AGAIN_SECONDS = 0.1  # the longest single wait, so starts applied by callbacks are noticed
_SOON_SECONDS = 0.01  # the longest single wait while a start, a seek or a segment is about to be ready


class Delivery:
    """The application's reads, taking from the archive's ready records and the inner consumer."""

    def __init__(self, router: Router, inner: InnerConsumer | None, ready: ReadyMessages, refresh: float) -> None:
        self._router = router
        self._partitions: dict[Any, PartitionState] = router.partitions  # keyed by what messages name
        self._inner = inner
        self._ready = ready
        self._refresh = refresh
        self._keepalive_at = 0.0

    def poll(self, timeout: float) -> Message | None:
        """The next message or event within ``timeout`` seconds (negative: no limit)."""
        ready = self._ready
        if ready and (self._inner is None or time.monotonic() < self._keepalive_at):
            return self._hand_out(ready.popleft())  # the common case, kept short
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            self._prepare(CHUNK)
            if ready:
                return self._hand_out(ready.popleft())
            message = self._wait(_remaining(deadline))
            if message is not None:
                return self._hand_out(message)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        """Up to ``num_messages`` messages and events, waiting up to ``timeout`` seconds (negative: no limit)."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        ready = self._ready
        taken: list[Message] = []
        while True:
            if len(ready) < num_messages - len(taken) or self._keepalive_due():
                self._prepare(CHUNK)
            while ready and len(taken) < num_messages:
                taken.append(self._hand_out(ready.popleft()))
            remaining = _remaining(deadline)
            if len(taken) >= num_messages or remaining == 0:
                return taken
            if self._inner is not None and not self._router.busy and not self._router.archive_states():
                # Kafka alone: the inner consumer waits for the rest, as confluent_kafka's consume() does (a while
                # at a time, so partitions assigned by a callback meanwhile are started).
                self._flush_offsets()
                wait = _LOOK_AGAIN_SECONDS if remaining is None else min(remaining, _LOOK_AGAIN_SECONDS)
                found = [self._router.absorb(m) for m in self._inner.consume(num_messages - len(taken), wait)]
                taken += [self._hand_out(m) for m in found if m is not None]
                continue
            message = self._wait(remaining)
            if message is not None:
                taken.append(self._hand_out(message))

    def consume_batches(self, max_records: int, timeout: float) -> list[pa.RecordBatch]:
        """Records as Arrow batches, each of one partition with ``topic`` and ``partition`` columns first. Errors
        are raised as KafkaException; end-of-partition events are skipped."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            self._prepare(0)
            batches = self._ready_batches(max_records)
            if batches:
                return batches
            message = self._wait(_remaining(deadline))
            if message is not None:
                self._ready.append(message)
            elif deadline is not None and time.monotonic() >= deadline:
                return []

    def _prepare(self, chunk: int) -> None:
        """Apply finished starts, retry seeks, turn ready archived records into Messages, and keep the inner
        consumer served while they are handed out."""
        self._router.apply_starts()
        self._router.retry_moves()
        if len(self._ready) < CHUNK:
            self._router.advance_archive(chunk)
        if self._ready and self._keepalive_due():
            self._keepalive()

    def _keepalive_due(self) -> bool:
        return self._inner is not None and time.monotonic() >= self._keepalive_at

    def _keepalive(self) -> None:
        """Serve the inner consumer without waiting: rebalances, callbacks, and what Kafka has ready (one message
        while many wait, so memory stays bounded). A client-wide error goes in front and ends the round, so
        callbacks that follow it run on a later call, as with confluent_kafka."""
        assert self._inner is not None
        self._keepalive_at = time.monotonic() + _KEEPALIVE_SECONDS
        self._flush_offsets()
        for _ in range(1 if len(self._ready) >= CHUNK else CHUNK):
            found = self._inner.poll(0)
            if found is None:
                return
            message = self._router.absorb(found)
            if message is None:
                continue
            if message_key(message) is None:
                self._ready.appendleft(message)
                return
            self._ready.append(message)

    def _wait(self, remaining: float | None) -> Message | None:
        """Wait up to ``remaining`` seconds (None: a while) for Kafka or the archive; Kafka's message, if any."""
        longest = _SOON_SECONDS if self._router.busy else _LOOK_AGAIN_SECONDS
        wait = longest if remaining is None else min(remaining, longest)
        if self._inner is None:
            decoding = [c for _, c in self._router.archive_states() if not c.ready()]
            if decoding:
                decoding[0].wait(wait)
            else:
                time.sleep(min(wait, self._refresh))
            return None
        self._flush_offsets()
        self._keepalive_at = time.monotonic() + _KEEPALIVE_SECONDS
        found = self._inner.poll(wait)
        return self._router.absorb(found) if found is not None else None

    def _flush_offsets(self) -> None:
        self._router.flush_offsets()

    def _hand_out(self, message: Message) -> Message:
        """Note that the application gets ``message``: its partition's position, stored offset and source."""
        if message.error() is None:
            state, offset = self._partitions.get((message.topic(), message.partition())), message.offset()
            if state is not None and offset is not None:
                state.delivered(offset)
        return message

    def _ready_batches(self, max_records: int) -> list[pa.RecordBatch]:
        batches: list[pa.RecordBatch] = []
        count = 0
        while self._ready and count < max_records:  # messages already made (from Kafka, or a poll's leftovers)
            run: list[Message] = []
            key = self._ready.peek_key()
            while self._ready and count < max_records and self._ready.peek_key() == key:
                message = self._hand_out(self._ready.popleft())
                error = message.error()
                if error is None:
                    run.append(message)
                    count += 1
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            if run:
                assert key is not None  # records (not events) always name their partition
                batches.append(_with_partition(batch_of_messages(run), *key))
        for state, cursor in self._router.archive_states():
            if count >= max_records or not cursor.ready():
                continue
            batch = self._router.take(state, cursor, max_records - count)
            if batch is not None and batch.num_rows:
                state.delivered_archived(batch.column("offset")[-1].as_py(), batch.num_rows)
                batches.append(_with_partition(batch, state.topic, state.partition))
                count += batch.num_rows
        return batches


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _with_partition(batch: pa.RecordBatch, topic: str, partition: int) -> pa.RecordBatch:
    rows = batch.num_rows
    columns = [pa.repeat(pa.scalar(topic), rows), pa.repeat(pa.scalar(partition, pa.int32()), rows), *batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=["topic", "partition", *batch.schema.names])
