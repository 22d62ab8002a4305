"""``pyrostore.DeserializingConsumer``: confluent_kafka's DeserializingConsumer over the crossover consumer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Message
from confluent_kafka.error import ConsumeError, KeyDeserializationError, ValueDeserializationError
from confluent_kafka.serialization import MessageField, SerializationContext

from pyrostore.consumer.consumer import Consumer
from pyrostore.errors import ConsumerConfigError

Deserializer = Callable[[bytes | None, SerializationContext], Any]


class DeserializingConsumer(Consumer):
    """A :class:`pyrostore.Consumer` whose :meth:`poll` deserializes keys and values, as confluent_kafka's does.

    Extra settings: ``key.deserializer`` and ``value.deserializer``, callables of (bytes, SerializationContext).
    :meth:`poll` raises ConsumeError for events, KeyDeserializationError and ValueDeserializationError when a
    deserializer fails; :meth:`consume` is not implemented, as in confluent_kafka.
    """

    def __init__(self, conf: Mapping[str, Any]) -> None:
        conf = dict(conf)
        builders = [k for k in ("key.deserializer.builder", "value.deserializer.builder") if k in conf]
        if builders:
            raise ConsumerConfigError(f"{builders[0]} is not supported; pass a ready deserializer instead")
        self._key_deserializer: Deserializer | None = conf.pop("key.deserializer", None)
        self._value_deserializer: Deserializer | None = conf.pop("value.deserializer", None)
        super().__init__(conf)

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next message, deserialized; None on timeout. Raises ConsumeError for errors and events."""
        message = super().poll(timeout)
        if message is None:
            return None
        error, topic = message.error(), message.topic()
        if error is not None:
            raise ConsumeError(error, kafka_message=message)
        assert topic is not None  # records (not events) always name their topic
        context = SerializationContext(topic, MessageField.KEY, message.headers())
        key = message.key()
        if self._key_deserializer is not None:
            try:
                key = self._key_deserializer(key, context)
            except Exception as exc:
                raise KeyDeserializationError(exception=exc, kafka_message=message) from exc
        value = message.value()
        if self._value_deserializer is not None:
            context.field = MessageField.VALUE
            try:
                value = self._value_deserializer(value, context)
            except Exception as exc:
                raise ValueDeserializationError(exception=exc, kafka_message=message) from exc
        message.set_key(key)
        message.set_value(value)
        return message

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Not implemented, as in confluent_kafka: use :meth:`poll`."""
        raise NotImplementedError
