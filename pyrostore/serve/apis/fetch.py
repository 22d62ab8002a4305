"""Fetch (key 1): record batches built from archived segments, and past the archive, live Kafka's own.

Where each partition's offset is served from is :func:`~pyrostore.serve.decisions.fetch_position`: the
archive where it holds the offset, else live Kafka (``--bootstrap-servers``), whose record batches and
aborted-transaction list are passed through undecoded; offsets neither holds are holes (OFFSET_OUT_OF_RANGE,
logged and counted). With Kafka unreachable, the archive is served alone.

From the archive, each partition answers with the whole batch holding the fetch offset and the batches after
it, within the request's byte limits (the first batch of the response whatever its size: KIP-74), crossing segment
boundaries. An offset below the archive's start, above its end or in a range lost before archiving is
OFFSET_OUT_OF_RANGE (a lost range is logged with topic, partition and offsets); at the end the records are
empty, never null. When fewer than ``min_bytes`` are ready the request waits up to ``max_wait``, re-reading
the newest commit of partitions at their end every refresh interval, so new commits are served as they land.

No fetch sessions (KIP-227): every response has session id 0, which tells clients to send full requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import IntegrityError, StoreError
from pyrostore.serve.cache import BatchCache
from pyrostore.serve.catalog import Snapshot
from pyrostore.serve.context import Api, Broker, RequestContext
from pyrostore.serve.decisions import Budget, Position, fetch_position
from pyrostore.serve.live import KafkaExtent, LivePartition, LiveWant
from pyrostore.serve.messages import item_type, make, response_type
from pyrostore.serve.protocol import Chain

KEY = 1
STALE_MIDDLE = 5.0  # seconds a snapshot may be old while the fetch offset is below its end
log = logging.getLogger("pyrostore.serve")


@dataclass
class PartitionResult:
    """What one partition of a fetch found."""

    error: ErrorCode = ErrorCode.none
    batches: list[bytes | memoryview] = field(default_factory=list)
    snapshot: Snapshot | None = None
    lost: tuple[int, int] | None = None  # the archive recorded the offset's range [start, end) as lost
    reading: bool = False  # the archive holds the offset: its batches go here
    kafka: KafkaExtent | None = None  # what Kafka held, as last seen
    from_kafka: bool = False  # live Kafka holds the offset: its answer goes here
    live: LivePartition | None = None  # Kafka's own answer, when Kafka served the partition

    @property
    def size(self) -> int:
        """Bytes of records found."""
        return sum(len(b) for b in self.batches)


@dataclass(frozen=True)
class Wanted:
    """One partition a fetch asks for."""

    topic: str | None  # None: a topic id that names no served topic
    topic_id: uuid.UUID | None
    partition: int
    offset: int
    max_bytes: int


def read_partition(
    snapshot: Snapshot, offset: int, max_bytes: int, cache: BatchCache
) -> list[bytes | memoryview] | tuple[int, int]:
    """Batches from the one holding ``offset`` on, within the partition's ``max_bytes`` (the first whatever its
    size), up to a lost range; or, when the offset is in a lost range, that range ``(start, end)``. Blocking."""
    batches: list[bytes | memoryview] = []
    reader = snapshot.reader
    if reader is None:
        return batches
    used = 0
    for entry in reader.segments(offset, None):
        if entry.lost:
            return batches or (entry.base, entry.end)
        for batch in cache.batches(reader, entry).from_offset(offset):
            if used and used + len(batch.data) > max_bytes:
                return batches
            batches.append(batch.data)
            used += len(batch.data)
    return batches


async def collect(
    broker: Broker, connection: int, wanted: list[Wanted], max_bytes: int, min_bytes: int, wait: float, isolation: int
) -> list[PartitionResult]:
    """One pass over the wanted partitions: what each can answer now; what live Kafka serves, it is asked for
    at once, waiting up to ``wait`` seconds when the archive found fewer than ``min_bytes``.

    Archived partitions are read side by side (a cold segment's build does not hold the others'), then the
    response's limit is applied in request order, as if they had been read one after another."""
    budget = Budget(max_bytes)
    results = [await _place(broker, want) for want in wanted]
    reads = [(want, result) for want, result in zip(wanted, results, strict=True) if result.reading]
    found = await asyncio.gather(*(_read(broker, want, result) for want, result in reads))
    for (want, result), batches in zip(reads, found, strict=True):
        if isinstance(batches, tuple):  # the offset is in a lost range: Kafka's, if it holds it
            result.lost = batches
            kafka = result.kafka
            if kafka is not None and want.offset >= kafka.low:
                result.from_kafka = True
            else:
                _hole(broker, want, result)
            continue
        used = 0
        for batch in batches:
            if not budget.take(len(batch), used, want.max_bytes):
                break
            result.batches.append(batch)
            used += len(batch)
    live = [i for i, result in enumerate(results) if result.from_kafka]
    if live:
        ready = sum(r.size for r in results)
        await _from_kafka(broker, connection, wanted, results, live, budget, min_bytes - ready, wait, isolation)
    return results


