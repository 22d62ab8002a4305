"""Produce (key 0): advertised, because librdkafka writes v2 record batches only to brokers that advertise
Produce 3 or newer, and always refused: the archive is read-only.

Every partition is answered with TOPIC_AUTHORIZATION_FAILED, which clients report to the application and do
not retry. A request with ``acks=0`` expects no answer at all; as Kafka does when such a request fails, the
connection is closed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import ProtocolError
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type

KEY = 0
REFUSAL = "pyrostore serve is read-only: it serves an archive and accepts no records"
log = logging.getLogger("pyrostore.serve")


async def handle(ctx: RequestContext) -> Any:
    """TOPIC_AUTHORIZATION_FAILED for every partition of the request."""
    body = ctx.body
    if body.acks == 0:
        raise ProtocolError("a produce request with acks=0 was refused (read-only); closing as Kafka does")
    cls = response_type(KEY, ctx.version)
    topic_type = item_type(cls, "responses")
    partition_type = item_type(topic_type, "partition_responses")
    topics = []
    for topic in body.topic_data:
        partitions = tuple(
            make(
                partition_type,
                index=data.index,
                error_code=ErrorCode.topic_authorization_failed,
                base_offset=-1,
                log_append_time=None,
                log_start_offset=-1,
                record_errors=(),
                error_message=REFUSAL,
            )
            for data in topic.partition_data
        )
        name, topic_id = getattr(topic, "name", None), getattr(topic, "topic_id", None)
        log.info(
            "refused a produce request from %s (client %s) for topic %s",
            ctx.peer,
            ctx.request.client_id,
            name or topic_id,
        )
        topics.append(make(topic_type, name=name, topic_id=topic_id, partition_responses=partitions))
    return make(cls, responses=tuple(topics), throttle_time=timedelta(0))


API = Api(KEY, "Produce", (3, 13), handle)
