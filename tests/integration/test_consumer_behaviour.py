"""Behaviour off the happy path, side by side: confluent_kafka.Consumer and pyrostore.Consumer run each scenario on
the same topics (the shared ``world``) and must give identical results: return values, exceptions (type, and
error code or message), events and the order of rebalance callbacks. An unreachable broker, no bootstrap.servers,
application subclasses, bad arguments, max.poll.interval.ms exceeded, calls after close, both group protocols.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from e2e.stack.process import free_port
from tests.consumer_helpers import CLASSES, EOF, MAIN_PARTITIONS, World, read_to_end, run_both, view

Make = Callable[..., Any]


def _absent_topic() -> str:
    """A topic that neither Kafka nor the archive holds: both consumers can only ask Kafka about it."""
    return f"absent-{uuid.uuid4().hex[:10]}"


def _plain(value: Any, consumer: Any = None) -> Any:
    """A return value in a form that compares across the two consumers."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if consumer is not None and value is consumer:
        return "the consumer itself"
    if isinstance(value, Message):
        return view(value)
    if isinstance(value, TopicPartition):
        return (value.topic, value.partition, value.offset)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v, consumer) for v in value)
    return type(value).__name__


def _outcome(call: Callable[[], Any], consumer: Any = None) -> tuple:
    """What a call returned, or what it raised: a KafkaException by its error code, others by type and message."""
    try:
        return ("returned", _plain(call(), consumer))
    except KafkaException as exc:
        return ("raised", "KafkaException", exc.args[0].code())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _build(make: Make, *args: Any, **conf: Any) -> tuple[tuple, Any]:
    """``make(...)``'s outcome, and the consumer if it was built (None if construction raised)."""
    built: list = []
    outcome = _outcome(lambda: built.append(make(*args, **conf)))
    return outcome, (built[0] if built else None)


def _numbers(partitions: list[TopicPartition]) -> list[int]:
    """The partition numbers, sorted."""
    return sorted(tp.partition for tp in partitions)


def _polled(message: Message | None) -> int | None:
    """A poll's result: None, an event's error code, or a record's offset."""
    if message is None:
        return None
    error = message.error()
    return error.code() if error is not None else message.offset()


# -- without Kafka ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_cb", [False, True], ids=["without-error_cb", "with-error_cb"])
def test_an_unreachable_broker_is_reported_as_confluent_kafka_reports_it(world, error_cb):
    topic = _absent_topic()

    def scenario(world: World, make: Make) -> Any:
        errors: list[int] = []
        built, consumer = _build(make, {"error_cb": lambda err: errors.append(err.code())} if error_cb else None)
        if consumer is None:
            return built
        started = time.monotonic()
        assigned = _outcome(lambda: consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)]))
        promptly = time.monotonic() - started < 5  # confluent_kafka returns at once: it does not ask the broker
        polls = [_outcome(lambda: _polled(consumer.poll(1))) for _ in range(3)]
        return built, assigned, promptly, polls, sorted(set(errors))

    result = run_both(world, scenario, reads=False, bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    assert result[:3] == (("returned", None), ("returned", None), True)


def test_a_configuration_without_bootstrap_servers(world):
    topic = _absent_topic()
    tp = TopicPartition(topic, 0)

    def scenario(world: World, make: Make) -> Any:
        built, consumer = _build(make, {"bootstrap.servers": None})
        if consumer is None:
            return built
        return [
            built,
            _outcome(lambda: consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])),
            _outcome(consumer.assignment),
            _outcome(lambda: consumer.position([tp])),
            [_outcome(lambda: _polled(consumer.poll(0.5))) for _ in range(2)],
            _outcome(consumer.memberid),
            _outcome(lambda: consumer.committed([tp], timeout=1)),
            _outcome(lambda: consumer.get_watermark_offsets(tp, timeout=1)),
            _outcome(lambda: consumer.list_topics(timeout=1)),
            _outcome(consumer.unassign),
        ]

    result = run_both(world, scenario, reads=False)
    assert result[0] == ("returned", None) and result[2] == ("returned", [(topic, 0, OFFSET_BEGINNING)])


# -- application subclasses -------------------------------------------------------------------------------------


