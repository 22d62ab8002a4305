"""ListOffsets (key 2): earliest, latest and by time, through the archive's tree index.

Earliest is the first offset the archive or live Kafka holds, latest Kafka's own answer (its high watermark,
or last stable offset for read_committed clients), or without Kafka the archive's next offset, from the
partition's newest commit (re-read when older than the refresh interval). A time is found as Kafka's
``offsetsForTimes`` finds it: the index leads to the first segment holding a timestamp at or after it, and
that segment's offset and timestamp columns give the first such record, with its timestamp; a time after
every archived record is asked of Kafka. While Kafka cannot be asked, the archive answers alone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import IntegrityError, StoreError
from pyrostore.index.tree import find_time
from pyrostore.serve.catalog import Snapshot
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.decisions import LATEST, MAX_TIMESTAMP, first_at_or_after, list_offset
from pyrostore.serve.messages import item_type, make, response_type

KEY = 2
log = logging.getLogger("pyrostore.serve")


def find_time_offset(snapshot: Snapshot, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) of the first archived record at or after ``timestamp``, or (-1, -1). Blocking."""
    reader = snapshot.reader
    if reader is None:
        return -1, -1
    entry = find_time(reader.nodes, reader.commit.root, timestamp)
    if entry is None:
        return -1, -1
    table = reader.read_segment(entry, columns=["offset", "timestamp"])
    offsets = table.column("offset").to_pylist()
    stamps = table.column("timestamp").cast("int64").to_pylist()
    found = first_at_or_after(offsets, stamps, timestamp)
    if found is None:
        raise IntegrityError(
            f"{snapshot.topic}/{snapshot.partition}: the segment at {entry.base} holds no "
            f"timestamp at or after {timestamp}, though its index entry says so"
        )
    return found


async def handle(ctx: RequestContext) -> Any:
    """Offsets for each requested partition."""
    broker = ctx.broker
    await broker.catalog.topics()
    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "topics")
    partition_type = item_type(topic_type, "partitions")
    topics = []
    for topic in ctx.body.topics:
        served = broker.catalog.topic(topic.name)
        partitions = []
        for wanted in topic.partitions:
            index = wanted.partition_index
            error, offset, stamp = ErrorCode.unknown_topic_or_partition, -1, -1
            if served is not None and 0 <= index < served.partitions:
                try:
                    offset, stamp = await answer(ctx, topic.name, index, wanted.timestamp)
                    error = ErrorCode.none
                except (StoreError, IntegrityError) as exc:
                    log.warning("ListOffsets %s [%d]: %s", topic.name, index, exc)
                    error, offset, stamp = ErrorCode.kafka_storage_error, -1, -1
            partitions.append(
                make(
                    partition_type,
                    partition_index=index,
                    error_code=error,
                    timestamp=stamp,
                    offset=offset,
                    leader_epoch=-1,
                    old_style_offsets=(),
                )
            )
        topics.append(make(topic_type, name=topic.name, partitions=tuple(partitions)))
    return make(cls, throttle_time=timedelta(0), topics=tuple(topics))


async def answer(ctx: RequestContext, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) for one partition. Raises StoreError, IntegrityError."""
    broker, live = ctx.broker, ctx.broker.live
    snapshot = await broker.catalog.snapshot(topic, partition, broker.config.refresh_interval)
    kafka = await live.extent(topic, partition, broker.config.refresh_interval) if live else None
    decided = list_offset(
        timestamp, snapshot.start, snapshot.next_offset, snapshot.max_timestamp, kafka.low if kafka else None
    )
    if decided.ask_kafka and live is not None:
        asked = await live.offset(topic, partition, LATEST, getattr(ctx.body, "isolation_level", 0))
        return max(asked, (decided.offset, -1)) if asked else (decided.offset, -1)
    found = (decided.offset, decided.timestamp)
    if decided.lookup is not None:
        found = await asyncio.to_thread(find_time_offset, snapshot, decided.lookup)
    if live is not None and kafka is not None and timestamp >= 0 and found[0] < 0:
        found = await live.offset(topic, partition, timestamp, 0) or found  # after every archived record
    if live is not None and kafka is not None and timestamp == MAX_TIMESTAMP and kafka.high > snapshot.next_offset:
        newest = await live.offset(topic, partition, MAX_TIMESTAMP, 0)
        if newest is not None and newest[0] >= 0 and newest[1] > found[1]:
            found = newest  # Kafka holds a newer record than any archived
    return found


API = Api(KEY, "ListOffsets", (1, 11), handle)
