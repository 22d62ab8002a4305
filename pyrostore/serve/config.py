"""What ``pyrostore serve`` is told: the archive, where to listen, what to tell clients, and its limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pyrostore.errors import InvalidSetting
from pyrostore.serve.tls import ServeTLS

DEFAULT_PORT = 9092
MAX_REQUEST_BYTES = 100 * 2**20
BATCH_BYTES = 2**20
NODE_ID = 0
_ADDRESS = re.compile(r"\[?(?P<host>[^\[\]]*?)\]?:(?P<port>\d{1,5})")
_ANY = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class Address:
    """A host and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, name: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as an :class:`Address`. Raises InvalidSetting naming ``name``."""
    match = _ADDRESS.fullmatch(text.strip())
    if not match or int(match["port"]) > 65535:
        raise InvalidSetting(f"{name}: {text!r} is not HOST:PORT")
    return Address(match["host"], int(match["port"]))


class Compression(StrEnum):
    """How served record batches are compressed (the codecs aiokafka has without optional packages)."""

    NONE = "none"
    GZIP = "gzip"


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server. ``topics`` empty: every topic the archive holds, as it gains them."""

    store_url: str
    store_options: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold credentials
    listen: Address = Address("127.0.0.1", DEFAULT_PORT)
    advertise: Address | None = None
    topics: tuple[str, ...] = ()
    bootstrap_servers: str | None = None  # live Kafka, served past the archive's end
    metrics_port: int | None = None  # Prometheus metrics over HTTP
    kafka_properties: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold credentials
    max_request_bytes: int = MAX_REQUEST_BYTES
    batch_bytes: int = BATCH_BYTES
    compression: Compression = Compression.NONE
    node_id: int = NODE_ID
    refresh_interval: float = 0.5  # seconds: how stale a partition's newest commit may be at its end
    topics_interval: float = 10.0  # seconds: how stale the list of topics and partitions may be
    cache_bytes: int = 256 * 2**20  # built record batches kept for reuse
    group_initial_rebalance_delay: float = 3.0  # seconds a new group waits for more members (Kafka's default)
    tls: ServeTLS | None = None  # the listener speaks TLS (clients: security.protocol=SSL)

    def __post_init__(self) -> None:
        if self.advertise is None and self.listen.host in _ANY:
            raise InvalidSetting(
                f"--listen {self.listen} listens on every interface: give --advertise HOST:PORT, the address "
                "clients connect to"
            )
        if self.max_request_bytes < 1024:
            raise InvalidSetting(f"the request size limit {self.max_request_bytes} is below 1 KiB")
        if self.batch_bytes < 1:
            raise InvalidSetting(f"the batch size {self.batch_bytes} must be at least one byte")

    def advertised(self, bound_port: int) -> Address:
        """The address clients are told to connect to: ``advertise``, else the listen address with the port
        actually bound (``--listen HOST:0`` picks a free port)."""
        return self.advertise or Address(self.listen.host, bound_port)
