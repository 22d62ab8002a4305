"""The compatibility suite: confluent_kafka.Consumer and pyrostore.Consumer run the same scenarios on the same
real topics (the ``world`` fixture of ``tests/integration/conftest.py``) and must give identical results, while
pyrostore.Consumer reads the history from the archive (in the stack's MinIO) rather than from Kafka.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from tests.consumer_helpers import BASE_TS, EOF, MAIN_PARTITIONS, World, read_to_end, run_both, take, view
from tests.kafka_helpers import wait_for


def _main_keys(world: World) -> set[tuple[str, int]]:
    return {(world.main, p) for p in range(MAIN_PARTITIONS)}


def test_reads_every_partition_with_its_end_events(world):
    def scenario(world, make):
        consumer = make()
        consumer.assign([TopicPartition(world.main, p, OFFSET_BEGINNING) for p in range(MAIN_PARTITIONS)])
        return read_to_end(consumer, _main_keys(world))

    got = run_both(world, scenario)
    for p in range(MAIN_PARTITIONS):
        assert [v[0] for v in got[(world.main, p)][:-1]] == world.offsets(world.main, p)
        assert got[(world.main, p)][-1][-1] == EOF


def test_assign_at_every_kind_of_position(world):
    def scenario(world, make):
        consumer = make()
        found = {}
        for topic in (world.main, world.compacted, world.txn):
            offsets = world.offsets(topic)
            positions = {
                "beginning": OFFSET_BEGINNING,
                "end": OFFSET_END,
                "middle": offsets[len(offsets) // 2],
                "last": offsets[-1],
                "past the end": offsets[-1] + 5,
            }
            if topic != world.main:
                positions["inside a gap"] = world.gap(topic)
            for name, offset in positions.items():
                consumer.assign([TopicPartition(topic, 0, offset)])
                found[(topic, name)] = take(consumer, 4)
        return found

    found = run_both(world, scenario)
    for topic in (world.compacted, world.txn):
        assert found[(topic, "inside a gap")][0][0] > world.gap(topic)
    [(kind, topic, _, end, code)] = found[(world.txn, "end")]
    assert (kind, topic, code) == ("event", world.txn, EOF) and end > world.offsets(world.txn)[-1] + 1
    assert found[(world.main, "past the end")][0][0] == 0  # auto.offset.reset=earliest applies


def test_stored_and_invalid_offsets_follow_commits_and_reset(world):
    group = f"stored-{uuid.uuid4().hex[:8]}"

    def scenario(world, make):
        committer = make(group_id=group)
        committer.commit(offsets=[TopicPartition(world.main, 0, 50)], asynchronous=False)
        found = {}
        for reset in ("earliest", "latest"):
            consumer = make(group_id=group, auto_offset_reset=reset)
            consumer.assign(
                [TopicPartition(world.main, 0, OFFSET_STORED), TopicPartition(world.main, 1, OFFSET_INVALID)]
            )
            got = read_to_end(consumer, {(world.main, 0), (world.main, 1)})
            found[reset] = {key: (len(views), views[:2]) for key, views in got.items()}
        return found

    found = run_both(world, scenario)
    assert found["earliest"][(world.main, 0)][1][0][0] == 50
    assert found["latest"][(world.main, 1)][0] == 1  # only the end-of-partition event


def test_seek_and_position(world):
    def scenario(world, make):
        consumer = make()
        tp = TopicPartition(world.main, 1)
        offsets = world.offsets(world.main, 1)
        consumer.assign([TopicPartition(world.main, 1, OFFSET_BEGINNING)])
        steps: list = [[p.offset for p in consumer.position([tp])]]
        steps += [take(consumer, 10), [p.offset for p in consumer.position([tp])]]
        for offset in (offsets[120], OFFSET_BEGINNING, offsets[-2], OFFSET_END, 3):
            consumer.seek(TopicPartition(world.main, 1, offset))
            steps += [[p.offset for p in consumer.position([tp])], take(consumer, 3)]
            steps.append([p.offset for p in consumer.position([tp])])
        return steps

    steps = run_both(world, scenario)
    assert steps[2] == [10] and steps[3] == [OFFSET_INVALID]


def test_consume_in_batches_gives_what_poll_gives(world):
    def scenario(world, make):
        consumer = make()
        consumer.assign([TopicPartition(world.main, p, OFFSET_BEGINNING) for p in range(MAIN_PARTITIONS)])
        got: dict = {key: [] for key in _main_keys(world)}
        ended: set = set()
        deadline = time.monotonic() + 60
        while ended != set(got) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.5):
                got[(message.topic(), message.partition())].append(view(message))
                if message.error() is not None:
                    ended.add((message.topic(), message.partition()))
        return got

    got = run_both(world, scenario)
    for p in range(MAIN_PARTITIONS):
        rows = world.rows[world.main][p]
        assert [(v[0], v[1], v[2]) for v in got[(world.main, p)][:-1]] == [(r[0], r[3], r[4]) for r in rows]


def test_subscribe_alone(world):
    def scenario(world, make):
        consumer = make()
        assigned: list = []
        consumer.subscribe([world.main], on_assign=lambda c, ps: assigned.extend((p.topic, p.partition) for p in ps))
        got = read_to_end(consumer, _main_keys(world))
        return sorted(assigned), got, consumer.memberid() is not None

    assigned, _, has_member_id = run_both(world, scenario)
    assert assigned == sorted(_main_keys(world)) and has_member_id


def test_two_group_members_rebalance_without_losing_or_doubling(world):
    def scenario(world, make):
        group = f"pair-{uuid.uuid4().hex[:8]}"
        members = [make(group_id=group), make(group_id=group)]
        assignments: list[list] = [[], []]
        consumed: list = []

        def subscribe(index: int) -> None:
            def on_assign(consumer, partitions):
                assignments[index] = sorted(p.partition for p in partitions)

            def on_revoke(consumer, partitions):
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:
                    assert exc.args[0].code() == KafkaError._NO_OFFSET  # nothing read since the last commit
                assignments[index] = []

            members[index].subscribe([world.main], on_assign=on_assign, on_revoke=on_revoke)

        subscribe(0)
        while len(consumed) < 90:  # the first member alone reads a part of the topic
            message = members[0].poll(0.5)
            if message is not None and message.error() is None:
                consumed.append((message.partition(), message.offset()))
        members[0].commit(asynchronous=False)
        subscribe(1)
        ended: set = set()
        deadline = time.monotonic() + 90
        while not (ended == set(range(MAIN_PARTITIONS)) and all(assignments)):
            assert time.monotonic() < deadline, f"rebalance did not settle: {assignments}, ended {ended}"
            for index, member in enumerate(members):
                for message in member.consume(50, 0.05):
                    if message.error() is None:
                        consumed.append((message.partition(), message.offset()))
                        ended.discard(message.partition())
                    elif message.partition() in assignments[index]:
                        ended.add(message.partition())
        everything = {(p, o) for p in range(MAIN_PARTITIONS) for o in world.offsets(world.main, p)}
        return sorted(len(a) for a in assignments), set(consumed) == everything, len(consumed) - len(set(consumed))

    sizes, complete, doubled = run_both(world, scenario)
    assert sizes == [1, 2] and complete and doubled == 0


def test_commit_and_committed(world):
    def scenario(world, make):
        group = f"commit-{uuid.uuid4().hex[:8]}"
        refused = make(group_id=group)  # storing offsets by hand needs enable.auto.offset.store=false
        refused.assign([TopicPartition(world.main, 0, OFFSET_BEGINNING)])
        consumer = make(group_id=group, enable_auto_offset_store=False)
        consumer.assign([TopicPartition(world.main, 0, OFFSET_BEGINNING)])
        messages = []
        while len(messages) < 21:
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                messages.append(message)
        tps = [TopicPartition(world.main, p) for p in range(2)]
        results = [
            _outcome(lambda: refused.store_offsets(offsets=[TopicPartition(world.main, 0, 3)])),
            _outcome(lambda: consumer.commit(message=messages[10], asynchronous=False)),
            _outcome(lambda: consumer.commit(offsets=[TopicPartition(world.main, 1, 7)], asynchronous=False)),
            _outcome(lambda: consumer.store_offsets(message=messages[20])),
            _outcome(lambda: consumer.commit(asynchronous=False)),  # the stored offsets
            _outcome(lambda: consumer.committed(tps, timeout=10)),
            _outcome(lambda: consumer.store_offsets(offsets=[TopicPartition(world.main, 0, 3)])),
            _outcome(lambda: consumer.commit(asynchronous=False)),
            _outcome(lambda: consumer.committed(tps, timeout=10)),
            _outcome(lambda: consumer.commit(offsets=[TopicPartition(world.main, 1, 9)], asynchronous=True)),
        ]

        def committed_asynchronously() -> bool:
            consumer.poll(0.1)
            return consumer.committed(tps, timeout=10)[1].offset == 9

        wait_for(committed_asynchronously, 20, "the asynchronous commit")
        resumed = make(group_id=group)
        resumed.assign([TopicPartition(world.main, 0)])
        results.append(take(resumed, 1))
        return results

    results = run_both(world, scenario)
    assert results[0] == ("error", KafkaError._INVALID_ARG) and results[1] == [(0, 11)]
    assert results[5] == [(0, 21), (1, 7)]


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call returned (TopicPartition lists as pairs), or the code of the KafkaException it raised."""
    try:
        return _offsets(call())
    except KafkaException as exc:
        return ("error", exc.args[0].code())


