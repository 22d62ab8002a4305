"""Archived records as real ``confluent_kafka.Message`` objects, so applications cannot tell the source apart."""

from __future__ import annotations

import pyarrow as pa
from confluent_kafka import Message

from pyrostore.archive import records_of


def messages_of(batch: pa.RecordBatch, topic: str, partition: int) -> list[Message]:
    """The records of a segment batch as ``confluent_kafka.Message`` objects, in offset order.

    Timestamp types map back to confluent_kafka's: the archive's -1/0/1 (none, CreateTime, LogAppendTime)
    become 0/1/2. Headers come back as a list of (key, value) pairs, or None when a record had none, as Kafka
    gives them.
    """
    messages = []
    for record in records_of(batch, topic, partition):
        fields = {
            "topic": topic,
            "partition": partition,
            "offset": record.offset,
            "key": record.key,
            "value": record.value,
            "headers": record.headers or None,
            "timestamp": (record.timestamp_type + 1, record.timestamp),
        }
        if record.leader_epoch is not None:  # Message() refuses None; left out, leader_epoch() answers None
            fields["leader_epoch"] = record.leader_epoch
        messages.append(Message(**fields))
    return messages
