"""JoinGroup (key 11): a member joins a classic group and waits for the rebalance to answer it.

The answer comes from the group coordinator (``serve/groups``) once the join phase completes; the leader gets
every member's metadata for the chosen protocol. JoinGroup v4+ first hands a new member its id with
MEMBER_ID_REQUIRED; v0 has no rebalance timeout (the session timeout serves); before v7 the response's
protocol name cannot be null.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.groups.model import JoinRequest
from pyrostore.serve.messages import item_type, make, response_type

KEY = 11


def client_host(peer: str) -> str:
    """The member's host as Kafka shows it in DescribeGroups (``/host``), from the connection's ``host:port``."""
    return "/" + peer.rsplit(":", 1)[0].strip("[]")


async def handle(ctx: RequestContext) -> Any:
    """Join, wait for the rebalance, answer."""
    body = ctx.body
    session = body.session_timeout.total_seconds()
    rebalance = getattr(body, "rebalance_timeout", None)
    request = JoinRequest(
        member_id=body.member_id,
        instance_id=getattr(body, "group_instance_id", None),
        client_id=ctx.request.client_id or "",
        client_host=client_host(ctx.peer),
        session_timeout=session,
        rebalance_timeout=rebalance.total_seconds() if rebalance is not None and rebalance >= timedelta(0) else session,
        protocol_type=body.protocol_type,
        protocols=tuple((p.name, p.metadata) for p in body.protocols),
        requires_known_member_id=ctx.version >= 4,
        supports_skip_assignment=ctx.version >= 9,
    )
    result = await ctx.broker.groups.join(body.group_id, request)
    cls = response_type(KEY, ctx.version)
    entry = item_type(cls, "members")
    members = tuple(
        make(entry, member_id=m.member_id, group_instance_id=m.instance_id, metadata=m.metadata) for m in result.members
    )
    return make(
        cls,
        throttle_time=timedelta(0),
        error_code=result.error,
        generation_id=result.generation,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if ctx.version >= 7 else result.protocol_name or "",
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=members,
    )


API = Api(KEY, "JoinGroup", (0, 9), handle)
