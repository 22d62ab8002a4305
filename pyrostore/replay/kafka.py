"""The replay's Kafka plumbing: client configurations, and the target and checkpoint topics."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pyrostore.archiver.kafka import KafkaUnavailable, _SilentLogger
from pyrostore.replay.errors import TargetTopicMissing
from pyrostore.replay.options import ReplayOptions
from pyrostore.replay.partitioning import KEY_HASH_PARTITIONER

_PRODUCER_ONLY = (
    "acks",
    "linger.",
    "batch.",
    "queue.buffering.",
    "compression.",
    "partitioner",
    "enable.idempotence",
    "message.send.max.retries",
    "retries",
    "delivery.timeout.ms",
    "transaction.timeout.ms",
    "max.in.flight",
)


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
    shared = {k: v for k, v in options.kafka_properties.items() if not k.startswith(_PRODUCER_ONLY)}
    return {**shared, "bootstrap.servers": options.bootstrap_servers}


def admin_client(options: ReplayOptions) -> AdminClient:
    """An admin client that stays quiet about refused connections (failures surface as one error instead)."""
    return AdminClient({**client_config(options), "logger": _SilentLogger()})


def topic_partitions(admin: AdminClient, topic: str, bootstrap: str, timeout: float = 15.0) -> int | None:
    """The partition count of ``topic``, or None when it does not exist. Raises KafkaUnavailable."""
    try:
        metadata = admin.list_topics(topic=topic, timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def create_topic(admin: AdminClient, topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
    """Create a topic (the broker's default replication); one that already exists is fine."""
    futures = admin.create_topics([NewTopic(topic, partitions, config=config or {})], operation_timeout=30)
    try:
        futures[topic].result(timeout=60)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise KafkaUnavailable(f"creating topic {topic!r} failed: {exc.args[0].str()}") from exc


def ensure_target(options: ReplayOptions, admin: AdminClient, source_partitions: int) -> int:
    """The target topic's partition count, creating it under ``--create-topic`` (the source's partition count,
    no time-based retention)."""
    partitions = topic_partitions(admin, options.to_topic, options.bootstrap_servers)
    if partitions is None:
        if not options.create_topic:
            raise TargetTopicMissing(
                f"target topic {options.to_topic!r} does not exist at {options.bootstrap_servers} "
                "(create it, or give --create-topic)"
            )
        # Replayed records keep their original, often old, timestamps: time-based retention would delete them
        # as soon as a log segment rolls.
        create_topic(admin, options.to_topic, source_partitions, {"retention.ms": "-1"})
        partitions = topic_partitions(admin, options.to_topic, options.bootstrap_servers) or source_partitions
    return partitions
