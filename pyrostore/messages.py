"""Converting between archived record batches and real ``confluent_kafka.Message`` objects.

Archived records become Messages, so applications cannot tell the source apart; Kafka's Messages become Arrow
batches of the segment schema for :meth:`pyrostore.Consumer.consume_batches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import KafkaError, Message

from pyrostore.archive import batch_columns
from pyrostore.segment import table_of_columns

RecordHeaders = list[tuple[str, bytes | None]]

# Fixed Arrow bytes per record: offset, timestamp, type, epoch, and three 4-byte list/binary offsets.
_ROW_BYTES = 8 + 8 + 1 + 4 + 12


def messages_of(batch: pa.RecordBatch, topic: str, partition: int) -> list[Message]:
    """The records of a segment batch as ``confluent_kafka.Message`` objects, in offset order.

    Timestamp types map back to confluent_kafka's: the archive's -1/0/1 (none, CreateTime, LogAppendTime)
    become 0/1/2. Headers come back as a list of (key, value) pairs, or None when a record had none, as Kafka
    gives them.
    """
    return [
        # Positional arguments: about three times faster than keywords. Message() refuses None for the latency
        # and the leader epoch; -1 reads back as None, as for Kafka's own records without one.
        Message(
            topic,
            partition,
            offset,
            key,
            value,
            headers or None,
            None,
            (kind + 1, timestamp),
            -1.0,
            -1 if epoch is None else epoch,
        )
        for offset, timestamp, kind, key, value, headers, epoch in zip(*batch_columns(batch), strict=True)
    ]


class MessageColumns:
    """Kafka messages of one partition, kept column by column until they become a segment table.

    :meth:`add` takes whole lists of messages and reads each field with a C-level ``map``: the archiver passes
    every record it reads through here, so this is its per-record cost. The messages themselves are not kept:
    millions of live Message objects would make Python's garbage collector walk them again and again.
    """

    __slots__ = ("_epochs", "_headers", "_keys", "_offsets", "_timestamps", "_types", "_values", "approx_bytes")

    def __init__(self) -> None:
        self.approx_bytes = 0
        """About how many bytes the records take as Arrow columns."""
        self._offsets: list[int] = []
        self._timestamps: list[int] = []
        self._types: list[int] = []  # confluent_kafka's: 0 none, 1 CreateTime, 2 LogAppendTime
        self._keys: list[bytes | None] = []
        self._values: list[bytes | None] = []
        self._headers: list[RecordHeaders | None] = []
        self._epochs: list[int | None] = []

    def add(self, messages: Sequence[Message]) -> None:
        """Append records (no events), in order."""
        if not messages:
            return
        types, timestamps = zip(*map(Message.timestamp, messages), strict=True)
        keys = list(map(Message.key, messages))
        # confluent_kafka types every Message alike (a made-up one may lack an offset, or hold headers as a dict
        # or with str values); records consumed from Kafka always have an offset and a list of bytes headers.
        headers = cast(list[RecordHeaders | None], list(map(Message.headers, messages)))
        self._offsets += cast(list[int], list(map(Message.offset, messages)))
        self._timestamps += timestamps
        self._types += types
        self._keys += keys
        self._values += map(Message.value, messages)
        self._headers += headers
        self._epochs += map(Message.leader_epoch, messages)
        size = _ROW_BYTES * len(messages) + sum(map(len, messages))  # a Message's len() is its value's
        size += sum(map(len, filter(None, keys)))
        for pairs in filter(None, headers):
            size += sum(8 + len(key) + len(value or b"") for key, value in pairs)
        self.approx_bytes += size

    def __len__(self) -> int:
        return len(self._offsets)

    def to_table(self) -> pa.Table:
        """The records as a segment table; confluent_kafka's timestamp types 1/2 become the archive's 0/1."""
        types = pc.subtract(pa.array(self._types, pa.int8()), pa.scalar(1, pa.int8()))
        return table_of_columns(
            self._offsets, self._timestamps, types, self._keys, self._values, self._headers, self._epochs
        )


def batch_of_messages(messages: Sequence[Message]) -> pa.RecordBatch:
    """Kafka messages of one partition as one record batch of the segment schema."""
    columns = MessageColumns()
    columns.add(messages)
    return columns.to_table().to_batches()[0]


def event(topic: str, partition: int, offset: int, code: int, reason: str) -> Message:
    """An event (a Message whose ``error()`` is set), as confluent_kafka delivers end-of-partition and errors."""
    return Message(topic=topic, partition=partition, offset=offset, error=KafkaError(code, reason))