class _Recording:
    """An application subclass: records each call of the assignment methods, then lets the consumer do it."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.calls: list[tuple] = []  # before the consumer's __init__, which must not call these methods either
        super().__init__(conf)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("assign", _numbers(partitions)))
        super().assign(partitions)

    def unassign(self) -> None:
        self.calls.append(("unassign",))
        super().unassign()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("incremental_assign", _numbers(partitions)))
        super().incremental_assign(partitions)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("incremental_unassign", _numbers(partitions)))
        super().incremental_unassign(partitions)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
@pytest.mark.parametrize("callbacks_assign", [True, False], ids=["callbacks-assign", "callbacks-only-record"])
def test_a_subclass_sees_only_the_calls_the_application_makes(world, strategy, callbacks_assign):
    cooperative = strategy.startswith("cooperative")

    def scenario(world: World, make: Make) -> Any:
        group = f"subclass-{uuid.uuid4().hex[:8]}"
        # client.id orders the member ids, so the range assignor splits the partitions the same way every run
        members = [
            make(mixin=_Recording, group_id=group, client_id=f"member-{i}", partition_assignment_strategy=strategy)
            for i in range(2)
        ]

        def subscribe(member: Any) -> None:
            def on_assign(consumer: Any, partitions: list[TopicPartition]) -> None:
                member.calls.append(("on_assign", _numbers(partitions)))
                if callbacks_assign:
                    (consumer.incremental_assign if cooperative else consumer.assign)(partitions)

            def on_revoke(consumer: Any, partitions: list[TopicPartition]) -> None:
                member.calls.append(("on_revoke", _numbers(partitions)))
                if callbacks_assign and cooperative:
                    consumer.incremental_unassign(partitions)
                elif callbacks_assign:
                    consumer.unassign()

            def on_lost(consumer: Any, partitions: list[TopicPartition]) -> None:
                member.calls.append(("on_lost", _numbers(partitions)))

            member.subscribe([world.main], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

        subscribe(members[0])
        read_to_end(members[0], {(world.main, p) for p in range(MAIN_PARTITIONS)})
        members[0].calls.append(("read to the end",))
        subscribe(members[1])
        deadline = time.monotonic() + 60
        while not (all(m.assignment() for m in members) and sum(len(m.assignment()) for m in members) == 3):
            assert time.monotonic() < deadline, f"the rebalance did not settle: {[m.calls for m in members]}"
            for member in members:
                member.poll(0.2)
        settled = time.monotonic() + 1  # callbacks of the rebalance's last round
        while time.monotonic() < settled:
            for member in members:
                member.poll(0.2)
        for member in members:
            member.calls.append(("close",))
            member.close()
        return [member.calls for member in members]

    calls = run_both(world, scenario)
    assert ("on_assign", [0, 1, 2]) in calls[0] and ("close",) in calls[1]


class _SkipsInit:
    """An application subclass whose ``__init__`` never calls the consumer's."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf


def _every_method(topic: str) -> dict[str, Callable[[Any], Any]]:
    """A call of each public method of confluent_kafka.Consumer (and the context manager's), with good arguments."""
    tp = TopicPartition(topic, 0, 1)
    calls: dict[str, Callable[[Any], Any]] = {
        "assign": lambda c: c.assign([tp]),
        "assignment": lambda c: c.assignment(),
        "close": lambda c: c.close(),
        "cluster_id": lambda c: c.cluster_id(timeout=1),
        "commit": lambda c: c.commit(offsets=[tp], asynchronous=False),
        "committed": lambda c: c.committed([tp], timeout=1),
        "consume": lambda c: c.consume(1, 0),
        "consumer_group_metadata": lambda c: c.consumer_group_metadata(),
        "get_watermark_offsets": lambda c: c.get_watermark_offsets(tp, timeout=1),
        "incremental_assign": lambda c: c.incremental_assign([tp]),
        "incremental_unassign": lambda c: c.incremental_unassign([tp]),
        "list_topics": lambda c: c.list_topics(timeout=1),
        "memberid": lambda c: c.memberid(),
        "offsets_for_times": lambda c: c.offsets_for_times([tp], timeout=1),
        "pause": lambda c: c.pause([tp]),
        "poll": lambda c: c.poll(0),
        "position": lambda c: c.position([tp]),
        "resume": lambda c: c.resume([tp]),
        "seek": lambda c: c.seek(tp),
        "set_sasl_credentials": lambda c: c.set_sasl_credentials("user", "password"),
        "store_offsets": lambda c: c.store_offsets(offsets=[tp]),
        "subscribe": lambda c: c.subscribe([topic]),
        "unassign": lambda c: c.unassign(),
        "unsubscribe": lambda c: c.unsubscribe(),
        "__enter__": lambda c: c.__enter__(),
        "__exit__": lambda c: c.__exit__(None, None, None),
    }
    public = {name for name in dir(Consumer) if not name.startswith("_")}
    assert public <= set(calls), f"confluent_kafka.Consumer has methods this table lacks: {public - set(calls)}"
    return calls