async def _place(broker: Broker, want: Wanted) -> PartitionResult:
    """Where one partition's answer comes from: an error now, the archive (``reading``), or live Kafka
    (``from_kafka``)."""
    catalog, live = broker.catalog, broker.live
    served = catalog.topic(want.topic) if want.topic is not None else None
    if served is None or not 0 <= want.partition < served.partitions:
        unknown_id = want.topic is None and want.topic_id is not None
        return PartitionResult(ErrorCode.unknown_topic_id if unknown_id else ErrorCode.unknown_topic_or_partition)
    try:
        last = catalog.cached(served.name, want.partition)
        at_end = last is None or want.offset >= last.next_offset
        max_age = broker.config.refresh_interval if at_end else STALE_MIDDLE
        snapshot = await catalog.snapshot(served.name, want.partition, max_age)
    except (StoreError, IntegrityError) as exc:
        return _storage_error(want, exc)
    # Kafka's high watermark goes with archived records too: a client reaching the archive's end must not take
    # it for the partition's end (librdkafka reports end-of-partition at the high watermark).
    kafka = await live.extent(served.name, want.partition, broker.config.refresh_interval) if live else None
    extent = (kafka.low, kafka.high) if kafka else None
    position = fetch_position(want.offset, snapshot.start, snapshot.next_offset, extent)
    result = PartitionResult(snapshot=snapshot, kafka=kafka)
    if position is Position.RECORDS:
        result.reading = True
    elif position is Position.KAFKA:
        result.from_kafka = True
    elif position is Position.HOLE:
        _hole(broker, want, result)
    elif position is Position.OUT_OF_RANGE:
        result.error = ErrorCode.offset_out_of_range
    return result


async def _read(broker: Broker, want: Wanted, result: PartitionResult) -> list[bytes | memoryview] | tuple[int, int]:
    """:func:`read_partition` on a worker thread; a store failure becomes the partition's error."""
    assert result.snapshot is not None
    try:
        return await asyncio.to_thread(read_partition, result.snapshot, want.offset, want.max_bytes, broker.batches)
    except (StoreError, IntegrityError) as exc:
        result.error = _storage_error(want, exc).error
        return []


def _storage_error(want: Wanted, exc: Exception) -> PartitionResult:
    log.warning("Fetch %s [%d] at offset %d: %s", want.topic, want.partition, want.offset, exc)
    return PartitionResult(ErrorCode.kafka_storage_error)


def _hole(broker: Broker, want: Wanted, result: PartitionResult) -> None:
    """Answer OFFSET_OUT_OF_RANGE for an offset that neither the archive nor Kafka holds; log and count it."""
    topic, partition, offset = want.topic, want.partition, want.offset
    result.error = ErrorCode.offset_out_of_range
    broker.metrics.holes.labels(topic, str(partition)).inc()
    if result.lost is not None:
        first, end = result.lost
        why = "were lost before they were archived"
    else:
        first = result.snapshot.next_offset if result.snapshot else offset
        end = result.kafka.low if result.kafka else offset + 1
        why = "are in neither the archive nor Kafka"
    log.warning(
        "%s [%d]: offsets %d..%d %s: fetch at %d answered OFFSET_OUT_OF_RANGE",
        *(topic, partition, first, end - 1, why, offset),
    )


async def _from_kafka(
    broker: Broker,
    connection: int,
    wanted: list[Wanted],
    results: list[PartitionResult],
    indexes: list[int],
    budget: Budget,
    min_bytes: int,
    wait: float,
    isolation: int,
) -> None:
    """Ask live Kafka for the partitions at ``indexes`` and fill in their results; while Kafka cannot be asked
    (or does not know a partition), those partitions answer no records, as at the end of the archive."""
    assert broker.live is not None
    asks = [LiveWant(w.topic or "", w.partition, w.offset, w.max_bytes) for w in (wanted[i] for i in indexes)]
    found = await broker.live.fetch(
        connection,
        asks,
        max_wait_ms=int(wait * 1000) if min_bytes > 0 else 0,
        min_bytes=max(min_bytes, 1),
        max_bytes=max(budget.max_bytes - budget.used, 1),
        isolation_level=isolation,
    )
    for i, ask in zip(indexes, asks, strict=True):
        result = results[i]
        answer = found.get((ask.topic, ask.partition)) if found is not None else None
        if answer is None:
            continue
        result.live = answer
        result.error = ErrorCode(answer.error)
        if answer.records:
            result.batches.append(answer.records)
            budget.used += len(answer.records)


