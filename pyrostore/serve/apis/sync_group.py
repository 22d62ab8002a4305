"""SyncGroup (key 14): the leader hands over every member's assignment; each member gets its own.

Assignments are opaque bytes relayed unchanged (the coordinator never reads them). v5 names the protocol type
and name the member joined with; a mismatch, or either missing, is INCONSISTENT_GROUP_PROTOCOL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.groups.model import SyncRequest, SyncResult
from pyrostore.serve.messages import make, response_type

KEY = 14


async def handle(ctx: RequestContext) -> Any:
    """Wait for the leader's assignments, answer this member's."""
    body = ctx.body
    request = SyncRequest(
        body.member_id,
        getattr(body, "group_instance_id", None),
        body.generation_id,
        getattr(body, "protocol_type", None),
        getattr(body, "protocol_name", None),
        {a.member_id: a.assignment for a in body.assignments},
    )
    if ctx.version >= 5 and (request.protocol_type is None or request.protocol_name is None):
        result = SyncResult(ErrorCode.inconsistent_group_protocol)  # mandatory from v5 on, as Kafka checks first
    else:
        result = await ctx.broker.groups.sync(body.group_id, request)
    return make(
        response_type(KEY, ctx.version),
        throttle_time=timedelta(0),
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


API = Api(KEY, "SyncGroup", (0, 5), handle)
