"""The archiver's settings, and the Kafka consumer configuration they make (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyrostore.kafka import require

# Settings the archiver's correctness depends on: a user may not override them.
_FIXED = {
    "isolation.level": "read_committed",  # aborted records are never archived
    "enable.auto.commit": "false",  # Kafka offsets follow archive commits, never the other way
    "enable.auto.offset.store": "false",
    "enable.partition.eof": "false",
}


@dataclass(frozen=True)
class ArchiverConfig:
    """What to archive, where, and how segments roll."""

    bootstrap_servers: str
    topic: str
    store_url: str
    store_options: dict[str, str] = field(default_factory=dict)
    group_id: str | None = None  # default: pyrostore-<topic>
    instance_id: str | None = None  # static group membership (KIP-345): a restart under it gets its partitions back
    segment_bytes: int = 64 * 1024 * 1024
    segment_age: float = 60.0  # seconds an open segment may wait before it is committed
    max_buffer_bytes: int = 96 * 1024 * 1024  # open segments, and again segments in flight, across partitions
    kafka_properties: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    accept_loss: bool = False
    shutdown_grace: float = 25.0

    @property
    def group(self) -> str:
        """The consumer group the archiver's replicas share."""
        return self.group_id or f"pyrostore-{self.topic}"


def consumer_config(config: ArchiverConfig, client_id: str) -> dict[str, str]:
    """The confluent_kafka.Consumer configuration. Raises InvalidKafkaProperties for a property that may not be
    changed."""
    require(config.kafka_properties, _FIXED, "the archiver")
    return {
        "auto.offset.reset": "earliest",
        "client.id": client_id,
        # After finding its prefetch queue full, librdkafka waits fetch.queue.backoff.ms (1 s by default) before
        # fetching again: a reader briefly slower than Kafka then empties the queue and idles. 20 ms doubled the
        # archiver's throughput (docs/decisions.md).
        "fetch.queue.backoff.ms": "20",
        # Fetch sizes stay at librdkafka's defaults: a prefetch queue smaller than fetch.max.bytes stalls
        # fetching (measured: 29 MB/s instead of 196 MB/s).
        **config.kafka_properties,
        **_FIXED,
        "bootstrap.servers": config.bootstrap_servers,
        "group.id": config.group,
        **({"group.instance.id": config.instance_id} if config.instance_id else {}),
    }
