"""The router's answer to Kafka refusing a fetch position: where the partition starts again."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from pyrostore.archive import open_archive
from pyrostore.consumer.config import parse_settings
from pyrostore.consumer.offsets import OffsetBook
from pyrostore.consumer.partition import PartitionState, Phase
from pyrostore.consumer.ready import ReadyMessages
from pyrostore.consumer.router import Router
from pyrostore.messages import event

TOPIC = "t"


def test_a_refused_fetch_ahead_of_the_application_starts_again_after_what_it_has(tmp_path):
    """librdkafka fetches ahead: Kafka may refuse a position past records it already fetched and the application
    has not had yet, which librdkafka drops once the partition is paused. The partition starts again at the
    application's next offset, and records of it taken from librdkafka and not handed out are dropped, to be
    read again: nothing skipped, nothing twice."""
    settings = parse_settings(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "pyrostore.store.url": str(tmp_path)}
    )
    ready = ReadyMessages()
    router = Router(settings, open_archive(str(tmp_path)), None, ready, OffsetBook(True, None))
    try:
        state = PartitionState(TOPIC, 0, None, 0)
        router.partitions[state.key] = state
        state.read_kafka(0)
        state.inner_moved()  # reading from Kafka now
        state.delivered(4)  # the application had offsets up to 4
        taken = [Message(topic=TOPIC, partition=0, offset=o, value=b"v") for o in (5, 6, 7)]
        other = Message(topic=TOPIC, partition=1, offset=3, value=b"v")
        ready.extend([*taken, other])
        refusal = event(TOPIC, 0, 12, KafkaError._AUTO_OFFSET_RESET, "fetch position 12 is out of range")
        assert router.absorb(refusal) is None
        assert (state.phase, state.starting_at) == (Phase.STARTING, 5)
        assert list(ready) == [other]
    finally:
        router.close()
