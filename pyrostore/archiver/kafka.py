"""What the archiver asks Kafka before it starts: does the topic exist, which incarnation is it."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from pyrostore.archiver.identity import TopicIdentity
from pyrostore.errors import PyrostoreError


class KafkaUnavailable(PyrostoreError):
    """Kafka could not be reached, or refused a request."""


class UnknownTopic(PyrostoreError):
    """The topic does not exist in the Kafka cluster."""


def describe_topic(admin_conf: dict[str, str], topic: str, timeout: float = 15.0) -> tuple[TopicIdentity, int]:
    """The topic's identity and partition count. Raises KafkaUnavailable, UnknownTopic."""
    bootstrap = admin_conf.get("bootstrap.servers")
    admin = AdminClient({**admin_conf, "logger": _SilentLogger()})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise UnknownTopic(f"topic {topic!r} does not exist in the Kafka cluster at {bootstrap}")
    try:
        cluster = admin.describe_cluster(request_timeout=timeout).result()
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic].result()
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        raise KafkaUnavailable(f"describing topic {topic!r} at {bootstrap} failed: {error.str()}") from exc
    identity = TopicIdentity(topic=topic, cluster_id=cluster.cluster_id, topic_id=str(described.topic_id))
    return identity, len(described.partitions)


class _SilentLogger:
    """Swallows librdkafka's connection-refused chatter; failures surface as one clear error instead."""

    def log(self, *args, **kwargs) -> None:
        pass

    def __getattr__(self, name):
        return self.log
