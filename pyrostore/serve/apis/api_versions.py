"""ApiVersions (key 18): which APIs and versions the server answers.

A client sends it first, at the newest version it knows; a version this server does not know is answered in
the v0 format with UNSUPPORTED_VERSION and the list, and the client retries with a version from it. The
response header of ApiVersions never has tagged fields (kio's types know that).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.serve.context import Api, RequestContext
from pyrostore.serve.messages import item_type, make, response_type
from pyrostore.serve.versions import api_versions_answer

KEY = 18


async def handle(ctx: RequestContext) -> Any:
    """The advertised API versions, in the request's version or in v0 when it is unknown."""
    table = ctx.broker.versions
    version = api_versions_answer(ctx.version, table, KEY) if ctx.body is not None else 0
    error = ErrorCode.none if ctx.body is not None and version == ctx.version else ErrorCode.unsupported_version
    cls = response_type(KEY, version)
    entry = item_type(cls, "api_keys")
    keys = tuple(make(entry, api_key=key, min_version=low, max_version=high) for key, (low, high) in table.items())
    return make(cls, error_code=error, api_keys=keys, throttle_time=timedelta(0))


API = Api(KEY, "ApiVersions", (0, 4), handle)
