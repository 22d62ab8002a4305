"""Archived records as real ``confluent_kafka.Message`` objects, so applications cannot tell the source apart."""

from __future__ import annotations

import pyarrow as pa
from confluent_kafka import Message


def messages_of(batch: pa.RecordBatch, topic: str, partition: int) -> list[Message]:
    """The records of a segment batch as ``confluent_kafka.Message`` objects, in offset order.

    Timestamp types map back to confluent_kafka's: the archive's -1/0/1 (none, CreateTime, LogAppendTime)
    become 0/1/2. Headers come back as a list of (key, value) pairs, or None when a record had none, as Kafka
    gives them.
    """
    columns = {name: batch.column(name).to_pylist() for name in ("offset", "timestamp_type", "key", "value")}
    timestamps = batch.column("timestamp").cast(pa.int64()).to_pylist()
    headers = batch.column("headers").to_pylist()
    epochs = batch.column("leader_epoch").to_pylist()
    messages = []
    for i, offset in enumerate(columns["offset"]):
        fields = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": columns["key"][i],
            "value": columns["value"][i],
            "headers": [(h["key"], h["value"]) for h in headers[i]] or None,
            "timestamp": (columns["timestamp_type"][i] + 1, timestamps[i]),
        }
        if epochs[i] is not None:  # Message() refuses None; left out, leader_epoch() answers None
            fields["leader_epoch"] = epochs[i]
        messages.append(Message(**fields))
    return messages
