"""ListGroups (key 16): every group this server knows (what ``kafka-consumer-groups --list`` shows).

Groups with members here and groups with committed offsets in the store (Empty); v4+ filters by state, v5+ by
type (all are classic), both case-insensitively as Kafka does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import StoreError
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type

KEY = 16
CLASSIC = "classic"


async def handle(ctx: RequestContext) -> Any:
    """The known groups, filtered."""
    cls = response_type(KEY, ctx.version)
    try:
        summaries = await ctx.broker.groups.listing()
    except StoreError as exc:
        error = ctx.broker.groups.store_failure("*", "listing groups", exc)
        return make(cls, throttle_time=timedelta(0), error_code=error, groups=())
    states = {s.lower() for s in getattr(ctx.body, "states_filter", ())}
    types = {t.lower() for t in getattr(ctx.body, "types_filter", ())}
    entry = item_type(cls, "groups")
    groups = tuple(
        make(
            entry,
            group_id=s.group_id,
            protocol_type=s.protocol_type,
            group_state=s.state.value,
            group_type=CLASSIC,
        )
        for s in summaries
        if (not states or s.state.value.lower() in states) and (not types or CLASSIC in types)
    )
    return make(cls, throttle_time=timedelta(0), error_code=ErrorCode.none, groups=groups)


API = Api(KEY, "ListGroups", (0, 5), handle)
