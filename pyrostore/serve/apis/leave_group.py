"""LeaveGroup (key 13): members leave a group, which rebalances without them.

v3+ names several members (a static member by its instance id alone, as admin tools do); before v3 one member
and one error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type

KEY = 13


async def handle(ctx: RequestContext) -> Any:
    """Remove the members; the group's error and, v3+, each member's."""
    body = ctx.body
    if ctx.version >= 3:
        leaving = [(m.member_id, m.group_instance_id) for m in body.members]
    else:
        leaving = [(body.member_id, None)]
    error, errors = ctx.broker.groups.leave(body.group_id, leaving)
    cls = response_type(KEY, ctx.version)
    if ctx.version < 3:  # one member: its error is the answer's
        first = errors[0] if errors else ErrorCode.none
        return make(cls, throttle_time=timedelta(0), error_code=error if error is not ErrorCode.none else first)
    entry = item_type(cls, "members")
    members = tuple(
        make(entry, member_id=member_id, group_instance_id=instance_id, error_code=member_error)
        for (member_id, instance_id), member_error in zip(leaving, errors, strict=False)
    )
    return make(cls, throttle_time=timedelta(0), error_code=error, members=members)


API = Api(KEY, "LeaveGroup", (0, 5), handle)
