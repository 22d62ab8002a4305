"""DescribeGroups (key 15): state, protocol and members of groups (what ``kafka-consumer-groups --describe``
shows).

Member metadata and assignments are given while the group is stable, as Kafka gives them. A group with
committed offsets and no members is Empty; an unknown group is Dead, with GROUP_ID_NOT_FOUND from v6 on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import StoreError
from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.groups.model import GroupState
from pyrostore.serve.messages import item_type, make, response_type

KEY = 15
UNKNOWN_OPERATIONS = -(2**31)


async def handle(ctx: RequestContext) -> Any:
    """Each requested group."""
    cls = response_type(KEY, ctx.version)
    group_type = item_type(cls, "groups")
    member_type = item_type(group_type, "members")
    groups = []
    for group_id in ctx.body.groups:
        values: dict[str, Any] = dict(
            group_id=group_id,
            error_message=None,
            protocol_type="",
            protocol_data="",
            members=(),
            authorized_operations=UNKNOWN_OPERATIONS,
        )
        try:
            summary = await ctx.broker.groups.describe(group_id)
        except StoreError as exc:
            error = ctx.broker.groups.store_failure(group_id, "reading committed offsets", exc)
            groups.append(make(group_type, error_code=error, group_state="", **values))
            continue
        if summary is None:
            error = ErrorCode.group_id_not_found if ctx.version >= 6 else ErrorCode.none
            groups.append(make(group_type, error_code=error, group_state=GroupState.DEAD.value, **values))
            continue
        values["protocol_type"], values["protocol_data"] = summary.protocol_type, summary.protocol_name
        values["members"] = tuple(
            make(
                member_type,
                member_id=m.member_id,
                group_instance_id=m.instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata,
                member_assignment=m.assignment,
            )
            for m in summary.members
        )
        groups.append(make(group_type, error_code=ErrorCode.none, group_state=summary.state.value, **values))
    return make(cls, throttle_time=timedelta(0), groups=tuple(groups))


API = Api(KEY, "DescribeGroups", (0, 6), handle)
