"""Consumer groups of ``pyrostore serve``: the classic group state machine driven by hand (timers advanced by a
test clock, replies collected), the coordinator's checks, committed offsets in a folder store, group keys, and
every version of the group APIs over a socket to an in-process server."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import uuid
from collections.abc import Callable, Hashable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from pyrostore.errors import AccessDenied
from pyrostore.index.writer import PartitionWriter
from pyrostore.layout import group_offsets_key, groups_prefix, parse_group_offsets_key
from pyrostore.serve import Address, ServeConfig
from pyrostore.serve.apis import APIS
from pyrostore.serve.groups import Coordinator, GroupOffsets, GroupSettings
from pyrostore.serve.groups.group import Group
from pyrostore.serve.groups.model import GroupState, JoinRequest, SyncRequest, SyncResult
from pyrostore.serve.groups.offsets import Committed, decode, encode
from pyrostore.serve.versions import advertised
from pyrostore.store import ObjectStore, open_store
from tests.helpers import make_segment
from tests.serve_helpers import ServerThread, call, free_port, request_type

SETTINGS = GroupSettings(initial_rebalance_delay=3.0)
RANGE = (("range", b"range-meta"),)


class ManualTimers:
    """Timers fired by :meth:`advance`, in deadline order, on a clock that starts at 0."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: dict[Hashable, tuple[float, int, Callable[[], None]]] = {}
        self._order = itertools.count()

    def schedule(self, key: Hashable, delay: float, action: Callable[[], None]) -> None:
        self.due[key] = (self.now + delay, next(self._order), action)

    def cancel(self, key: Hashable) -> None:
        self.due.pop(key, None)

    def close(self) -> None:
        self.due.clear()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.due:
            key, (when, _, action) = min(self.due.items(), key=lambda item: item[1][:2])
            if when > end:
                break
            del self.due[key]
            self.now = when
            action()
        self.now = end


