"""ListOffsets (key 2): earliest, latest and by time, through the archive's tree index.

Earliest is the archive's start, latest its next offset (the high watermark), both from the partition's
newest commit (re-read when older than the refresh interval). A time is found as Kafka's ``offsetsForTimes``
finds it: the index leads to the first segment holding a timestamp at or after it, and that segment's
offset and timestamp columns give the first such record, with its timestamp.
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
from pyrostore.serve.decisions import first_at_or_after, list_offset
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
                    snapshot = await broker.catalog.snapshot(topic.name, index, broker.config.refresh_interval)
                    answer = list_offset(wanted.timestamp, snapshot.start, snapshot.next_offset, snapshot.max_timestamp)
                    offset, stamp = answer.offset, answer.timestamp
                    if answer.lookup is not None:
                        offset, stamp = await asyncio.to_thread(find_time_offset, snapshot, answer.lookup)
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


API = Api(KEY, "ListOffsets", (1, 11), handle)
