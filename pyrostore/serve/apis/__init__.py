"""One module per Kafka API the server answers; :data:`APIS` lists them for the dispatcher and ApiVersions."""

from __future__ import annotations

from pyrostore.serve.apis import api_versions, fetch, list_offsets, metadata, produce
from pyrostore.serve.context import Api

APIS: tuple[Api, ...] = (produce.API, fetch.API, list_offsets.API, metadata.API, api_versions.API)