class Replies:
    """Collects the answers a group sends to one request."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def __call__(self, result: Any) -> None:
        self.got.append(result)

    @property
    def one(self) -> Any:
        assert len(self.got) == 1, self.got
        return self.got[0]


def join_request(member_id: str = "", client: str = "c", **changes: Any) -> JoinRequest:
    values: dict[str, Any] = dict(
        member_id=member_id,
        instance_id=None,
        client_id=client,
        client_host="/127.0.0.1",
        session_timeout=10.0,
        rebalance_timeout=30.0,
        protocol_type="consumer",
        protocols=RANGE,
    )
    values.update(changes)
    return JoinRequest(**values)


def new_group(settings: GroupSettings = SETTINGS) -> tuple[Group, ManualTimers]:
    timers = ManualTimers()
    ids = (f"m{n}" for n in itertools.count(1))
    return Group("g", settings, timers, lambda client, instance: next(ids)), timers


def join(group: Group, request: JoinRequest) -> Replies:
    replies = Replies()
    group.join(request, replies)
    return replies


def member_id_of(group: Group, client: str = "c", **changes: Any) -> str:
    """Join as a new dynamic member (v4+): the id MEMBER_ID_REQUIRED hands out."""
    answer = join(group, join_request("", client, **changes)).one
    assert answer.error is ErrorCode.member_id_required
    return answer.member_id


def sync(group: Group, member_id: str, generation: int, **changes: Any) -> Replies:
    replies = Replies()
    group.sync(SyncRequest(member_id, changes.pop("instance_id", None), generation, **changes), replies)
    return replies


def stable_group(*clients: str) -> tuple[Group, ManualTimers, dict[str, str]]:
    """A group whose members (one per client) joined in the first rebalance and synced: {client: member id}."""
    group, timers = new_group()
    ids = {client: member_id_of(group, client) for client in clients}
    waiting = {client: join(group, join_request(ids[client], client)) for client in clients}
    while not waiting[clients[0]].got:  # each member arriving extends the first rebalance's delay
        timers.advance(0.5)
    generation = waiting[clients[0]].one.generation
    leader = group.leader
    assignments = {member: f"assignment of {member}".encode() for member in ids.values()}
    syncs = [
        sync(group, member, generation, assignments=assignments if member == leader else {}) for member in ids.values()
    ]
    assert all(s.one.error is ErrorCode.none for s in syncs)
    assert group.state is GroupState.STABLE
    return group, timers, ids


def assigning_pair() -> tuple[Group, ManualTimers, str, str]:
    """A group of members a (the leader) and b, answered JoinGroup in generation 1, not synced yet."""
    group, timers = new_group()
    a, b = member_id_of(group, "a"), member_id_of(group, "b")
    join(group, join_request(a, "a"))
    join(group, join_request(b, "b"))
    timers.advance(6)
    assert group.state is GroupState.COMPLETING_REBALANCE and group.leader == a
    return group, timers, a, b


# The state machine.


def test_a_first_member_gets_its_id_then_waits_out_the_initial_delay():
    group, timers = new_group()
    member = member_id_of(group)
    assert group.pending == {member} and group.state is GroupState.EMPTY
    waiting = join(group, join_request(member))
    assert group.state is GroupState.PREPARING_REBALANCE
    timers.advance(2.9)
    assert waiting.got == []
    timers.advance(0.1)
    answer = waiting.one
    assert (answer.error, answer.generation, answer.leader, answer.member_id) == (ErrorCode.none, 1, member, member)
    assert (answer.protocol_type, answer.protocol_name) == ("consumer", "range")
    assert [(m.member_id, m.metadata) for m in answer.members] == [(member, b"range-meta")]
    assert group.state is GroupState.COMPLETING_REBALANCE
    synced = sync(group, member, 1, protocol_type="consumer", protocol_name="range", assignments={member: b"all"})
    assert synced.one == SyncResult(ErrorCode.none, "consumer", "range", b"all")
    assert group.state is GroupState.STABLE


def test_the_initial_delay_is_extended_while_members_keep_arriving():
    group, timers = new_group()
    first = member_id_of(group, "a")
    waiting_a = join(group, join_request(first, "a"))
    timers.advance(2.0)
    second = member_id_of(group, "b")
    waiting_b = join(group, join_request(second, "b", protocols=(("range", b"b-meta"),)))
    timers.advance(1.0)  # the first delay ends: a member arrived meanwhile, so wait once more
    assert waiting_a.got == [] and waiting_b.got == []
    timers.advance(3.0)
    leader, follower = waiting_a.one, waiting_b.one
    assert leader.generation == follower.generation == 1
    assert leader.leader == follower.leader == first
    assert {(m.member_id, m.metadata) for m in leader.members} == {(first, b"range-meta"), (second, b"b-meta")}
    assert follower.members == ()


def test_the_protocol_is_voted_among_those_every_member_supports():
    group, timers = new_group()
    preferences = {
        "a": (("range", b""), ("roundrobin", b"")),
        "b": (("roundrobin", b""), ("range", b"")),
        "c": (("roundrobin", b""), ("sticky", b""), ("range", b"")),
    }
    answers = [join(group, join_request(member_id_of(group, c), c, protocols=p)) for c, p in preferences.items()]
    timers.advance(10)
    assert {a.one.protocol_name for a in answers} == {"roundrobin"}
    refused = join(group, join_request("", "d", protocols=(("sticky", b""),))).one
    assert refused.error is ErrorCode.inconsistent_group_protocol
    other_type = join(group, join_request("", "e", protocol_type="connect", protocols=(("range", b""),))).one
    assert other_type.error is ErrorCode.inconsistent_group_protocol


def test_a_member_joining_a_stable_group_rebalances_it_and_assignments_pass_unchanged():
    group, _, ids = stable_group("a")
    a = ids["a"]
    b = member_id_of(group, "b")
    waiting_b = join(group, join_request(b, "b"))
    assert group.state is GroupState.PREPARING_REBALANCE
    assert group.heartbeat(a, None, 1) is ErrorCode.rebalance_in_progress
    waiting_a = join(group, join_request(a, "a"))  # everyone is back: no delay after the first rebalance
    assert waiting_a.one.generation == waiting_b.one.generation == 2
    assert group.heartbeat(a, None, 1) is ErrorCode.illegal_generation
    assert group.heartbeat(a, None, 2) is ErrorCode.none  # heartbeats while the leader assigns are fine
    follower = sync(group, b, 2)
    assert follower.got == []  # waits for the leader
    opaque = bytes(range(256))
    leader = sync(group, a, 2, assignments={a: b"", b: opaque})
    assert follower.one == SyncResult(ErrorCode.none, "consumer", "range", opaque)
    assert leader.one.assignment == b""
    assert group.state is GroupState.STABLE
    late = sync(group, b, 2)  # a stable group answers at once
    assert late.one.assignment == opaque


def test_a_member_whose_session_ends_is_removed_and_the_group_rebalances():
    group, timers, ids = stable_group("a", "b")
    for _ in range(2):
        timers.advance(4)
        assert group.heartbeat(ids["a"], None, 1) is ErrorCode.none
    timers.advance(4)  # b's 10 s session is over
    assert ids["b"] not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert group.heartbeat(ids["a"], None, 1) is ErrorCode.rebalance_in_progress
    assert group.heartbeat(ids["b"], None, 1) is ErrorCode.unknown_member_id
    answer = join(group, join_request(ids["a"], "a")).one
    assert (answer.generation, [m.member_id for m in answer.members]) == (2, [ids["a"]])


def test_members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped():
    group, timers, ids = stable_group("a", "b")
    c = member_id_of(group, "c")
    waiting_c = join(group, join_request(c, "c", rebalance_timeout=20.0))
    waiting_a = join(group, join_request(ids["a"], "a"))
    for _ in range(5):  # b keeps heartbeating, but does not rejoin
        timers.advance(5)
        assert group.heartbeat(ids["b"], None, 1) is ErrorCode.rebalance_in_progress
    assert waiting_c.got == []
    timers.advance(5)  # the longest rebalance timeout (30 s) is over
    assert waiting_a.one.generation == waiting_c.one.generation == 2
    assert set(group.members) == {ids["a"], c}


def test_a_member_that_never_sends_sync_group_is_removed_after_the_rebalance_timeout():
    group, timers, a, b = assigning_pair()
    leader = sync(group, a, 1, assignments={a: b"x", b: b"y"})
    assert leader.one.error is ErrorCode.none
    for _ in range(5):  # both heartbeat; b never syncs
        timers.advance(5)
        assert [group.heartbeat(m, None, 1) for m in (a, b)] == [ErrorCode.none] * 2
    timers.advance(5)  # the rebalance timeout (30 s) since the join phase ended
    assert set(group.members) == {a}
    assert group.state is GroupState.PREPARING_REBALANCE


def test_leaving_members_batch_and_the_last_one_out_empties_the_group():
    group, _, ids = stable_group("a", "b")
    error, errors = group.leave([(ids["a"], None), ("stranger", None), ("", "no-such-instance")])
    assert (error, errors) == (
        ErrorCode.none,
        [ErrorCode.none, ErrorCode.unknown_member_id, ErrorCode.unknown_member_id],
    )
    assert group.state is GroupState.PREPARING_REBALANCE
    group.leave([(ids["b"], None)])
    assert group.state is GroupState.EMPTY and group.idle
    assert group.generation == 2


def test_sync_group_errors():
    group, _, ids = stable_group("a", "b")
    a = ids["a"]
    assert sync(group, "stranger", 1).one.error is ErrorCode.unknown_member_id
    assert sync(group, a, 7).one.error is ErrorCode.illegal_generation
    assert sync(group, a, 1, protocol_type="connect").one.error is ErrorCode.inconsistent_group_protocol
    assert sync(group, a, 1, protocol_name="roundrobin").one.error is ErrorCode.inconsistent_group_protocol
    join(group, join_request(a, "a", protocols=(("range", b"changed"),)))
    assert sync(group, ids["b"], 1).one.error is ErrorCode.rebalance_in_progress
    empty, _ = new_group()
    assert sync(empty, a, 0).one.error is ErrorCode.unknown_member_id


def test_a_rebalance_while_members_wait_in_sync_group_sends_them_back_to_join():
    group, _, a, b = assigning_pair()
    waiting = sync(group, b, 1)
    join(group, join_request(a, "a", protocols=(("range", b"new"),)))  # the leader changes its metadata
    assert waiting.one.error is ErrorCode.rebalance_in_progress
    assert group.state is GroupState.PREPARING_REBALANCE


def test_who_may_commit_offsets():
    empty, _ = new_group()
    assert empty.validate_commit("", None, -1) is ErrorCode.none  # a simple (assign-only) consumer
    group, timers, ids = stable_group("a")
    assert group.validate_commit("", None, -1) is ErrorCode.unknown_member_id
    assert group.validate_commit(ids["a"], None, 0) is ErrorCode.illegal_generation
    assert group.validate_commit("stranger", None, 1) is ErrorCode.unknown_member_id
    assert group.validate_commit(ids["a"], None, 1) is ErrorCode.none
    timers.advance(8)
    assert group.validate_commit(ids["a"], None, 1) is ErrorCode.none  # keeps the session like a heartbeat
    timers.advance(8)
    assert ids["a"] in group.members
    b = member_id_of(group, "b")
    join(group, join_request(b, "b"))
    assert group.validate_commit(ids["a"], None, 1) is ErrorCode.none  # still allowed while preparing
    join(group, join_request(ids["a"], "a"))
    assert group.state is GroupState.COMPLETING_REBALANCE
    assert group.validate_commit(ids["a"], None, 2) is ErrorCode.rebalance_in_progress


def test_a_static_member_rejoining_unchanged_keeps_its_assignment_without_a_rebalance():
    group, timers = new_group()
    waiting = {
        instance: join(group, join_request("", instance, instance_id=instance)) for instance in ("s1", "s2")
    }  # static members join at once, without MEMBER_ID_REQUIRED
    timers.advance(6)
    ids = {instance: replies.one.member_id for instance, replies in waiting.items()}
    leader = group.leader
    sync(group, ids["s1"], 1, instance_id="s1", assignments={ids["s1"]: b"one", ids["s2"]: b"two"})
    sync(group, ids["s2"], 1, instance_id="s2")
    # s2 restarts: same instance id, no member id
    again = join(group, join_request("", "s2", instance_id="s2")).one
    assert again.error is ErrorCode.none and again.generation == 1 and again.member_id != ids["s2"]
    assert group.state is GroupState.STABLE
    assert group.heartbeat(ids["s2"], "s2", 1) is ErrorCode.fenced_instance_id
    assert sync(group, again.member_id, 1, instance_id="s2").one.assignment == b"two"
    # the leader restarts: told to skip the assignment (v9), or (older) told the old leader, as a follower is
    skip = join(group, join_request("", "s1", instance_id="s1")).one
    assert (skip.skip_assignment, skip.leader, len(skip.members)) == (True, skip.member_id, 2)
    old = join(group, join_request("", "s1", instance_id="s1", supports_skip_assignment=False)).one
    assert (old.skip_assignment, old.leader, old.members) == (False, skip.member_id, ())
    assert leader == ids["s1"] and group.state is GroupState.STABLE and group.generation == 1


def test_a_static_member_rejoining_with_other_metadata_rebalances():
    group, timers = new_group()
    waiting = join(group, join_request("", "s", instance_id="s", protocols=(("range", b""), ("roundrobin", b""))))
    timers.advance(3)
    first = waiting.one.member_id
    sync(group, first, 1, instance_id="s", assignments={first: b"x"})
    again = join(group, join_request("", "s", instance_id="s", protocols=(("roundrobin", b""),))).one
    assert (again.generation, again.protocol_name, again.leader) == (2, "roundrobin", again.member_id)


def test_a_new_member_that_never_comes_back_after_member_id_required_is_forgotten():
    group, timers = new_group()
    member_id_of(group)
    assert not group.idle
    timers.advance(10)
    assert group.idle


def test_a_dead_group_sends_members_to_find_the_coordinator_again():
    group, timers = new_group()
    member = member_id_of(group)
    waiting = join(group, join_request(member))
    group.dissolve()
    assert waiting.one.error is ErrorCode.coordinator_not_available
    assert join(group, join_request()).one.error is ErrorCode.coordinator_not_available
    assert group.heartbeat(member, None, 0) is ErrorCode.coordinator_not_available
    assert group.leave([(member, None)]) == (ErrorCode.coordinator_not_available, [])
    assert timers.due == {}


def test_transitions_kafka_does_not_have_are_refused():
    group, _ = new_group()
    with pytest.raises(RuntimeError, match="no transition"):
        group._transition(GroupState.STABLE)


# The coordinator.


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_coordinator_checks_what_kafka_checks_before_the_group(tmp_path: Path):
    async def main() -> None:
        coordinator = Coordinator(SETTINGS, GroupOffsets(open_store(str(tmp_path))))
        assert (await coordinator.join("", join_request())).error is ErrorCode.invalid_group_id
        assert (await coordinator.join("g", join_request(session_timeout=1.0))).error is (
            ErrorCode.invalid_session_timeout
        )
        assert (await coordinator.join("g", join_request("someone"))).error is ErrorCode.unknown_member_id
        assert (await coordinator.sync("g", SyncRequest("someone", None, 1))).error is ErrorCode.unknown_member_id
        assert coordinator.heartbeat("g", "someone", None, 1) is ErrorCode.unknown_member_id
        assert coordinator.leave("g", [("x", None), ("y", None)]) == (ErrorCode.none, [ErrorCode.unknown_member_id] * 2)
        offsets = {("t", 0): Committed(5)}
        assert await coordinator.commit("g", ("m", None, 3), offsets, 9) is ErrorCode.group_id_not_found
        assert await coordinator.commit("g", ("m", None, 3), offsets, 8) is ErrorCode.illegal_generation
        assert await coordinator.commit("g", ("", None, -1), offsets, 8) is ErrorCode.none
        assert await coordinator.describe("nobody") is None
        assert (await coordinator.describe("g")).state is GroupState.EMPTY  # offsets only
        assert coordinator.groups == {}

    run(main())


def test_the_coordinator_forgets_empty_groups_and_stops_its_timers(tmp_path: Path):
    async def main() -> None:
        settings = GroupSettings(initial_rebalance_delay=0.05)
        coordinator = Coordinator(settings, GroupOffsets(open_store(str(tmp_path))))
        first = await coordinator.join("g", join_request())
        assert first.error is ErrorCode.member_id_required
        joined = await coordinator.join("g", join_request(first.member_id))
        assert (joined.error, joined.generation) == (ErrorCode.none, 1)
        listed = await coordinator.listing()
        assert [(s.group_id, s.state) for s in listed] == [("g", GroupState.COMPLETING_REBALANCE)]
        assert coordinator.leave("g", [(first.member_id, None)]) == (ErrorCode.none, [ErrorCode.none])
        assert "g" not in coordinator.groups
        pending = await coordinator.join("h", join_request())
        waiting = asyncio.ensure_future(coordinator.join("h", join_request(pending.member_id)))
        await asyncio.sleep(0)
        timers = coordinator.groups["h"].timers
        coordinator.close()
        assert (await waiting).error is ErrorCode.coordinator_not_available
        assert len(timers) == 0

    run(main())


# Committed offsets.


def test_group_keys_hold_any_group_id_inside_one_key_part(tmp_path: Path):
    store = open_store(str(tmp_path / "store"))
    ids = ["", ".", "..", "a/b", "../../escape", "ü ~%", "x" * 300, "y" * 300]
    for group in ids:
        key = group_offsets_key(group)
        assert key.startswith(groups_prefix()) and key.count("/") == groups_prefix().count("/") + 1
        store.put(key, encode(group, {("t", 0): Committed(1)}))
    assert len({group_offsets_key(g) for g in ids}) == len(ids)
    assert parse_group_offsets_key(group_offsets_key("a/b")) == "a/b"
    assert parse_group_offsets_key(group_offsets_key("x" * 300)) is None  # shortened: the object names it
    assert parse_group_offsets_key("pyrostore/v1/topics/t.json") is None
    assert run(GroupOffsets(store).groups()) == set(ids)
    assert all(p.is_relative_to(tmp_path / "store") for p in (tmp_path / "store").rglob("*"))


def test_offsets_round_trip_through_the_store_and_survive_a_restart(tmp_path: Path):
    store = open_store(str(tmp_path))
    first = {("t", 0): Committed(10, 3, "meta", 1_700_000_000_000), ("u", 2): Committed(0)}
    assert decode(encode("g", first)) == ("g", first)

    async def main() -> None:
        offsets = GroupOffsets(store)
        assert await offsets.fetch("g") == {}
        await asyncio.gather(offsets.commit("g", first), offsets.commit("g", {("t", 1): Committed(4)}))
        await offsets.commit("g", {("t", 0): Committed(11)})
        later = GroupOffsets(store)  # a restarted server
        assert await later.fetch("g") == {("t", 0): Committed(11), ("t", 1): Committed(4), ("u", 2): Committed(0)}

    run(main())
    assert json.loads(store.get(group_offsets_key("g")))["topics"]["t"]["1"]["offset"] == 4
    assert [info.key for info in store.list("")] == [group_offsets_key("g")]  # nothing else written


def test_unreadable_offsets_are_logged_and_start_from_none(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = open_store(str(tmp_path))
    store.put(group_offsets_key("g"), b"{not json")
    with caplog.at_level(logging.WARNING, "pyrostore.serve"):
        assert run(GroupOffsets(store).fetch("g")) == {}
    assert "unreadable" in caplog.text


class RefusingWrites:
    """The folder store as read-only credentials see it: reads work, writes are refused."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def put(self, key: str, data: bytes) -> None:
        raise AccessDenied(f"put {key}: access denied")


