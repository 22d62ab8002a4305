"""What a request handler gets: the broker's shared state and the request with where it came from.

Handlers are ``async def handle(ctx) -> response``, one module per API, each declaring its key and the
versions it answers (:class:`Api`). State shared across connections lives on :class:`Broker` (the catalog, built
batches, the group coordinator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pyrostore.serve.cache import BatchCache
from pyrostore.serve.catalog import Catalog
from pyrostore.serve.config import Address, ServeConfig
from pyrostore.serve.groups import Coordinator
from pyrostore.serve.live import LiveCluster
from pyrostore.serve.metrics import ServeMetrics
from pyrostore.serve.protocol import Request


@dataclass
class Broker:
    """The one broker this server presents: its settings, node, topics, built batches, group coordinator,
    advertised versions."""

    config: ServeConfig
    catalog: Catalog
    batches: BatchCache
    node_id: int
    address: Address  # advertised to clients
    cluster_id: str
    groups: Coordinator  # the coordinator of every consumer group
    versions: dict[int, tuple[int, int]] = field(default_factory=dict)  # API key: (min, max) advertised
    live: LiveCluster | None = None  # live Kafka past the archive's end (--bootstrap-servers)
    metrics: ServeMetrics = field(default_factory=ServeMetrics)


@dataclass(frozen=True)
class RequestContext:
    """One request being answered, on one connection."""

    broker: Broker
    request: Request
    peer: str  # the client's host:port
    connection: int  # a number naming the connection in logs

    @property
    def body(self) -> Any:
        """The decoded request body (kio's class for the request's API version)."""
        return self.request.body

    @property
    def version(self) -> int:
        """The request's API version."""
        return self.request.api_version


Handler = Callable[[RequestContext], Awaitable[Any]]


@dataclass(frozen=True)
class Api:
    """An API the server answers: its key, name, the versions its handler knows, and the handler."""

    key: int
    name: str
    versions: tuple[int, int]
    handle: Handler