def test_a_subclass_that_skips_init_fails_as_confluent_kafka_does():
    found = {}
    for kind, base in CLASSES.items():
        cls = type("SkipsInit", (_SkipsInit, base), {})
        outcomes = {}
        for name, call in _every_method(_absent_topic()).items():
            consumer = cls({"group.id": "never-used"})  # a fresh one for each call: close() must not hide the rest
            outcomes[name] = _outcome(lambda: call(consumer), consumer)  # noqa: B023 (called at once)
        found[kind] = outcomes
    assert found["confluent_kafka"] == found["pyrostore"]
    assert found["confluent_kafka"]["poll"] == ("raised", "RuntimeError", "Consumer closed")


def test_every_method_after_close_fails_as_confluent_kafka_does(world):
    def scenario(world: World, make: Make) -> Any:
        outcomes = {}
        for name, call in _every_method(world.main).items():
            consumer = make()
            consumer.close()
            outcomes[name] = _outcome(lambda: call(consumer), consumer)  # noqa: B023 (called at once)
        return outcomes

    outcomes = run_both(world, scenario, reads=False)
    assert outcomes["poll"] == ("raised", "RuntimeError", "Consumer closed")


# -- bad arguments --------------------------------------------------------------------------------------------


def test_bad_arguments_fail_as_confluent_kafka_fails(world):
    def scenario(world: World, make: Make) -> Any:
        consumer = make(enable_auto_offset_store=False)
        last = world.offsets(world.main, 0)[-1]
        consumer.assign([TopicPartition(world.main, 0, last - 2)])
        records: list[Message] = []
        eof = None
        deadline = time.monotonic() + 30
        while eof is None:
            assert time.monotonic() < deadline, "no end-of-partition event within 30 s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is None:
                records.append(message)
            else:
                eof = message
        assert eof.error().code() == EOF
        record = records[0]
        own = TopicPartition(world.main, 0, last)
        unassigned = TopicPartition(world.main, 1, 5)
        calls: dict[str, Callable[[], Any]] = {
            "store_offsets(message=<end-of-partition event>)": lambda: consumer.store_offsets(message=eof),
            "store_offsets(offsets=[])": lambda: consumer.store_offsets(offsets=[]),
            "store_offsets()": lambda: consumer.store_offsets(),
            "store_offsets(message and offsets)": lambda: consumer.store_offsets(message=record, offsets=[own]),
            "store_offsets(offsets=<not a list>)": lambda: consumer.store_offsets(offsets=own),
            "store_offsets(<unassigned partition>)": lambda: consumer.store_offsets(offsets=[unassigned]),
            "consume(0)": lambda: consumer.consume(0),
            "consume(num_messages=2_000_000)": lambda: consumer.consume(num_messages=2_000_000),
            "consume(-1)": lambda: consumer.consume(-1, 0),
            'consume("x")': lambda: consumer.consume("x"),
            'consume(1, "x")': lambda: consumer.consume(1, "x"),
            'poll("x")': lambda: consumer.poll("x"),
            "seek(<unassigned partition>)": lambda: consumer.seek(unassigned),
            "seek(<unknown topic>)": lambda: consumer.seek(TopicPartition(_absent_topic(), 0, 5)),
            'seek("x")': lambda: consumer.seek("x"),
            "assign(<not a list>)": lambda: consumer.assign(own),
            'assign(["x"])': lambda: consumer.assign(["x"]),
            "incremental_assign(<not a list>)": lambda: consumer.incremental_assign(own),
            "commit(message and offsets)": lambda: consumer.commit(message=record, offsets=[own]),
            "commit(message=<end-of-partition event>)": lambda: consumer.commit(message=eof, asynchronous=False),
            "commit(offsets=[])": lambda: consumer.commit(offsets=[], asynchronous=False),
            "commit(offsets=<not a list>)": lambda: consumer.commit(offsets=own, asynchronous=False),
            "committed(<not a list>)": lambda: consumer.committed(own),
            "position(<not a list>)": lambda: consumer.position(own),
            "pause(<not a list>)": lambda: consumer.pause(own),
            "resume(<not a list>)": lambda: consumer.resume(own),
            'get_watermark_offsets("x")': lambda: consumer.get_watermark_offsets("x"),
            "offsets_for_times(<not a list>)": lambda: consumer.offsets_for_times(own),
            "subscribe(<a topic, not a list>)": lambda: consumer.subscribe(world.main),
            "subscribe(on_assign=5)": lambda: consumer.subscribe([world.main], on_assign=5),
            "list_topics(5)": lambda: consumer.list_topics(5),
        }
        return {name: _outcome(call, consumer) for name, call in calls.items()}

    outcomes = run_both(world, scenario)
    assert outcomes["store_offsets(message=<end-of-partition event>)"] == (
        "raised",
        "KafkaException",
        KafkaError._INVALID_ARG,
    )


