"""OffsetCommit (key 8): a group's consumers commit offsets, kept durably in the archive's store.

Partitions of topics the server does not serve (or beyond a topic's partitions) are UNKNOWN_TOPIC_OR_PARTITION
(v10, by topic id: UNKNOWN_TOPIC_ID), as Kafka checks them before the group. The others are committed if the
group lets the member commit (:meth:`~pyrostore.serve.groups.group.Group.validate_commit`), all in one write of
the group's offsets; a store that refuses the write (read-only credentials) gives GROUP_AUTHORIZATION_FAILED,
one that fails COORDINATOR_NOT_AVAILABLE. Metadata above 4096 characters is OFFSET_METADATA_TOO_LARGE.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.groups.offsets import Committed, Partition
from pyrostore.serve.messages import item_type, make, response_type

KEY = 8
MAX_METADATA = 4096  # Kafka's offset.metadata.max.bytes


async def handle(ctx: RequestContext) -> Any:
    """Commit the offsets of known partitions; an error for each partition."""
    body, catalog = ctx.body, ctx.broker.catalog
    await catalog.topics()
    now = int(time.time() * 1000)
    by_id = ctx.version >= 10
    commits: dict[Partition, Committed] = {}
    own: dict[tuple[int, int], ErrorCode] = {}  # (topic's place in the request, partition): an error of its own
    for place, topic in enumerate(body.topics):
        served = catalog.topic_by_id(topic.topic_id) if by_id else catalog.topic(topic.name)
        for p in topic.partitions:
            index = p.partition_index
            if served is None:
                own[place, index] = ErrorCode.unknown_topic_id if by_id else ErrorCode.unknown_topic_or_partition
            elif not 0 <= index < served.partitions:
                own[place, index] = ErrorCode.unknown_topic_or_partition
            elif p.committed_metadata is not None and len(p.committed_metadata) > MAX_METADATA:
                own[place, index] = ErrorCode.offset_metadata_too_large
            else:
                epoch = getattr(p, "committed_leader_epoch", -1)
                commits[served.name, index] = Committed(p.committed_offset, epoch, p.committed_metadata or "", now)
    member = (body.member_id, getattr(body, "group_instance_id", None), body.generation_id_or_member_epoch)
    error = await ctx.broker.groups.commit(body.group_id, member, commits, ctx.version)

    def outcome(place: int, index: int) -> ErrorCode:
        mine = own.get((place, index))
        if mine is None or (mine is ErrorCode.offset_metadata_too_large and error is not ErrorCode.none):
            return error
        return mine

    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "topics")
    partition_type = item_type(topic_type, "partitions")
    topics = tuple(
        make(
            topic_type,
            name=getattr(topic, "name", None),
            topic_id=getattr(topic, "topic_id", None),
            partitions=tuple(
                make(partition_type, partition_index=p.partition_index, error_code=outcome(place, p.partition_index))
                for p in topic.partitions
            ),
        )
        for place, topic in enumerate(body.topics)
    )
    return make(cls, throttle_time=timedelta(0), topics=topics)


API = Api(KEY, "OffsetCommit", (2, 10), handle)
