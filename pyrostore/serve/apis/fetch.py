"""Fetch (key 1): record batches built from archived segments.

Each partition answers with the whole batch holding the fetch offset and the batches after it, within the
request's byte limits (the first batch of the response whatever its size: KIP-74), crossing segment
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
from pyrostore.serve.messages import item_type, make, response_type

KEY = 1
STALE_MIDDLE = 5.0  # seconds a snapshot may be old while the fetch offset is below its end
log = logging.getLogger("pyrostore.serve")


@dataclass
class PartitionResult:
    """What one partition of a fetch found."""

    error: ErrorCode = ErrorCode.none
    batches: list[bytes] = field(default_factory=list)
    snapshot: Snapshot | None = None

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
    snapshot: Snapshot, offset: int, budget: Budget, max_bytes: int, cache: BatchCache
) -> PartitionResult:
    """Batches from the one holding ``offset`` on, while the budget allows; a lost range is a hole. Blocking."""
    result = PartitionResult(snapshot=snapshot)
    reader = snapshot.reader
    if reader is None:
        return result
    used = 0
    for entry in reader.segments(offset, None):
        if entry.lost:
            if not result.batches:
                log.warning(
                    "%s [%d]: offsets %d..%d were lost before they were archived: answering OFFSET_OUT_OF_RANGE",
                    snapshot.topic,
                    snapshot.partition,
                    entry.base,
                    entry.end - 1,
                )
                result.error = ErrorCode.offset_out_of_range
            return result
        for batch in cache.batches(reader, entry).from_offset(offset):
            if not budget.take(len(batch.data), used, max_bytes):
                return result
            result.batches.append(batch.data)
            used += len(batch.data)
    return result


async def collect(broker: Broker, wanted: list[Wanted], max_bytes: int) -> list[PartitionResult]:
    """One pass over the wanted partitions: what each can answer now."""
    catalog, refresh = broker.catalog, broker.config.refresh_interval
    budget = Budget(max_bytes)
    results = []
    for want in wanted:
        served = catalog.topic(want.topic) if want.topic is not None else None
        if served is None or not 0 <= want.partition < served.partitions:
            unknown_id = want.topic is None and want.topic_id is not None
            results.append(
                PartitionResult(ErrorCode.unknown_topic_id if unknown_id else ErrorCode.unknown_topic_or_partition)
            )
            continue
        try:
            last = catalog.cached(served.name, want.partition)
            at_end = last is None or want.offset >= last.next_offset
            snapshot = await catalog.snapshot(served.name, want.partition, refresh if at_end else STALE_MIDDLE)
            position = fetch_position(want.offset, snapshot.start, snapshot.next_offset)
            if position is Position.OUT_OF_RANGE:
                results.append(PartitionResult(ErrorCode.offset_out_of_range, snapshot=snapshot))
            elif position is Position.END:
                results.append(PartitionResult(snapshot=snapshot))
            else:
                results.append(
                    await asyncio.to_thread(
                        read_partition, snapshot, want.offset, budget, want.max_bytes, broker.batches
                    )
                )
        except (StoreError, IntegrityError) as exc:
            log.warning("Fetch %s [%d] at offset %d: %s", served.name, want.partition, want.offset, exc)
            results.append(PartitionResult(ErrorCode.kafka_storage_error))
    return results


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
    await broker.catalog.topics()
    wanted = wanted_partitions(ctx)
    deadline = time.monotonic() + body.max_wait.total_seconds()
    while True:
        results = await collect(broker, wanted, body.max_bytes)
        ready = sum(r.size for r in results)
        failed = any(r.error is not ErrorCode.none for r in results)
        remaining = deadline - time.monotonic()
        if failed or ready >= body.min_bytes or remaining <= 0:
            break
        await asyncio.sleep(min(broker.config.refresh_interval, remaining))
    return response(ctx, wanted, results)


def response(ctx: RequestContext, wanted: list[Wanted], results: list[PartitionResult]) -> Any:
    """The Fetch response in the request's version, topics in the request's order."""
    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "responses")
    partition_type = item_type(topic_type, "partitions")
    read_committed = getattr(ctx.body, "isolation_level", 0) == 1
    grouped: dict[tuple[str | None, uuid.UUID | None], list[Any]] = {}
    for want, result in zip(wanted, results, strict=True):
        snapshot = result.snapshot
        grouped.setdefault((want.topic, want.topic_id), []).append(
            make(
                partition_type,
                partition_index=want.partition,
                error_code=result.error,
                high_watermark=snapshot.next_offset if snapshot else -1,
                last_stable_offset=snapshot.next_offset if snapshot else -1,
                log_start_offset=snapshot.start if snapshot else -1,
                aborted_transactions=() if read_committed else None,
                preferred_read_replica=-1,
                records=b"".join(result.batches),
            )
        )
    topics = tuple(
        make(topic_type, topic=name or "", topic_id=topic_id, partitions=tuple(partitions))
        for (name, topic_id), partitions in grouped.items()
    )
    return make(cls, throttle_time=timedelta(0), error_code=ErrorCode.none, session_id=0, responses=topics)


API = Api(KEY, "Fetch", (4, 18), handle)