# -- the group ----------------------------------------------------------------------------------------------------


def test_max_poll_interval_exceeded_then_rejoining(world):
    def scenario(world: World, make: Make) -> Any:
        consumer = make(
            group_id=f"slow-{uuid.uuid4().hex[:8]}",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=6000,
        )
        events: list[tuple] = []
        at: list[Any] = ["subscribe"]  # the poll during which a callback runs

        def recorder(name: str) -> Callable[[Any, list[TopicPartition]], None]:
            return lambda consumer, partitions: events.append((name, at[0], _numbers(partitions)))

        consumer.subscribe(
            [world.txn], on_assign=recorder("on_assign"), on_revoke=recorder("on_revoke"), on_lost=recorder("on_lost")
        )
        read_to_end(consumer, {(world.txn, 0)})
        time.sleep(8)  # past max.poll.interval.ms: the client leaves the group
        for index in range(6):
            at[0] = index
            events.append(("poll", index, _polled(consumer.poll(3))))
        at[0] = "close"
        consumer.close()
        return events

    events = run_both(world, scenario)
    assert ("poll", 0, KafkaError._MAX_POLL_EXCEEDED) in events


def test_consume_without_a_timeout_returns_once_it_has_enough(world):
    def scenario(world: World, make: Make) -> Any:
        consumer = make()
        consumer.subscribe([world.main])  # assigned by a callback inside the first consume()
        first = consumer.consume(10, -1)
        rest = consumer.consume(1_000_000, 3)
        records = [(m.partition(), m.offset()) for m in first + rest if m.error() is None]
        return len(first), len(records), len(set(records))

    first, records, distinct = run_both(world, scenario)
    assert first == 10 and records == distinct == sum(len(world.offsets(world.main, p)) for p in range(MAIN_PARTITIONS))


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_both_group_protocols_rebalance_and_commit(world, protocol):
    everything = {(p, o) for p in range(MAIN_PARTITIONS) for o in world.offsets(world.main, p)}
    tps = [TopicPartition(world.main, p) for p in range(MAIN_PARTITIONS)]

    def scenario(world: World, make: Make) -> Any:
        group = f"{protocol}-{uuid.uuid4().hex[:8]}"
        members = [make(group_id=group, group_protocol=protocol) for _ in range(2)]
        assignments: list[list[int]] = [[], []]
        consumed: list[tuple[int, int]] = []

        def subscribe(index: int) -> None:
            def on_assign(consumer: Any, partitions: list[TopicPartition]) -> None:
                assignments[index] = sorted(set(assignments[index]) | set(_numbers(partitions)))

            def on_revoke(consumer: Any, partitions: list[TopicPartition]) -> None:
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:
                    assert exc.args[0].code() == KafkaError._NO_OFFSET  # nothing read since the last commit
                assignments[index] = sorted(set(assignments[index]) - set(_numbers(partitions)))

            members[index].subscribe([world.main], on_assign=on_assign, on_revoke=on_revoke)

        subscribe(0)
        while len(consumed) < 90:  # the first member alone reads a part of the topic
            message = members[0].poll(0.5)
            if message is not None and message.error() is None:
                consumed.append((message.partition(), message.offset()))
        members[0].commit(asynchronous=False)
        first = sum(tp.offset for tp in members[0].committed(tps, timeout=10) if tp.offset > 0)
        subscribe(1)
        ended: set[int] = set()
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
        # The stored offsets may all be committed already (a member can read to the end before the rebalance,
        # then commit on revoke): each member commits explicit offsets of its own partitions instead.
        commits = []
        for index, member in enumerate(members):
            mine = [TopicPartition(world.main, p, 100 + p) for p in assignments[index]]
            commits.append(_outcome(lambda: member.commit(offsets=mine, asynchronous=False)))  # noqa: B023
        committed = [_outcome(lambda: member.committed(tps, timeout=10)) for member in members]  # noqa: B023
        if all(outcome[0] == "returned" for outcome in commits):  # which member holds which partition may vary
            commits = sorted(tp for outcome in commits for tp in outcome[1])
        return (
            first,
            sorted(len(a) for a in assignments),
            set(consumed) == everything,
            len(consumed) - len(set(consumed)),
            commits,
            committed,
        )

    first, sizes, complete, doubled, commits, committed = run_both(world, scenario)
    assert first == 90 and sizes == [1, 2] and complete and doubled == 0
    expected = [(world.main, p, 100 + p) for p in range(MAIN_PARTITIONS)]
    assert commits == expected and committed == [("returned", expected)] * 2