def wanted_partitions(ctx: RequestContext) -> list[Wanted]:
    """The partitions a fetch request names, topics by name or (v13+) by id."""
    wanted = []
    for topic in ctx.body.topics:
        topic_id = getattr(topic, "topic_id", None)
        name = getattr(topic, "topic", None)
        if name is None and topic_id is not None:
            served = ctx.broker.catalog.topic_by_id(topic_id)
            name = served.name if served else None
        for p in topic.partitions:
            wanted.append(Wanted(name, topic_id, p.partition, p.fetch_offset, p.partition_max_bytes))
    return wanted


async def handle(ctx: RequestContext) -> Any:
    """Records for each requested partition, waiting for ``min_bytes`` up to ``max_wait``."""
    broker, body = ctx.broker, ctx.body
    started = time.monotonic()
    await broker.catalog.topics()
    wanted = wanted_partitions(ctx)
    isolation = getattr(body, "isolation_level", 0)
    deadline = time.monotonic() + body.max_wait.total_seconds()
    while True:
        remaining = deadline - time.monotonic()
        results = await collect(
            broker, ctx.connection, wanted, body.max_bytes, body.min_bytes, max(remaining, 0), isolation
        )
        ready = sum(r.size for r in results)
        failed = any(r.error is not ErrorCode.none for r in results)
        remaining = deadline - time.monotonic()
        if failed or ready >= body.min_bytes or remaining <= 0:
            break
        await asyncio.sleep(min(broker.config.refresh_interval, remaining))
    for result in results:
        broker.metrics.served("kafka" if result.live else "archive", result.batches)
    broker.metrics.fetch_seconds.observe(time.monotonic() - started)
    return response(ctx, wanted, results)


def response(ctx: RequestContext, wanted: list[Wanted], results: list[PartitionResult]) -> Any:
    """The Fetch response in the request's version, topics in the request's order."""
    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "responses")
    partition_type = item_type(topic_type, "partitions")
    aborted_type = item_type(partition_type, "aborted_transactions")
    read_committed = getattr(ctx.body, "isolation_level", 0) == 1
    grouped: dict[tuple[str | None, uuid.UUID | None], list[Any]] = {}
    for want, result in zip(wanted, results, strict=True):
        high, stable, start = watermarks(result)
        aborted: Any = None
        if read_committed:
            live = result.live.aborted if result.live else None
            aborted = tuple(make(aborted_type, producer_id=p, first_offset=f) for p, f in live or ())
        grouped.setdefault((want.topic, want.topic_id), []).append(
            make(
                partition_type,
                partition_index=want.partition,
                error_code=result.error,
                high_watermark=high,
                last_stable_offset=stable,
                log_start_offset=start,
                aborted_transactions=aborted,
                preferred_read_replica=-1,
                records=Chain(result.batches),  # the batches themselves, not a copy
            )
        )
    topics = tuple(
        make(topic_type, topic=name or "", topic_id=topic_id, partitions=tuple(partitions))
        for (name, topic_id), partitions in grouped.items()
    )
    return make(cls, throttle_time=timedelta(0), error_code=ErrorCode.none, session_id=0, responses=topics)


def watermarks(result: PartitionResult) -> tuple[int, int, int]:
    """High watermark, last stable offset and log start of a partition's answer: Kafka's own when it served
    the partition, else the archive's widened by what Kafka was last seen to hold; -1 when unknown."""
    snapshot, kafka, live = result.snapshot, result.kafka, result.live
    archived = snapshot is not None and snapshot.next_offset > snapshot.start
    archive_start = snapshot.start if snapshot and archived else None
    if live is not None:
        starts = [s for s in (archive_start, live.log_start_offset) if s is not None and s >= 0]
        return live.high_watermark, live.last_stable_offset, min(starts) if starts else -1
    if snapshot is None:
        return -1, -1, -1
    if kafka is None:
        return snapshot.next_offset, snapshot.next_offset, snapshot.start
    high = max(snapshot.next_offset, kafka.high)
    return high, high, min(snapshot.start, kafka.low) if archived else kafka.low


API = Api(KEY, "Fetch", (4, 18), handle)
