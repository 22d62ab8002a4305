"""Messages and events made ready for the application, in the order it will get them."""

from __future__ import annotations

from collections import deque

from confluent_kafka import Message

from pyrostore.consumer.partition import Key


class ReadyMessages(deque[Message]):
    """A queue of messages and events waiting to be handed out (a deque: the hot path stays in C)."""

    def peek_key(self) -> Key | None:
        """The partition of the next message (None for client-wide events). Raises IndexError when none waits."""
        return message_key(self[0])

    def drop(self, keys: set[Key]) -> None:
        """Drop the messages of ``keys`` (client-wide events stay)."""
        if keys and self:
            kept = [m for m in self if message_key(m) not in keys]
            self.clear()
            self.extend(kept)


def message_key(message: Message) -> Key | None:
    """The partition a message belongs to; None for events of the whole client (no topic or partition)."""
    topic, partition = message.topic(), message.partition()
    return None if topic is None or partition is None else (topic, partition)
