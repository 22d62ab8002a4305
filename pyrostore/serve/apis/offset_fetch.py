"""OffsetFetch (key 9): a group's committed offsets, from the archive's store (kept in memory once read).

A partition without a committed offset is answered -1 with no error, as Kafka does (also for a group nobody
knows); no topics asked means every committed offset of the group. v8+ asks for several groups at once, each
with its own error; before that one group, with a top-level error (v2+) or, in v1, an error per partition.
``require_stable`` needs no wait: there are no transactional commits, so nothing is ever unstable. v10 names
topics by id: an id the server does not serve gets UNKNOWN_TOPIC_ID, and offsets of topics it no longer serves
are left out of an all-topics answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import StoreError
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.groups.offsets import Committed, Partition
from pyrostore.serve.messages import item_type, make, response_type

KEY = 9
NONE_COMMITTED = Committed(-1, -1, "")


async def handle(ctx: RequestContext) -> Any:
    """The committed offsets of each requested group."""
    body = ctx.body
    await ctx.broker.catalog.topics()
    cls = response_type(KEY, ctx.version)
    if ctx.version < 8:
        topics, error = await _group(ctx, cls, body.group_id, body.topics)
        return make(cls, throttle_time=timedelta(0), topics=topics, error_code=error)
    group_type = item_type(cls, "groups")
    groups = []
    for group in body.groups:
        topics, error = await _group(ctx, group_type, group.group_id, group.topics)
        groups.append(make(group_type, group_id=group.group_id, topics=topics, error_code=error))
    return make(cls, throttle_time=timedelta(0), groups=tuple(groups))


async def _group(ctx: RequestContext, cls: type, group_id: str, requested: Any) -> tuple[tuple[Any, ...], ErrorCode]:
    """One group's topics (as ``cls``, the response or v8+ its group entry, has them) and error. A store failure
    is the group's error (v2+), or each partition's (v1)."""
    topic_type = item_type(cls, "topics")
    partition_type = item_type(topic_type, "partitions")
    try:
        committed = await ctx.broker.groups.committed(group_id)
    except StoreError as exc:
        error = ctx.broker.groups.store_failure(group_id, "reading committed offsets", exc)
        if ctx.version >= 2:
            return (), error
        return _topics(ctx, topic_type, partition_type, {}, requested, error), error
    return _topics(ctx, topic_type, partition_type, committed, requested, ErrorCode.none), ErrorCode.none


def _topics(
    ctx: RequestContext,
    topic_type: type,
    partition_type: type,
    committed: Mapping[Partition, Committed],
    requested: Any,
    error: ErrorCode,
) -> tuple[Any, ...]:
    catalog, by_id = ctx.broker.catalog, ctx.version >= 10
    wanted: list[tuple[Any, str | None, tuple[int, ...]]] = []  # (topic id, name, partitions)
    if requested is None:  # every committed offset
        names: dict[str, list[int]] = {}
        for known, partition in sorted(committed):
            names.setdefault(known, []).append(partition)
        for known, indexes in names.items():
            served = catalog.topic(known)
            if by_id and served is None:
                continue
            wanted.append((served.topic_id if served else None, known, tuple(indexes)))
    else:
        for topic in requested:
            if by_id:
                served = catalog.topic_by_id(topic.topic_id)
                wanted.append((topic.topic_id, served.name if served else None, tuple(topic.partition_indexes)))
            else:
                wanted.append((None, topic.name, tuple(topic.partition_indexes)))
    answers: list[Any] = []
    for topic_id, name, partitions in wanted:
        own = ErrorCode.unknown_topic_id if name is None else error
        entries: list[Any] = []
        for index in partitions:
            found = committed.get((name, index), NONE_COMMITTED) if name is not None else NONE_COMMITTED
            entries.append(
                make(
                    partition_type,
                    partition_index=index,
                    committed_offset=found.offset,
                    committed_leader_epoch=found.leader_epoch,
                    metadata=found.metadata,
                    error_code=own,
                )
            )
        answers.append(make(topic_type, name=name, topic_id=topic_id, partitions=tuple(entries)))
    return tuple(answers)


API = Api(KEY, "OffsetFetch", (1, 10), handle)
