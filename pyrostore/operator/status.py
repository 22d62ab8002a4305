"""What the status refresh reads: each partition's newest archive commit and Kafka's watermarks.

Credentials come from the resource's Secrets, read into memory for one refresh and never written anywhere.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource
from kubernetes import client
from kubernetes.client.rest import ApiException

from pyrostore.errors import KafkaAccessDenied, SecretUnavailable, StoreError, TopicNotFound
from pyrostore.index.commits import read_head
from pyrostore.kafka import (
    QuietLogger,
    Refusals,
    admin_client,
    check_access,
    error_text,
    missing_topic,
    parse_properties,
)
from pyrostore.operator.conditions import ArchiveObservation, PartitionState
from pyrostore.store import ObjectStore, credential_options, open_store

_TIMEOUT = 10.0


def read_secret(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """A Secret's data, decoded, in memory only. Raises SecretUnavailable (naming the Secret, not its data)."""
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        raise SecretUnavailable(f"cannot read Secret {namespace}/{name}: {exc.status} {exc.reason}") from exc
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def without_secrets(secrets: Mapping[str, str], text: str) -> str:
    """The first line of an error message with any secret value in it masked."""
    line = text.splitlines()[0] if text else text
    for value in secrets.values():
        if len(value) >= 4:
            line = line.replace(value, "***")
    return line[:500]


def store_options(storage: Mapping, secret: Mapping[str, str]) -> dict[str, str]:
    """Store options for the operator's own reads: the spec's options plus the credentials the store's backend
    takes from the Secret (S3's AWS_* keys). Raises InvalidStoreURL for a bad URL.

    Each operation gives up after ``_TIMEOUT`` seconds of retries, whatever the spec's ``retry_deadline`` (that
    one is for the pods): a handler must not wait for ever on an unreachable store.
    """
    options = dict(storage.get("options") or {}) | credential_options(storage["url"], secret)
    # A key file or folder names files mounted in the pods only; the operator reads with its own credentials.
    options.pop("credentials_file", None)
    options.pop("credentials_dir", None)
    return options | {"retry_deadline": str(_TIMEOUT)}


def kafka_config(kafka: Mapping, properties_file: str | None) -> dict[str, str]:
    """Kafka client settings: the properties file from the Secret, the spec's properties, the bootstrap."""
    from_file = parse_properties(properties_file, "propertiesSecret") if properties_file else {}
    return {**from_file, **(kafka.get("properties") or {}), "bootstrap.servers": kafka["bootstrapServers"]}


def open_resource_store(api: client.ApiClient, namespace: str, storage: Mapping) -> ObjectStore:
    """The store a resource's ``storage`` names, opened with its credentials Secret (see :func:`store_options`)."""
    secret = read_secret(api, namespace, storage["credentialsSecret"]["name"]) if "credentialsSecret" in storage else {}
    return open_store(storage["url"], **store_options(storage, secret))


def resource_kafka_config(api: client.ApiClient, namespace: str, kafka: Mapping) -> dict[str, str]:
    """Kafka client settings of a resource's ``kafka`` (or ``target``) section, its properties Secret read."""
    ref = kafka.get("propertiesSecret")
    text = read_secret(api, namespace, ref["name"]).get(ref.get("key", "client.properties")) if ref else None
    return kafka_config(kafka, text)


def _retention_ms(conf: dict[str, str], topic: str) -> int:
    admin = admin_client(conf, conf["bootstrap.servers"])
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=_TIMEOUT)[resource].result(timeout=_TIMEOUT)
    return int(entries["retention.ms"].value)


def kafka_partitions(conf: dict[str, str], topic: str, at_risk_fraction: float) -> dict[int, tuple[int, int, int]]:
    """Per partition: log start, high watermark, and the first offset not yet close to expiry.

    Records before the third number are older than ``at_risk_fraction`` of the topic's ``retention.ms``
    (Kafka's offsetsForTimes); with unlimited retention it is the log start, so nothing is at risk.
    """
    bootstrap = conf["bootstrap.servers"]
    refusals = Refusals(bootstrap)
    consumer = Consumer(
        {**conf, "group.id": "pyrostore-operator-status", "enable.auto.commit": "false", "error_cb": refusals},
        logger=QuietLogger(),
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=_TIMEOUT)
        except KafkaException:
            consumer.poll(0)  # serves the error callback: a refusal says more than "transport failure"
            refusals.check()
            raise
        described = metadata.topics.get(topic)
        check_access(described, bootstrap)
        if described is None or described.error is not None or not described.partitions:
            raise missing_topic(topic, conf["bootstrap.servers"])
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT) for p in described.partitions
        }
        retention = _retention_ms(conf, topic)
        if retention < 0:
            safe = {p: low for p, (low, _) in marks.items()}
        else:
            cutoff = int(time.time() * 1000 - at_risk_fraction * retention)
            found = consumer.offsets_for_times([TopicPartition(topic, p, cutoff) for p in marks], timeout=_TIMEOUT)
            # -1: no record is as young as the cutoff, so every record Kafka holds is close to expiry.
            safe = {tp.partition: (tp.offset if tp.offset >= 0 else marks[tp.partition][1]) for tp in found}
        return {p: (low, high, safe[p]) for p, (low, high) in sorted(marks.items())}
    finally:
        consumer.close()


def observe_archive(
    store: ObjectStore, kafka_conf: dict[str, str], topic: str, at_risk_fraction: float
) -> ArchiveObservation:
    """Each partition's archived offset beside Kafka's watermarks, or the reason they could not be read."""
    try:
        kafka = kafka_partitions(kafka_conf, topic, at_risk_fraction)
    except TopicNotFound as exc:
        return ArchiveObservation(error_reason="TopicNotFound", error=str(exc))
    except KafkaAccessDenied as exc:
        return ArchiveObservation(error_reason="KafkaAccessDenied", error=str(exc))
    except KafkaException as exc:
        return ArchiveObservation(error_reason="KafkaUnavailable", error=f"Kafka: {error_text(exc)}")
    partitions = []
    try:
        for p, (low, high, safe) in kafka.items():
            head = read_head(store, topic, p)
            archived = head.next_offset if head else None
            at_risk = (archived if archived is not None else low) < min(safe, high)
            partitions.append(PartitionState(p, archived, low, high, at_risk, head.records if head else 0))
    except StoreError as exc:
        return ArchiveObservation(error_reason="StorageUnavailable", error=str(exc))
    return ArchiveObservation(partitions)
