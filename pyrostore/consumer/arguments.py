"""Checking the application's arguments as confluent_kafka checks them, with the same exceptions and texts."""

from __future__ import annotations

import operator
from typing import Any

from confluent_kafka import Message, TopicPartition

MAX_MESSAGES = 1_000_000


def partition_list(value: Any) -> list[TopicPartition]:
    """``value`` if it is a list of TopicPartition. Raises TypeError."""
    if not isinstance(value, list):
        raise TypeError("requires list of TopicPartition")
    for item in value:
        partition(item)
    return value


def partition(value: Any) -> TopicPartition:
    """``value`` if it is a TopicPartition. Raises TypeError."""
    if not isinstance(value, TopicPartition):
        raise TypeError("expected cimpl.TopicPartition")
    return value


def message(value: Any) -> Message:
    """``value`` if it is a Message. Raises TypeError."""
    if not isinstance(value, Message):
        raise TypeError("expected confluent_kafka.cimpl.Message")
    return value


def seconds(value: Any) -> float:
    """A timeout in seconds. Raises TypeError when it is not a real number."""
    if not isinstance(value, int | float):
        raise TypeError(f"must be real number, not {type(value).__name__}")
    return float(value)


def message_count(value: Any) -> int:
    """``consume``'s ``num_messages``. Raises TypeError for a non-integer, ValueError out of 0..1000000."""
    count = operator.index(value)
    if not 0 <= count <= MAX_MESSAGES:
        raise ValueError("num_messages must be between 0 and 1000000 (1M)")
    return count


def callback(name: str, value: Any) -> Any:
    """A rebalance callback (or None). Raises TypeError when it cannot be called."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} expects a callable")
    return value
