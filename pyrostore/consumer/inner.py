"""The inner ``confluent_kafka.Consumer``: group membership, commits and live reads, moved where the partitions'
states say.

The adapter works around two librdkafka behaviours: a seek right after an assignment fails with ``_STATE`` until
the partition's fetcher starts (the seek is retried on the next round), and after an out-of-range error with
``auto.offset.reset=error`` every seek of the partition fails, so it is assigned afresh (incrementally, or the
whole assignment under the eager group protocol). A partition's pause survives reassignment, so it is set
explicitly. The adapter never calls the public methods of :class:`pyrostore.Consumer`: a subclass overriding
them sees only the application's calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from pyrostore.consumer.partition import PartitionState, Phase

RebalanceHandler = Callable[[Any, list[TopicPartition]], None]


class InnerConsumer:
    """Owns the inner consumer: assignment, pause and resume, and seeks that take effect eventually."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.client = confluent_kafka.Consumer(conf)
        self.eager_group = False  # subscribed with the eager protocol: only whole assignments can be made
        self.assigned_in_callback = False  # an assignment was made during the current rebalance callback

    # -- assignment -----------------------------------------------------------------------------------------

    def assign(self, states: list[PartitionState], incremental: bool) -> None:
        """Assign the partitions paused at their crossover guesses; the states' phases resume them later."""
        tps = [TopicPartition(s.topic, s.partition, s.crossover_guess) for s in states]
        self.assigned_in_callback = True
        if incremental:
            self.client.incremental_assign(tps)
        else:
            self.client.assign(tps)
        if tps:
            self.client.pause(tps)

    def unassign(self, partitions: list[TopicPartition] | None) -> None:
        """Drop the given partitions from the assignment (None: all of it)."""
        self.assigned_in_callback = True
        if partitions is None:
            self.client.unassign()
        else:
            self.client.incremental_unassign(partitions)

    def subscribe(
        self, topics: list[str], on_assign: RebalanceHandler, on_revoke: RebalanceHandler, on_lost: RebalanceHandler
    ) -> None:
        """Join the group; the handlers get the inner consumer's rebalances."""
        self.client.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    # -- following the states -------------------------------------------------------------------------------

    def pause(self, states: Iterable[PartitionState]) -> None:
        """Stop fetching the partitions (what was fetched ahead is dropped by librdkafka)."""
        tps = [TopicPartition(s.topic, s.partition) for s in states]
        if tps:
            self.client.pause(tps)

    def resume(self, states: Iterable[PartitionState]) -> None:
        """Fetch the partitions again from where the inner consumer stands."""
        tps = [TopicPartition(s.topic, s.partition) for s in states]
        if tps:
            self.client.resume(tps)

    def move(self, state: PartitionState, everyone: Iterable[PartitionState]) -> list[PartitionState]:
        """Seek the partition to its ``seek_to`` and resume it unless paused; retried on the next round while the
        fetcher has not started. ``everyone`` is the whole assignment, for a reassignment under the eager
        protocol; returns the other partitions that were moved back to their next offsets by it (records of
        theirs fetched ahead must be dropped)."""
        if state.seek_to is None:
            return []
        try:
            self.client.seek(TopicPartition(state.topic, state.partition, state.seek_to))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:
                raise
            return self._reassign(state, list(everyone)) if state.fetch_failed else []
        state.inner_moved()
        if not state.paused:
            self.resume([state])
        return []

    def _reassign(self, state: PartitionState, everyone: list[PartitionState]) -> list[PartitionState]:
        """Assign afresh after an out-of-range error (librdkafka refuses seeks then): the partition alone, or the
        whole assignment where each partition stands under the eager protocol."""
        rewound = []
        if self.eager_group:
            for other in everyone:
                if other is not state and other.phase is Phase.KAFKA and other.seek_to is None:
                    other.read_kafka(other.next)
                    rewound.append(other)
            changed = everyone
            self.client.assign([_inner_position(s) for s in everyone])
        else:
            self.client.incremental_unassign([TopicPartition(state.topic, state.partition)])
            self.client.incremental_assign([_inner_position(state)])
            changed = [state]
        for done in changed:
            done.fetch_failed = False
            if done.phase is Phase.KAFKA:
                done.inner_moved()
        self.resume(s for s in changed if s.reads_kafka)
        self.pause(s for s in changed if not s.reads_kafka)
        return rewound

    # -- reading --------------------------------------------------------------------------------------------

    def poll(self, timeout: float) -> Message | None:
        """One message or event, waiting up to ``timeout`` seconds (callbacks run as in the application's poll)."""
        return self.client.poll(timeout)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        """Up to ``num_messages`` messages and events, as ``confluent_kafka.Consumer.consume``."""
        return self.client.consume(num_messages=num_messages, timeout=timeout)

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        """Store offsets for the next commit."""
        if offsets:
            self.client.store_offsets(offsets=offsets)

    def close(self) -> None:
        """Leave the group (commits first with auto commit on) and close."""
        self.client.close()


def _inner_position(state: PartitionState) -> TopicPartition:
    """Where the inner consumer should fetch the partition from: its pending seek, or the archive's end."""
    offset = state.seek_to if state.phase is Phase.KAFKA and state.seek_to is not None else state.crossover_guess
    return TopicPartition(state.topic, state.partition, offset)
