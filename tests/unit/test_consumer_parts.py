"""The consumer's small parts without a broker: partition phases, the ready queue and the offset book."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, TopicPartition

from pyrostore.consumer.decisions import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID
from pyrostore.consumer.offsets import OffsetBook
from pyrostore.consumer.partition import PartitionState, Phase
from pyrostore.consumer.ready import ReadyMessages
from pyrostore.messages import event


def test_a_partition_starts_and_each_start_has_a_new_generation():
    state = PartitionState("t", 0)
    assert state.phase is Phase.STARTING and state.crossover_guess == OFFSET_END
    first = state.start(OFFSET_BEGINNING)
    second = state.start(5)
    assert second == first + 1 and state.starting_at == 5 and state.phase is Phase.STARTING
    assert not state.reads_kafka


def test_reading_kafka_waits_for_the_inner_consumer_to_move_and_for_the_application():
    state = PartitionState("t", 0)
    state.read_kafka(7)
    assert (state.phase, state.seek_to, state.reads_kafka) == (Phase.KAFKA, 7, False)
    state.inner_moved()
    assert state.reads_kafka
    state.pause()
    assert not state.reads_kafka
    assert state.resume() and not state.resume()  # resumed once: the second resume changes nothing
    assert state.reads_kafka


def test_records_of_the_archive_still_waiting_are_told_apart_after_the_crossover():
    state = PartitionState("t", 0)
    state.archived_below = 100  # archived records up to 99 wait to be handed out
    state.start(100)
    state.read_kafka(100)
    state.delivered(99)
    state.delivered(100)
    assert (state.from_archive, state.from_kafka) == (1, 1)


def test_delivery_moves_position_and_a_seek_forgets_it():
    state = PartitionState("t", 2)
    state.eof_sent = True
    state.delivered(41)
    assert (state.next, state.position, state.eof_sent) == (42, 42, False)
    state.seeked()
    assert (state.next, state.position) == (42, OFFSET_INVALID)


def test_halting_and_waiting_at_the_end_leave_no_seek_pending():
    state = PartitionState("t", 0)
    state.read_kafka(5)
    state.halt()
    assert (state.phase, state.seek_to) == (Phase.HOLE, None)
    state.wait_at_end(0.5)
    assert state.phase is Phase.END and state.refresh_at > 0


def test_the_ready_queue_drops_one_partition_and_keeps_client_wide_events():
    ready = ReadyMessages()
    ready.extend(
        [event("a", 0, 1, KafkaError._PARTITION_EOF, "end"), event("b", 0, 2, KafkaError._PARTITION_EOF, "end")]
    )
    ready.appendleft(Message(error=KafkaError(KafkaError._ALL_BROKERS_DOWN, "down")))  # of the whole client
    ready.drop({("a", 0)})
    assert len(ready) == 2
    assert ready.peek_key() is None
    assert ready.popleft().error().code() == KafkaError._ALL_BROKERS_DOWN
    assert ready.popleft().topic() == "b"


def _handed_out(partition: int, offsets: range, archived_below: int = -1) -> PartitionState:
    state = PartitionState("t", partition)
    state.archived_below = archived_below
    for offset in offsets:
        state.delivered(offset)
    return state


def test_the_offset_book_counts_by_side_and_stores_only_assigned_partitions():
    book = OffsetBook(auto_store=True, inner=None)
    first, second = _handed_out(0, range(10), archived_below=10), _handed_out(1, range(3))
    book.flush([first])
    assert book.counts([first, second]) == {"archive": 10, "kafka": 3}
    assert book.local == {("t", 0): 10}
    book.store([TopicPartition("t", 1, 7)], [first])
    assert book.local == {("t", 0): 10, ("t", 1): 7}
    book.forget(second)
    assert book.counts([first]) == {"archive": 10, "kafka": 3}


def test_the_offset_book_stores_again_after_a_seek_back():
    book = OffsetBook(auto_store=True, inner=None)
    state = _handed_out(0, range(100))
    book.flush([state])
    state.seeked()
    state.delivered(10)
    book.flush([state])
    assert book.local == {("t", 0): 11}


def test_the_offset_book_stores_nothing_on_delivery_when_the_application_stores():
    book = OffsetBook(auto_store=False, inner=None)
    book.flush([_handed_out(0, range(10))])
    assert book.local == {}
