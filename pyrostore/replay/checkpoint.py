"""Replay checkpoints: per source partition, where the replay stands, kept in a compacted Kafka topic.

One record per (replay, source partition), keyed ``<replay id>/<partition>``; the newest committed one wins. In
exactly-once mode checkpoints are produced inside the same transaction as the records they cover, so they
become visible exactly when those records do. The topic lives in the target cluster, which a replay can always
write, unlike the source topic (possibly deleted) or the archive (possibly read-only).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pyrostore.errors import KafkaUnavailable
from pyrostore.kafka import create_topic, partition_count, transient

CHECKPOINT_TOPIC_CONFIG = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class Checkpoint:
    """A source partition's progress: the next offset to replay, and the records and bytes done before it."""

    partition: int
    next_offset: int
    records_done: int
    bytes_done: int


def checkpoint_key(replay_id: str, partition: int) -> bytes:
    """The checkpoint record's key: one per replay and source partition."""
    return f"{replay_id}/{partition}".encode()


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """A checkpoint record's value: canonical JSON."""
    return json.dumps(asdict(checkpoint), sort_keys=True, separators=(",", ":")).encode()


def decode_checkpoint(key: bytes | None, value: bytes | None, replay_id: str) -> Checkpoint | None:
    """The checkpoint in a record, or None when the record belongs to another replay (or is a tombstone)."""
    if key is None or value is None or not key.startswith(f"{replay_id}/".encode()):
        return None
    return Checkpoint(**json.loads(value))


def ensure_checkpoint_topic(admin: AdminClient, topic: str, bootstrap: str) -> None:
    """Create the compacted checkpoint topic (one partition) unless it exists."""
    if partition_count(admin, topic, bootstrap) is None:
        create_topic(admin, topic, 1, CHECKPOINT_TOPIC_CONFIG)


def read_checkpoints(
    admin: AdminClient, conf: dict[str, str], topic: str, replay_id: str, timeout: float = 120.0
) -> dict[int, Checkpoint]:
    """The newest committed checkpoint of each source partition of a replay (empty when it has none).

    Reads with ``read_committed`` up to the high watermark, not just to the last stable offset: another
    replay's open transaction holds the LSO back, and a checkpoint of ours committed after it began must not be
    missed (that would resend records). Raises KafkaUnavailable.
    """
    bootstrap = conf["bootstrap.servers"]
    if partition_count(admin, topic, bootstrap) is None:
        return {}
    high = _high_watermark(admin, topic, bootstrap, timeout)
    found: dict[int, Checkpoint] = {}
    if high <= 0:
        return found
    consumer = Consumer(
        {
            **conf,
            "group.id": f"pyrostore-replay-reader-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "fetch.wait.max.ms": "10",  # the end of the log is the goal: do not let the broker hold fetches there
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"reading checkpoint topic {topic!r} did not reach its end within {timeout}s")
            message = consumer.poll(0.05)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    if transient(error):
                        continue  # the client retries it; the deadline bounds the wait
                    raise KafkaUnavailable(f"reading checkpoint topic {topic!r} failed: {error.str()}")
                if (message.offset() or 0) >= high:
                    return found
                continue
            checkpoint = decode_checkpoint(message.key(), message.value(), replay_id)
            if checkpoint is not None:
                found[checkpoint.partition] = checkpoint
    finally:
        consumer.close()


def _high_watermark(admin: AdminClient, topic: str, bootstrap: str, timeout: float) -> int:
    """Partition 0's high watermark, retrying while a new topic's leader is being elected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ends = admin.list_offsets(
                {TopicPartition(topic, 0): OffsetSpec.latest()}, isolation_level=IsolationLevel.READ_UNCOMMITTED
            )
            return next(iter(ends.values())).result().offset
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not transient(error) or time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"reading checkpoint topic {topic!r} at {bootstrap} failed: {error.str()}"
                ) from exc
            time.sleep(0.2)
