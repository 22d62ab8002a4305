"""One module per Kafka API the server answers; :data:`APIS` lists them for the dispatcher and ApiVersions."""

from __future__ import annotations

from pyrostore.serve.apis import (
    api_versions,
    describe_groups,
    fetch,
    find_coordinator,
    heartbeat,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    produce,
    sync_group,
)
from pyrostore.serve.context import Api

APIS: tuple[Api, ...] = (produce.API, fetch.API, list_offsets.API, metadata.API, api_versions.API)
GROUP_APIS: tuple[Api, ...] = (
    offset_commit.API,
    offset_fetch.API,
    find_coordinator.API,
    join_group.API,
    heartbeat.API,
    leave_group.API,
    sync_group.API,
    describe_groups.API,
    list_groups.API,
)
APIS += GROUP_APIS
