"""Archived records come back as confluent_kafka Messages with every field as Kafka gives it, and back."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE, Message

from pyrostore.messages import MessageColumns, messages_of
from pyrostore.segment import decode_segment, encode_segment, records_to_table

ROWS = [
    (10, 1_700_000_000_000, 0, None, b"null key", [("h", b"1"), ("h", None)], 4),
    (12, 1_700_000_000_500, 1, b"tombstone", None, None, None),
    (13, -1, -1, b"", b"", [], 4),
]


def test_messages_keep_every_field():
    rows = ROWS
    segment = encode_segment(records_to_table(rows), topic="orders", partition=2, next_offset=20)
    batch = decode_segment(segment.data, expected_digest=segment.digest, name="s").to_batches()[0]
    messages = messages_of(batch, "orders", 2)
    assert all(isinstance(m, Message) and m.error() is None for m in messages)
    got = [
        (m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp(), m.leader_epoch())
        for m in messages
    ]
    assert got == [
        ("orders", 2, 10, None, b"null key", [("h", b"1"), ("h", None)], (TIMESTAMP_CREATE_TIME, 1_700_000_000_000), 4),
        ("orders", 2, 12, b"tombstone", None, None, (TIMESTAMP_LOG_APPEND_TIME, 1_700_000_000_500), None),
        ("orders", 2, 13, b"", b"", None, (TIMESTAMP_NOT_AVAILABLE, -1), 4),
    ]
    assert len(messages[0]) == len(b"null key")


def test_message_columns_give_back_the_records_they_were_made_of():
    segment = encode_segment(records_to_table(ROWS), topic="orders", partition=2, next_offset=20)
    batch = decode_segment(segment.data, expected_digest=segment.digest, name="s").to_batches()[0]
    messages = messages_of(batch, "orders", 2)
    columns = MessageColumns()
    columns.add(messages[:1])
    columns.add([])
    columns.add(messages[1:])
    assert len(columns) == 3
    assert columns.approx_bytes >= len(b"null key") + len(b"tombstone") + len("h1h")
    assert columns.to_table().equals(decode_segment(segment.data, expected_digest=segment.digest, name="s"))