def _offsets(result: Any) -> Any:
    """TopicPartition lists as (partition, offset) pairs, anything else as it is."""
    if isinstance(result, list) and result and isinstance(result[0], TopicPartition):
        return [(tp.partition, tp.offset) for tp in result]
    return result


def test_offsets_for_times_with_non_monotonic_timestamps(world):
    targets = [
        BASE_TS - 1,
        BASE_TS,
        BASE_TS + 500,
        BASE_TS + 42_000,
        BASE_TS + 99_000,
        BASE_TS + 99_001,
        BASE_TS + 10**9,
    ]

    def scenario(world, make):
        consumer = make()
        found = {}
        for target in targets:
            tps = [TopicPartition(world.main, p, target) for p in range(MAIN_PARTITIONS)]
            found[target] = [tp.offset for tp in consumer.offsets_for_times(tps, timeout=10)]
        return found

    found = run_both(world, scenario, reads=False)
    for target, offsets in found.items():  # the earliest offset whose timestamp is at or after the target
        for p, offset in enumerate(offsets):
            rows = world.rows[world.main][p]
            expected = next((r[0] for r in rows if r[2] >= target), -1)
            assert offset == expected, (target, p)


def test_watermarks(world):
    def scenario(world, make):
        consumer = make()
        tps = [TopicPartition(world.main, p) for p in range(MAIN_PARTITIONS)]
        tps += [TopicPartition(world.compacted, 0), TopicPartition(world.txn, 0)]
        return [consumer.get_watermark_offsets(tp, timeout=10) for tp in tps]

    marks = run_both(world, scenario, reads=False)
    assert marks[0] == (0, len(world.offsets(world.main, 0)))


