"""FindCoordinator (key 10): this broker coordinates every consumer group.

Group keys are answered with this broker at its advertised address, one answer per key (v4+ batches keys).
Transactions cannot be coordinated by a read-only server: a transactional key gets
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report instead of retrying (as Produce is refused with an
authorization error); other key types (share groups) get INVALID_REQUEST.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type

KEY = 10
GROUP, TRANSACTION = 0, 1
NO_TRANSACTIONS = "pyrostore serve is read-only: it coordinates no transactions"


async def handle(ctx: RequestContext) -> Any:
    """The coordinator of each requested key."""
    broker = ctx.broker
    key_type = getattr(ctx.body, "key_type", GROUP)
    cls = response_type(KEY, ctx.version)

    def answer(key: str) -> dict[str, Any]:
        if key_type == GROUP:
            address = broker.address
            return dict(
                key=key,
                error_code=ErrorCode.none,
                error_message=None,
                node_id=broker.node_id,
                host=address.host,
                port=address.port,
            )
        error = (
            ErrorCode.transactional_id_authorization_failed if key_type == TRANSACTION else ErrorCode.invalid_request
        )
        message = NO_TRANSACTIONS if key_type == TRANSACTION else f"unknown coordinator key type {key_type}"
        return dict(key=key, error_code=error, error_message=message, node_id=-1, host="", port=-1)

    if ctx.version >= 4:
        entry = item_type(cls, "coordinators")
        coordinators = tuple(make(entry, **answer(key)) for key in ctx.body.coordinator_keys)
        return make(cls, throttle_time=timedelta(0), coordinators=coordinators)
    return make(cls, throttle_time=timedelta(0), **answer(ctx.body.key))


API = Api(KEY, "FindCoordinator", (0, 6), handle)
