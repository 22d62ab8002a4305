"""Converting between archived record batches and real ``confluent_kafka.Message`` objects.

Archived records become Messages, so applications cannot tell the source apart; Kafka's Messages become Arrow
batches of the segment schema for :meth:`pyrostore.Consumer.consume_batches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, TypeGuard

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import KafkaError, Message

from pyrostore.archive import batch_columns
from pyrostore.segment import table_of_columns

if TYPE_CHECKING:
    from confluent_kafka._types import HeadersType  # what Message.headers() is typed to return

# Fixed Arrow bytes per record: offset, timestamp, type, epoch, and three 4-byte list/binary offsets.
_ROW_BYTES = 8 + 8 + 1 + 4 + 12

RecordHeaders = list[tuple[str, bytes | None]]
"""A record's headers as Kafka gives them; confluent_kafka types them more loosely (a dict, str values), for
Messages made by hand."""
_RECORD_HEADER_TYPES = frozenset({list, type(None)})
_NAME, _VALUE = itemgetter(0), itemgetter(1)


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
        """Append records (no events), in order. Raises ValueError, adding nothing, for a message no Kafka record
        could be: one without an offset, or with headers that are not a list of (str, bytes or None) pairs."""
        if not messages:
            return
        offsets = list(map(Message.offset, messages))
        headers = list(map(Message.headers, messages))
        if not _all_set(offsets) or not _record_headers(headers):
            raise ValueError("only Kafka records can be archived: a message has no offset, or other headers")
        types, timestamps = zip(*map(Message.timestamp, messages), strict=True)
        keys = list(map(Message.key, messages))
        self._offsets += offsets
        self._timestamps += timestamps
        self._types += types
        self._keys += keys
        self._values += map(Message.value, messages)
        self._headers += headers
        self._epochs += map(Message.leader_epoch, messages)
        size = _ROW_BYTES * len(messages) + sum(map(len, messages))  # a Message's len() is its value's
        size += sum(map(len, filter(None, keys))) + _header_bytes(headers)
        self.approx_bytes += size

    def __len__(self) -> int:
        return len(self._offsets)

    def to_table(self) -> pa.Table:
        """The records as a segment table; confluent_kafka's timestamp types 1/2 become the archive's 0/1."""
        types = pc.subtract(pa.array(self._types, pa.int8()), pa.scalar(1, pa.int8()))
        return table_of_columns(
            self._offsets, self._timestamps, types, self._keys, self._values, self._headers, self._epochs
        )


# The checks below run for every record the archiver reads: they stay at C speed (map, filter, chain).


def _all_set(offsets: list[int | None]) -> TypeGuard[list[int]]:
    """Whether every message had an offset, as records do (confluent_kafka gives None for an unknown one)."""
    return None not in offsets


def _record_headers(headers: list[HeadersType | None]) -> TypeGuard[list[RecordHeaders | None]]:
    """Whether every message's headers are as Kafka gives a record's: None or a list of (str, bytes or None)."""
    if headers.count(None) == len(headers):  # the common case: no headers at all
        return True
    if not set(map(type, headers)) <= _RECORD_HEADER_TYPES:
        return False
    values = map(_VALUE, chain.from_iterable(filter(None, headers)))
    return str not in map(type, values)


def _header_bytes(headers: list[RecordHeaders | None]) -> int:
    """About how many bytes records' headers take as Arrow columns: 8 per pair, plus names and values."""
    pairs = list(chain.from_iterable(filter(None, headers)))
    names, values = map(_NAME, pairs), map(_VALUE, pairs)
    return 8 * len(pairs) + sum(map(len, names)) + sum(map(len, filter(None, values)))


def batch_of_messages(messages: Sequence[Message]) -> pa.RecordBatch:
    """Kafka messages of one partition as one record batch of the segment schema."""
    columns = MessageColumns()
    columns.add(messages)
    return columns.to_table().to_batches()[0]


def event(topic: str, partition: int, offset: int, code: int, reason: str) -> Message:
    """An event (a Message whose ``error()`` is set), as confluent_kafka delivers end-of-partition and errors."""
    return Message(topic=topic, partition=partition, offset=offset, error=KafkaError(code, reason))
