"""The crossover consumer: a drop-in ``confluent_kafka.Consumer`` that reads history from the archive and
crosses into live Kafka (:class:`Consumer`), its deserializing variant, and the pure decisions behind them."""

from pyrostore.consumer.consumer import Consumer
from pyrostore.consumer.deserializing import DeserializingConsumer
from pyrostore.errors import ConsumerConfigError

__all__ = ["Consumer", "ConsumerConfigError", "DeserializingConsumer"]