def test_a_refused_write_is_an_authorization_error_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = open_store(str(tmp_path))
    store.put(group_offsets_key("g"), encode("g", {("t", 0): Committed(7)}))

    async def main() -> list[ErrorCode]:
        coordinator = Coordinator(SETTINGS, GroupOffsets(RefusingWrites(store)))
        errors = [await coordinator.commit("g", ("", None, -1), {("t", 0): Committed(9)}, 8) for _ in range(3)]
        assert await coordinator.committed("g") == {("t", 0): Committed(7)}  # unchanged
        return errors

    with caplog.at_level(logging.WARNING, "pyrostore.serve"):
        assert run(main()) == [ErrorCode.group_authorization_failed] * 3
    assert caplog.text.count("refused") == 1


def test_an_unreachable_store_makes_clients_retry():
    store = open_store(
        f"s3://bucket/{uuid.uuid4().hex}",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="x",
        secret_access_key="y",
        region="us-east-1",
        retry_deadline="0.5",
    )

    async def main() -> ErrorCode:
        coordinator = Coordinator(SETTINGS, GroupOffsets(store))
        return await coordinator.commit("g", ("", None, -1), {("t", 0): Committed(1)}, 8)

    assert run(main()) is ErrorCode.coordinator_not_available


# Every version of the group APIs, over a socket.

