"""Metadata (key 3): a one-broker cluster that leads every partition of the served topics.

The broker is this server at its advertised address; it is also the controller. Topics carry their Kafka
topic id (from the archive's topic descriptor) so that clients using topic ids (Fetch 13+) address them as
they would on Kafka. Leader epochs are -1 ("unknown"): clients then skip offset validation against leader
epochs, which this server does not answer (no OffsetForLeaderEpoch). Topics are never created.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.catalog import ServedTopic
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type

KEY = 3
NO_ID = uuid.UUID(int=0)
UNKNOWN_OPERATIONS = -(2**31)  # "authorized operations not asked for"


async def handle(ctx: RequestContext) -> Any:
    """The broker and the requested topics (all served topics when the request names none)."""
    broker = ctx.broker
    served = await broker.catalog.topics()
    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "topics")
    partition_type = item_type(topic_type, "partitions")
    node = broker.node_id

    def present(topic: ServedTopic) -> Any:
        partitions = tuple(
            make(
                partition_type,
                error_code=ErrorCode.none,
                partition_index=p,
                leader_id=node,
                leader_epoch=-1,
                replica_nodes=(node,),
                isr_nodes=(node,),
                offline_replicas=(),
            )
            for p in range(topic.partitions)
        )
        return make(
            topic_type,
            error_code=ErrorCode.none,
            name=topic.name,
            topic_id=topic.topic_id,
            is_internal=False,
            partitions=partitions,
            topic_authorized_operations=UNKNOWN_OPERATIONS,
        )

    requested = ctx.body.topics
    if requested is None or (ctx.version == 0 and not requested):  # v0: an empty list means every topic
        topics = tuple(present(t) for t in served.values())
    else:
        answers = []
        for wanted in requested:
            name, topic_id = wanted.name, getattr(wanted, "topic_id", None)
            if name is not None:
                topic = broker.catalog.topic(name)
            else:
                topic = broker.catalog.topic_by_id(topic_id) if topic_id is not None else None
            if topic is not None:
                answers.append(present(topic))
                continue
            error = ErrorCode.unknown_topic_or_partition if name is not None else ErrorCode.unknown_topic_id
            answers.append(
                make(
                    topic_type,
                    error_code=error,
                    name=name,
                    topic_id=topic_id or NO_ID,
                    is_internal=False,
                    partitions=(),
                    topic_authorized_operations=UNKNOWN_OPERATIONS,
                )
            )
        topics = tuple(answers)
    address = broker.address
    brokers = (make(item_type(cls, "brokers"), node_id=node, host=address.host, port=address.port, rack=None),)
    return make(
        cls,
        throttle_time=timedelta(0),
        brokers=brokers,
        cluster_id=broker.cluster_id,
        controller_id=node,
        topics=topics,
        cluster_authorized_operations=UNKNOWN_OPERATIONS,
        error_code=ErrorCode.none,
    )


API = Api(KEY, "Metadata", (0, 13), handle)
