"""What every Kafka-facing part (archiver, consumer, replay, operator) shares: client properties and files,
admin clients that stay quiet, topic look-ups, the one "cannot reach Kafka" error, and the one line for a
refusal (wrong credentials, an untrusted certificate, a missing ACL)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import javaproperties
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic, TopicMetadata

from pyrostore.errors import InvalidKafkaProperties, KafkaAccessDenied, KafkaUnavailable, TopicNotFound

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
# Authorization errors: the principal lacks an ACL. Waiting does not fix them, nor a wrong password (librdkafka
# retries it for ever) nor an untrusted certificate.
_NOT_AUTHORIZED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "consumer group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
# Leadership moving (a new topic's first election, a broker restarting): librdkafka does not mark these
# retriable on admin results, but a moment later the same request succeeds.
_LEADERSHIP_MOVING = {
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}
_BROKER_PREFIX = re.compile(r"^\w+://\S+?: ")  # librdkafka's "sasl_ssl://host:port/bootstrap: "
_STATE_SUFFIX = re.compile(r" \(after \d+ms in state \w+\)$")


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


def refusal(error: KafkaError, bootstrap: str, topic: str | None = None) -> str | None:
    """The one line for an error that means Kafka refused this client and waiting will not help (wrong
    credentials, an untrusted or refused certificate, a missing ACL), or None for any other error."""
    code, text = error.code(), _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", error.str()))
    if code == KafkaError._AUTHENTICATION:
        return f"Kafka at {bootstrap}: authentication failed: {text}"
    if code == KafkaError._SSL and "certificate" in text:  # other TLS errors: a connection cut mid-handshake
        return f"Kafka at {bootstrap}: TLS certificate verify failed: {text}"
    if code in _NOT_AUTHORIZED:
        what = f"{_NOT_AUTHORIZED[code]} {topic!r}" if topic and code == KafkaError.TOPIC_AUTHORIZATION_FAILED else ""
        return f"Kafka at {bootstrap}: not authorized for {what or _NOT_AUTHORIZED[code]}: {text} (no ACL allows it)"
    return None


def transient(error: KafkaError) -> bool:
    """Whether the same request may succeed if asked again shortly: a retriable error or leadership moving."""
    return error.retriable() or error.code() in _LEADERSHIP_MOVING


class Refusals:
    """A client's ``error_cb``: remembers the last refusal (see :func:`refusal`), which librdkafka reports only
    as a client-wide error while the call that failed says "transport failure" or times out; other errors go to
    ``forward``."""

    def __init__(self, bootstrap: str, forward: Callable[[KafkaError], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.forward = forward
        self.last: str | None = None

    def __call__(self, error: KafkaError) -> None:
        found = refusal(error, self.bootstrap)
        if found is not None:
            self.last = found
        elif self.forward is not None:
            self.forward(error)

    def check(self) -> None:
        """Raise KafkaAccessDenied if a refusal was reported."""
        if self.last is not None:
            raise KafkaAccessDenied(self.last)


class Admin(AdminClient):
    """A quiet admin client that remembers refusals (``refusals``)."""

    def __init__(self, config: dict[str, Any], refusals: Refusals) -> None:
        conf: Any = {**config, "error_cb": refusals}  # the stubs type the configuration as plain values only
        super().__init__(conf, logger=QuietLogger())
        self.refusals = refusals

    def check(self) -> None:
        """Raise KafkaAccessDenied if Kafka refused this client (serving its callbacks first)."""
        self.poll(0)
        self.refusals.check()


def admin_client(properties: Mapping[str, Any], bootstrap: str) -> Admin:
    """A quiet admin client for ``bootstrap`` with the connection properties of ``properties``."""
    return Admin(connection_config(properties, bootstrap), Refusals(bootstrap))


def error_text(exc: KafkaException) -> str:
    """The one-line text of a confluent_kafka exception."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _check(admin: AdminClient) -> None:
    if isinstance(admin, Admin):
        admin.check()


def partition_count(admin: AdminClient, topic: str, bootstrap: str, timeout: float = TIMEOUT) -> int | None:
    """The partition count of ``topic``, or None when it does not exist. Raises KafkaUnavailable, or
    KafkaAccessDenied within a second or so of Kafka refusing the client."""
    deadline = time.monotonic() + timeout
    while True:
        # Short attempts: between them the admin's error callback reveals a refusal, which the call itself
        # reports only as a timeout.
        try:
            metadata = admin.list_topics(topic=topic, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            break
        except KafkaException as exc:
            _check(admin)
            if time.monotonic() >= deadline:
                raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {error_text(exc)}") from exc
    found = metadata.topics.get(topic)
    check_access(found, bootstrap)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def check_access(found: TopicMetadata | None, bootstrap: str) -> None:
    """Raise KafkaAccessDenied if a topic's metadata says the client may not describe it (no ACL)."""
    if found is not None and found.error is not None and (line := refusal(found.error, bootstrap, found.topic)):
        raise KafkaAccessDenied(line)


def check_group_access(admin: AdminClient, group: str, bootstrap: str, timeout: float = TIMEOUT) -> None:
    """Raise KafkaAccessDenied if an ACL keeps the client out of consumer group ``group``. Other failures are
    left to the consumer, which retries them."""
    try:
        admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and (line := refusal(error, bootstrap)) is not None:
            raise KafkaAccessDenied(
                f"{line.removesuffix(' (no ACL allows it)')} {group!r} (no ACL allows it)"
            ) from None


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