TABLE = advertised((api.key, api.versions) for api in APIS)


def version(key: int, step: int) -> int:
    """The ``step``-th version of an API from its lowest (its highest once past it)."""
    low, high = TABLE[key]
    return min(low + step, high)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("groups") / "store"
    store = open_store(str(root))
    for partition in range(2):
        writer = PartitionWriter(store, "t", partition)
        writer.claim(0)
        writer.append([make_segment("t", partition, 0, 10)])
        writer.close()
    store.close()
    config = ServeConfig(store_url=str(root), listen=Address("127.0.0.1", 0), group_initial_rebalance_delay=0)
    with ServerThread(config) as running:
        yield running


def topic_id(sock: socket.socket) -> uuid.UUID:
    body = call(sock, 3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    return next(t.topic_id for t in body.topics if t.name == "t")


def test_find_coordinator_every_version(server):
    with server.connect() as sock:
        for v in range(TABLE[10][0], TABLE[10][1] + 1):
            body = call(sock, 10, v, key="g", key_type=0, coordinator_keys=("g", "h"))
            found = body.coordinators if v >= 4 else [body]
            assert [(c.error_code, c.node_id, c.host, c.port) for c in found] == [
                (ErrorCode.none, 0, "127.0.0.1", server.address.port)
            ] * len(found)
            if v >= 4:
                assert [c.key for c in found] == ["g", "h"]
            if v >= 1:
                refused = call(sock, 10, v, key="tx", key_type=1, coordinator_keys=("tx",))
                first = refused.coordinators[0] if v >= 4 else refused
                assert first.error_code is ErrorCode.transactional_id_authorization_failed


def _join(sock: socket.socket, v: int, group: str) -> Any:
    protocol = request_type(11, v, "protocols")
    values: dict[str, Any] = dict(
        group_id=group,
        session_timeout=timedelta(seconds=10),
        rebalance_timeout=timedelta(seconds=10),
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=(make_entity(protocol, name="range", metadata=b"meta"),),
        reason=None,
    )
    body = call(sock, 11, v, **values)
    if v >= 4:
        assert body.error_code is ErrorCode.member_id_required and body.member_id
        values["member_id"] = body.member_id
        body = call(sock, 11, v, **values)
    return body


def make_entity(cls: type, **values: Any) -> Any:
    from pyrostore.serve.messages import make

    return make(cls, **values)


@pytest.mark.parametrize("step", range(10))
def test_a_member_goes_through_every_version_of_the_group_apis(server, step):
    group = f"group-{step}"
    with server.connect() as sock:
        tid = topic_id(sock)
        v = version(11, step)
        joined = _join(sock, v, group)
        member, generation = joined.member_id, joined.generation_id
        assert (joined.error_code, joined.leader, joined.protocol_name) == (ErrorCode.none, member, "range")
        assert [(m.member_id, m.metadata) for m in joined.members] == [(member, b"meta")]

        v = version(14, step)
        entry = make_entity(request_type(14, v, "assignments"), member_id=member, assignment=b"assigned")
        synced = call(
            sock, 14, v, group_id=group, generation_id=generation, member_id=member, group_instance_id=None,
            protocol_type="consumer", protocol_name="range", assignments=(entry,),
        )  # fmt: skip
        assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"assigned")

        v = version(12, step)
        beat = call(sock, 12, v, group_id=group, generation_id=generation, member_id=member, group_instance_id=None)
        assert beat.error_code is ErrorCode.none

        v = version(8, step)
        partition = request_type(8, v, "topics", "partitions")
        parts = tuple(
            make_entity(
                partition, partition_index=index, committed_offset=5 + step, committed_leader_epoch=0,
                committed_metadata="m",
            )
            for index in (1, 9)
        )  # fmt: skip
        commit_topic = make_entity(request_type(8, v, "topics"), name="t", topic_id=tid, partitions=parts)
        committed = call(
            sock, 8, v, group_id=group, generation_id_or_member_epoch=generation, member_id=member,
            group_instance_id=None, retention_time=timedelta(milliseconds=-1), topics=(commit_topic,),
        )  # fmt: skip
        assert [p.error_code for p in committed.topics[0].partitions] == [
            ErrorCode.none,
            ErrorCode.unknown_topic_or_partition,
        ]

        v = version(9, step)
        if v < 8:
            wanted = make_entity(request_type(9, v, "topics"), name="t", partition_indexes=(0, 1))
            fetched = call(sock, 9, v, group_id=group, topics=(wanted,), require_stable=True)
            topics = fetched.topics
        else:
            wanted = make_entity(
                request_type(9, v, "groups", "topics"), name="t", topic_id=tid, partition_indexes=(0, 1)
            )
            asked = make_entity(
                request_type(9, v, "groups"), group_id=group, member_id=None, member_epoch=-1, topics=(wanted,)
            )
            fetched = call(sock, 9, v, groups=(asked,), require_stable=True)
            assert fetched.groups[0].error_code is ErrorCode.none
            topics = fetched.groups[0].topics
        got = [(p.partition_index, p.committed_offset, p.metadata, p.error_code) for p in topics[0].partitions]
        assert got == [(0, -1, "", ErrorCode.none), (1, 5 + step, "m", ErrorCode.none)]

        v = version(15, step)
        described = call(sock, 15, v, groups=(group, "nobody"), include_authorized_operations=False)
        mine, nobody = described.groups
        assert (mine.error_code, mine.group_state, mine.protocol_data) == (ErrorCode.none, "Stable", "range")
        assert [(m.member_id, m.client_host, m.member_assignment) for m in mine.members] == [
            (member, "/127.0.0.1", b"assigned")
        ]
        missing = ErrorCode.group_id_not_found if v >= 6 else ErrorCode.none
        assert (nobody.error_code, nobody.group_state) == (missing, "Dead")

        v = version(16, step)
        listed = call(sock, 16, v, states_filter=(), types_filter=())
        assert group in {g.group_id for g in listed.groups}

        v = version(13, step)
        if v >= 3:
            leaving = make_entity(request_type(13, v, "members"), member_id=member, group_instance_id=None)
            left = call(sock, 13, v, group_id=group, members=(leaving,))
        else:
            left = call(sock, 13, v, group_id=group, member_id=member)
        assert left.error_code is ErrorCode.none
        if v >= 3:
            assert [m.error_code for m in left.members] == [ErrorCode.none]
        beat = call(sock, 12, version(12, step), group_id=group, generation_id=generation, member_id=member)
        assert beat.error_code is ErrorCode.unknown_member_id


def test_list_groups_filters_by_state_and_type(server):
    with server.connect() as sock:
        _join(sock, 9, "filtered")
        empty = call(sock, 16, 5, states_filter=("empty",), types_filter=())
        stable = call(sock, 16, 5, states_filter=("COMPLETINGREBALANCE",), types_filter=("Classic",))
        other = call(sock, 16, 5, states_filter=(), types_filter=("consumer",))
    assert "filtered" not in {g.group_id for g in empty.groups}
    assert [(g.group_id, g.group_type) for g in stable.groups if g.group_id == "filtered"] == [("filtered", "classic")]
    assert other.groups == ()
