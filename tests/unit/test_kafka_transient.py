"""Which Kafka errors are worth asking again: retriable ones and leadership moving, not refusals or bad input."""

from __future__ import annotations

from confluent_kafka import KafkaError

from pyrostore.kafka import transient


def test_leadership_moving_is_transient_even_when_librdkafka_does_not_mark_it_retriable():
    # What a replay met reading its checkpoint topic just after the topic was created (CI, session 10).
    epoch = KafkaError(KafkaError.UNKNOWN_LEADER_EPOCH, "Broker: Leader epoch is newer than broker epoch")
    assert not epoch.retriable()
    assert transient(epoch)
    assert transient(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
    assert transient(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))


def test_retriable_errors_are_transient_and_refusals_are_not():
    assert transient(KafkaError(KafkaError.REQUEST_TIMED_OUT, retriable=True))
    assert not transient(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not transient(KafkaError(KafkaError.INVALID_REQUEST))