def test_pause_and_resume(world):
    def scenario(world, make):
        consumer = make()
        tp0 = TopicPartition(world.main, 0)
        consumer.assign([TopicPartition(world.main, p, OFFSET_BEGINNING) for p in range(2)])
        before: list[int] = []
        while len(before) < 5:
            message = consumer.poll(1)
            if message is not None and message.error() is None and message.partition() == 0:
                before.append(message.offset())
        consumer.pause([tp0])
        while_paused = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None:
                while_paused.append(message.partition())
        consumer.resume([tp0])
        after = read_to_end(consumer, {(world.main, 0)}, timeout=30)[(world.main, 0)]
        return before + [v[0] for v in after[:-1]] == world.offsets(world.main, 0), 0 in while_paused

    continued, served_while_paused = run_both(world, scenario)
    assert continued and not served_while_paused


def test_close_and_context_manager(world):
    def scenario(world, make):
        consumer = make()
        with consumer as same:
            same.assign([TopicPartition(world.main, 2, OFFSET_BEGINNING)])
            first = take(same, 2)
        outcomes = []
        for call in (lambda: consumer.poll(0), lambda: consumer.assignment(), lambda: consumer.commit()):
            try:
                call()
                outcomes.append(None)
            except RuntimeError as exc:
                outcomes.append(str(exc))
        consumer.close()  # closing again is harmless
        return first, outcomes

    first, outcomes = run_both(world, scenario)
    assert len(first) == 2 and outcomes == ["Consumer closed"] * 3
