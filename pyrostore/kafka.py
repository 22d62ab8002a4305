"""What every Kafka-facing part (archiver, consumer, replay, operator) shares: client properties and files,
admin clients that stay quiet, topic look-ups, and the one "cannot reach Kafka" error."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import javaproperties
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from pyrostore.errors import InvalidKafkaProperties, KafkaUnavailable, TopicNotFound

# Properties that configure one kind of client only: an admin client given them would warn or refuse.
_CONSUMER_ONLY = ("isolation.level", "enable.", "auto.", "fetch.", "max.partition", "queued.", "group.")
_PRODUCER_ONLY = (
    "acks",
    "linger.",
    "batch.",
    "queue.buffering.",
    "compression.",
    "partitioner",
    "message.send.max.retries",
    "retries",
    "delivery.timeout.ms",
    "transaction",
    "max.in.flight",
)
TIMEOUT = 15.0


def parse_properties(text: str, source: str) -> dict[str, str]:
    """Kafka client properties in Java ``.properties`` syntax (``key=value``, ``key: value``, ``key value``,
    ``#``/``!`` comments, ``\\`` continuations and escapes). Raises InvalidKafkaProperties naming ``source``."""
    try:
        parsed = javaproperties.loads(text)
    except ValueError as exc:  # a malformed \\u escape
        raise InvalidKafkaProperties(f"{source}: {exc}") from None
    empty = [key for key in parsed if not key.strip()]
    if empty:
        raise InvalidKafkaProperties(f"{source}: a line has a value but no key")
    return parsed


def load_properties(path: Path) -> dict[str, str]:
    """Read a Kafka client properties file. Raises InvalidKafkaProperties naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidKafkaProperties(f"cannot read Kafka properties file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise InvalidKafkaProperties(f"Kafka properties file {path} is not UTF-8 text") from None
    return parse_properties(text, str(path))


def require(properties: Mapping[str, str], fixed: Mapping[str, str], who: str) -> None:
    """Refuse properties that would change a setting ``who`` depends on. Raises InvalidKafkaProperties."""
    for key, required in fixed.items():
        given = properties.get(key)
        if given is not None and str(given).lower() != required:
            raise InvalidKafkaProperties(f"Kafka property {key}={given} is not allowed: {who} needs {key}={required}")


def connection_config(properties: Mapping[str, Any], bootstrap: str) -> dict[str, Any]:
    """Settings for an admin client: the connection properties (TLS, SASL, timeouts) without consumer- or
    producer-only ones."""
    shared = {k: v for k, v in properties.items() if not k.startswith(_CONSUMER_ONLY + _PRODUCER_ONLY)}
    return {**shared, "bootstrap.servers": bootstrap}


class QuietLogger:
    """A librdkafka logger that drops its connection-refused chatter: failures surface as one clear error."""

    def log(self, *args: object, **kwargs: object) -> None:
        """Drop the message."""

    def __getattr__(self, name: str) -> Any:
        return self.log


def admin_client(properties: Mapping[str, Any], bootstrap: str) -> AdminClient:
    """A quiet admin client for ``bootstrap`` with the connection properties of ``properties``."""
    return AdminClient(connection_config(properties, bootstrap), logger=QuietLogger())


def error_text(exc: KafkaException) -> str:
    """The one-line text of a confluent_kafka exception."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def partition_count(admin: AdminClient, topic: str, bootstrap: str, timeout: float = TIMEOUT) -> int | None:
    """The partition count of ``topic``, or None when it does not exist. Raises KafkaUnavailable."""
    try:
        metadata = admin.list_topics(topic=topic, timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {error_text(exc)}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def missing_topic(topic: str, bootstrap: str) -> TopicNotFound:
    """The error for a topic the cluster does not have."""
    return TopicNotFound(f"topic {topic!r} does not exist in the Kafka cluster at {bootstrap}")


def describe_topic(admin: AdminClient, topic: str, bootstrap: str, timeout: float = TIMEOUT) -> tuple[str, str, int]:
    """The cluster id, topic id and partition count of ``topic``. Raises KafkaUnavailable, TopicNotFound."""
    if partition_count(admin, topic, bootstrap, timeout) is None:
        raise missing_topic(topic, bootstrap)
    try:
        cluster = admin.describe_cluster(request_timeout=timeout).result()
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic].result()
    except KafkaException as exc:
        raise KafkaUnavailable(f"describing topic {topic!r} at {bootstrap} failed: {error_text(exc)}") from exc
    return cluster.cluster_id, str(described.topic_id), len(described.partitions)


def create_topic(admin: AdminClient, topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
    """Create a topic (the broker's default replication); one that already exists is fine. Raises KafkaUnavailable."""
    futures = admin.create_topics([NewTopic(topic, partitions, config=config or {})], operation_timeout=30)
    try:
        futures[topic].result(timeout=60)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise KafkaUnavailable(f"creating topic {topic!r} failed: {error_text(exc)}") from exc
