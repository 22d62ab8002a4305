"""The replay's Kafka plumbing: client configurations, and the target and checkpoint topics."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from pyrostore.errors import TopicNotFound
from pyrostore.kafka import admin_client, connection_config, create_topic, partition_count
from pyrostore.replay.options import ReplayOptions
from pyrostore.replay.partitioning import KEY_HASH_PARTITIONER


def producer_config(options: ReplayOptions) -> dict[str, str | int]:
    """The target producer's configuration: the user's properties under the settings replay relies on."""
    fixed: dict[str, str | int] = {"enable.idempotence": "true", "partitioner": KEY_HASH_PARTITIONER}
    if options.exactly_once:
        fixed["transactional.id"] = options.transactional_id
    return {
        # Large batches and a deep queue: replay is bulk copying, and Python hands records over one by one.
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 262_144,
        "compression.type": "lz4",
        **options.kafka_properties,
        **fixed,
        "bootstrap.servers": options.bootstrap_servers,
    }


def client_config(options: ReplayOptions) -> dict[str, str]:
    """Connection properties (TLS, SASL, ...) for the admin client and the checkpoint reader."""
    return connection_config(options.kafka_properties, options.bootstrap_servers)


def replay_admin(options: ReplayOptions) -> AdminClient:
    """A quiet admin client for the target cluster."""
    return admin_client(options.kafka_properties, options.bootstrap_servers)


def ensure_target(options: ReplayOptions, admin: AdminClient, source_partitions: int) -> int:
    """The target topic's partition count, creating it under ``--create-topic`` (the source's partition count,
    no time-based retention). Raises TopicNotFound without ``--create-topic``, KafkaUnavailable."""
    partitions = partition_count(admin, options.to_topic, options.bootstrap_servers)
    if partitions is None:
        if not options.create_topic:
            raise TopicNotFound(
                f"target topic {options.to_topic!r} does not exist at {options.bootstrap_servers} "
                "(create it, or give --create-topic)"
            )
        # Replayed records keep their original, often old, timestamps: time-based retention would delete them
        # as soon as a log segment rolls.
        create_topic(admin, options.to_topic, source_partitions, {"retention.ms": "-1"})
        partitions = partition_count(admin, options.to_topic, options.bootstrap_servers) or source_partitions
    return partitions
