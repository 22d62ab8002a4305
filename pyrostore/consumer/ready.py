"""Messages and events made ready for the application, in the order it will get them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from confluent_kafka import Message

from pyrostore.consumer.partition import Key


class ReadyMessages:
    """A queue of messages and events waiting to be handed out."""

    def __init__(self) -> None:
        self._queue: deque[Message] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, messages: Iterable[Message]) -> None:
        """Queue records (or partition events) behind what waits."""
        self._queue.extend(messages)

    def add_first(self, message: Message) -> None:
        """Queue a client-wide error in front: the application learns of it at once, as from Kafka alone."""
        self._queue.appendleft(message)

    def take(self) -> Message:
        """The next message. Raises IndexError when none waits."""
        return self._queue.popleft()

    def peek_key(self) -> Key | None:
        """The partition of the next message (None for client-wide events). Raises IndexError when none waits."""
        return message_key(self._queue[0])

    def drop(self, keys: set[Key]) -> None:
        """Drop the messages of ``keys`` (client-wide events stay)."""
        if keys and self._queue:
            self._queue = deque(m for m in self._queue if message_key(m) not in keys)


def message_key(message: Message) -> Key | None:
    """The partition a message belongs to; None for events of the whole client (no topic or partition)."""
    topic, partition = message.topic(), message.partition()
    return None if topic is None or partition is None else (topic, partition)
