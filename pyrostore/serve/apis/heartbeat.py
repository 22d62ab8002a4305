"""Heartbeat (key 12): a member keeps its session; REBALANCE_IN_PROGRESS tells it to rejoin.

UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION are answered as Kafka answers them (the member rejoins).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import make, response_type

KEY = 12


async def handle(ctx: RequestContext) -> Any:
    """The member's session is kept, or why not."""
    body = ctx.body
    error = ctx.broker.groups.heartbeat(
        body.group_id, body.member_id, getattr(body, "group_instance_id", None), body.generation_id
    )
    return make(response_type(KEY, ctx.version), throttle_time=timedelta(0), error_code=error)


API = Api(KEY, "Heartbeat", (0, 4), handle)
