"""Consumer groups through ``pyrostore serve`` against the stack's real Kafka and MinIO: a topic is archived by the
real archiver and served by the real command, and plain ``confluent_kafka.Consumer`` members share it with
``subscribe``: rebalances in the middle (a member joins, a member leaves, eager and cooperative), every record
read exactly once, commits that carry over restarts of consumers and of the server, ``close()`` that returns at
once, and the answers Kafka gives to the same commits and questions, side by side."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from e2e.stack.s3 import client as s3_client
from pyrostore.layout import group_offsets_key, groups_prefix
from pyrostore.serve.messages import make
from tests.consumer_helpers import S3Archive, create_topic
from tests.kafka_helpers import produce_numbered
from tests.serve_helpers import ServeProcess, call, free_port, request_type

PARTITIONS = 4
RECORDS = 400  # 100 a partition


@dataclass
class Served:
    """A topic archived from Kafka and served by ``pyrostore serve``."""

    kafka: str
    archive: S3Archive
    server: ServeProcess
    topic: str
    expected: set[tuple[int, int]]  # (partition, offset) of every record


def _serve(s3_server, archive: S3Archive, log: Path, credentials: dict[str, str] | None = None) -> ServeProcess:
    env = credentials or {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    args = ("-o", f"endpoint_url={s3_server.endpoint}", "--group-initial-rebalance-delay", "500ms")
    return ServeProcess(archive.url, free_port(), log, *args, env={**env, "AWS_REGION": s3_server.region}).start()


def _read_only_credentials(s3_server) -> dict[str, str]:
    """Temporary credentials from MinIO's STS that may read the bucket and write nothing."""
    bucket = f"arn:aws:s3:::{s3_server.bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": [bucket, f"{bucket}/*"]}
        ],
    }
    login = {"aws_access_key_id": s3_server.access_key, "aws_secret_access_key": s3_server.secret_key}
    sts = boto3.client("sts", endpoint_url=s3_server.endpoint, region_name=s3_server.region, **login)
    role = "arn:minio:iam:::role/read-only"  # MinIO ignores it: the session policy is what limits
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="serve", Policy=json.dumps(policy))["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


@pytest.fixture(scope="module")
def served(kafka, s3_server, tmp_path_factory) -> Iterator[Served]:
    logs = tmp_path_factory.mktemp("serve-groups")
    archive = S3Archive(s3_server)
    topic = create_topic(kafka.bootstrap, PARTITIONS)
    produce_numbered(kafka.bootstrap, topic, RECORDS, PARTITIONS)
    rows = archive.archive(kafka.bootstrap, topic, PARTITIONS, logs / "archiver.log")
    expected = {(p, row[0]) for p, held in rows.items() for row in held}
    assert len(expected) == RECORDS
    server = _serve(s3_server, archive, logs / "serve.log")
    try:
        yield Served(kafka.bootstrap, archive, server, topic, expected)
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def _member(bootstrap: str, group: str, name: str, **conf: object) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "heartbeat.interval.ms": 500,
            "auto.commit.interval.ms": 500,
            **conf,
        }
    )


def _poll_until(consumers: dict[str, Consumer], seen: list, done: Callable[[], bool], what: str) -> None:
    """Poll every consumer in turn, one record at a time, until ``done``: ``seen`` gets (member, partition,
    offset)."""
    deadline = time.monotonic() + 90
    while not done():
        assert time.monotonic() < deadline, f"{what}: only {len(seen)} records after 90 s"
        for name, consumer in consumers.items():
            message = consumer.poll(0.05)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert not error.fatal(), error
                continue
            seen.append((name, message.partition(), message.offset()))


def _assigned(consumer: Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_members_share_the_topic_through_rebalances_and_read_every_record_once(served, strategy):
    group = f"share-{uuid.uuid4().hex[:8]}"
    conf = {"partition.assignment.strategy": strategy}
    a = _member(served.server.bootstrap, group, "a", **conf)
    b = _member(served.server.bootstrap, group, "b", **conf)
    seen: list[tuple[str, int, int]] = []
    a.subscribe([served.topic])
    _poll_until({"a": a}, seen, lambda: len(seen) >= 100, "a alone")
    assert _assigned(a) == set(range(PARTITIONS))
    b.subscribe([served.topic])  # a rebalance in the middle: b joins
    _poll_until(
        {"a": a, "b": b},
        seen,
        lambda: len(seen) >= 250 and any(who == "b" for who, _, _ in seen),
        "a and b",
    )
    assert _assigned(a) | _assigned(b) == set(range(PARTITIONS))
    assert _assigned(a).isdisjoint(_assigned(b)) and _assigned(a) and _assigned(b)
    started = time.monotonic()
    b.close()  # another: b leaves, committing what it read
    assert time.monotonic() - started < 10
    _poll_until({"a": a}, seen, lambda: len(seen) >= RECORDS, "a after b left")
    _poll_until({"a": a}, seen, lambda: _assigned(a) == set(range(PARTITIONS)), "a taking everything back")
    a.close()
    counts = Counter((p, o) for _, p, o in seen)
    assert set(counts) == served.expected
    assert max(counts.values()) == 1, [key for key, n in counts.items() if n > 1][:10]


def test_commit_committed_and_a_restarted_consumer_resumes(served):
    group = f"resume-{uuid.uuid4().hex[:8]}"
    first = _member(served.server.bootstrap, group, "first", **{"enable.auto.commit": False})
    seen: list[tuple[str, int, int]] = []
    first.subscribe([served.topic])
    _poll_until({"first": first}, seen, lambda: len(seen) >= 50, "first")
    first.commit(asynchronous=False)
    last: dict[int, int] = {}
    for _, partition, offset in seen:
        last[partition] = max(offset, last.get(partition, -1))
    wanted = [TopicPartition(served.topic, p) for p in range(PARTITIONS)]
    committed = {tp.partition: tp.offset for tp in first.committed(wanted, timeout=30)}
    assert committed == {p: last[p] + 1 if p in last else -1001 for p in range(PARTITIONS)}
    first.close()

    again = _member(served.server.bootstrap, group, "again", **{"enable.auto.commit": False})
    resumed: list[tuple[str, int, int]] = []
    again.subscribe([served.topic])
    _poll_until({"again": again}, resumed, lambda: {p for _, p, _ in resumed} == set(range(PARTITIONS)), "again")
    again.close()
    firsts: dict[int, int] = {}
    for _, partition, offset in resumed:
        firsts.setdefault(partition, offset)
    assert firsts == {p: committed[p] if committed[p] >= 0 else 0 for p in range(PARTITIONS)}


def test_offsets_are_durable_in_the_store_and_outside_the_archived_data(served, s3_server, tmp_path):
    group = f"durable/{uuid.uuid4().hex[:8]}"  # any string is a group id
    bucket, prefix = served.archive.url.removeprefix("s3://").split("/", 1)

    def keys() -> set[str]:
        pages = s3_client(s3_server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
        return {item["Key"].removeprefix(f"{prefix}/") for page in pages for item in page.get("Contents", [])}

    before = keys()
    consumer = _member(served.server.bootstrap, group, "simple")
    offsets = [TopicPartition(served.topic, 0, 7), TopicPartition(served.topic, 2, 11, metadata="m")]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    added = keys() - before
    assert added == {group_offsets_key(group)}
    assert all(key.startswith(groups_prefix()) for key in added)

    restarted = _serve(s3_server, served.archive, tmp_path / "restarted.log")  # a new server, same archive
    try:
        reader = _member(restarted.bootstrap, group, "reader")
        found = reader.committed([TopicPartition(served.topic, p) for p in range(3)], timeout=30)
        reader.close()
    finally:
        assert restarted.stop() == 0
    assert [(tp.partition, tp.offset, tp.metadata) for tp in found] == [(0, 7, None), (1, -1001, None), (2, 11, "m")]


def test_close_with_auto_commit_returns_at_once(served):
    for subscribe in (True, False):
        consumer = _member(served.server.bootstrap, f"close-{uuid.uuid4().hex[:8]}", "closing")
        if subscribe:
            consumer.subscribe([served.topic])
        else:
            consumer.assign([TopicPartition(served.topic, p, 0) for p in range(PARTITIONS)])
        seen: list[tuple[str, int, int]] = []
        _poll_until({"c": consumer}, seen, lambda seen=seen: len(seen) >= 20, "closing consumer")
        started = time.monotonic()
        consumer.close()
        assert time.monotonic() - started < 10, f"close() took {time.monotonic() - started:.1f} s"


def _simple_commits(bootstrap: str, group: str, topic: str) -> dict[str, object]:
    """What an assign-only consumer is told: committing known and unknown partitions, then committed()."""
    consumer = _member(bootstrap, group, "side-by-side", **{"enable.auto.commit": False})
    outcome: dict[str, object] = {}
    try:
        outcome["unknown group"] = [
            (tp.partition, tp.offset, tp.error) for tp in consumer.committed([TopicPartition(topic, 1)], timeout=30)
        ]
        done = consumer.commit(offsets=[TopicPartition(topic, 1, 42, metadata="kept")], asynchronous=False)
        outcome["commit"] = [(tp.partition, tp.offset, tp.error) for tp in done]
        for name, target in (
            ("partition 99", TopicPartition(topic, 99, 1)),
            ("no topic", TopicPartition("nope", 0, 1)),
        ):
            try:
                consumer.commit(offsets=[target], asynchronous=False)
                outcome[f"commit to {name}"] = "accepted"
            except KafkaException as exc:
                outcome[f"commit to {name}"] = exc.args[0].code()
        found = consumer.committed([TopicPartition(topic, p) for p in (1, 2, 99)], timeout=30)
        outcome["committed"] = [(tp.partition, tp.offset, tp.metadata, tp.error) for tp in found]
    finally:
        consumer.close()
    return outcome


def test_commits_and_committed_answer_as_kafka_does(served):
    group = f"side-{uuid.uuid4().hex[:8]}"
    through_server = _simple_commits(served.server.bootstrap, group, served.topic)
    from_kafka = _simple_commits(served.kafka, group, served.topic)
    assert through_server == from_kafka
    assert through_server["commit to partition 99"] == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert through_server["committed"][:2] == [(1, 42, "kept", None), (2, -1001, None, None)]


def _group_view(bootstrap: str, group: str) -> tuple:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=30).result(60)
    described = admin.describe_consumer_groups([group], request_timeout=30)[group].result(60)
    members = sorted(
        (m.client_id, sorted(tp.partition for tp in m.assignment.topic_partitions)) for m in described.members
    )
    return (
        group in {g.group_id for g in listed.valid},
        str(described.state),
        described.partition_assignor,
        members,
    )


def test_admin_tools_see_the_group_as_on_kafka(served):
    group = f"admin-{uuid.uuid4().hex[:8]}"
    views = []
    for bootstrap in (served.server.bootstrap, served.kafka):
        members = {name: _member(bootstrap, group, name) for name in ("x", "y")}
        for consumer in members.values():
            consumer.subscribe([served.topic])
        seen: list[tuple[str, int, int]] = []
        _poll_until(
            members,
            seen,
            lambda members=members: all(len(_assigned(c)) == PARTITIONS // 2 for c in members.values()),
            "two members",
        )
        views.append(_group_view(bootstrap, group))
        for consumer in members.values():
            consumer.close()
    assert views[0] == views[1]
    assert views[0][:2] == (True, "ConsumerGroupState.STABLE")


def test_read_only_credentials_refuse_commits_with_an_error_clients_report(served, s3_server, tmp_path):
    server = _serve(s3_server, served.archive, tmp_path / "read-only.log", _read_only_credentials(s3_server))
    try:
        consumer = _member(server.bootstrap, f"ro-{uuid.uuid4().hex[:8]}", "ro", **{"enable.auto.commit": False})
        consumer.subscribe([served.topic])
        seen: list[tuple[str, int, int]] = []
        _poll_until({"ro": consumer}, seen, lambda: len(seen) >= 10, "a reader with read-only credentials")
        errors = []
        for _ in range(2):
            try:
                done = consumer.commit(asynchronous=False)
                errors.append({tp.error.code() if tp.error else None for tp in done})
            except KafkaException as exc:
                errors.append({exc.args[0].code()})
        found = consumer.committed([TopicPartition(served.topic, 0)], timeout=30)
        started = time.monotonic()
        consumer.close()
        assert time.monotonic() - started < 10
    finally:
        assert server.stop() == 0
    assert errors == [{KafkaError.GROUP_AUTHORIZATION_FAILED}] * 2
    assert [tp.offset for tp in found] == [-1001]
    assert server.log_text().count("the store refused committing offsets") == 1


def _errors(bootstrap: str, topic: str) -> dict[str, object]:
    """Raw answers to group requests Kafka checks before any group exists (kio's types over a socket)."""
    host, port = bootstrap.rsplit(":", 1)
    group = f"raw-{uuid.uuid4().hex[:8]}"
    protocol = make(request_type(11, 9, "protocols"), name="range", metadata=b"")

    def join(version: int, **changes: object) -> object:
        values: dict[str, object] = dict(
            group_id=group, session_timeout=timedelta(seconds=30), rebalance_timeout=timedelta(seconds=30),
            member_id="", group_instance_id=None, protocol_type="consumer", protocols=(protocol,), reason=None,
        )  # fmt: skip
        values.update(changes)
        return call(sock, 11, version, **values).error_code

    def commit(version: int) -> object:
        partition = make(
            request_type(8, version, "topics", "partitions"), partition_index=0, committed_offset=1,
            committed_leader_epoch=-1, committed_metadata="",
        )  # fmt: skip
        body = call(
            sock, 8, version, group_id=group, generation_id_or_member_epoch=3, member_id="m", group_instance_id=None,
            topics=(make(request_type(8, version, "topics"), name=topic, partitions=(partition,)),),
        )  # fmt: skip
        return body.topics[0].partitions[0].error_code

    with socket.create_connection((host, int(port)), timeout=30) as sock:
        leave = make(request_type(13, 5, "members"), member_id="m", group_instance_id=None, reason=None)
        left = call(sock, 13, 5, group_id=group, members=(leave,))
        wanted = make(request_type(9, 7, "topics"), name=topic, partition_indexes=(0,))
        fetched = call(sock, 9, 7, group_id=group, topics=(wanted,), require_stable=True)
        return {
            "join without a group id": join(9, group_id=""),
            "join with a 1 s session": join(9, session_timeout=timedelta(seconds=1)),
            "join of an unknown member": join(9, member_id="stranger"),
            "first join, v4": join(4),
            "heartbeat": call(sock, 12, 4, group_id=group, generation_id=1, member_id="m").error_code,
            "sync": call(sock, 14, 5, group_id=group, generation_id=1, member_id="m", assignments=()).error_code,
            "leave": (left.error_code, [m.error_code for m in left.members]),
            "leave v2": call(sock, 13, 2, group_id=group, member_id="m").error_code,
            "commit v9": commit(9),
            "commit v8": commit(8),
            "fetch": [(p.committed_offset, p.error_code) for p in fetched.topics[0].partitions] + [fetched.error_code],
            **{
                f"describe v{v}": [
                    (g.error_code, g.group_state)
                    for g in call(sock, 15, v, groups=("nobody",), include_authorized_operations=False).groups
                ]
                for v in (5, 6)
            },
        }


def test_group_errors_answer_as_kafka_does(served):
    assert _errors(served.server.bootstrap, served.topic) == _errors(served.kafka, served.topic)


def _static_restart(bootstrap: str, topic: str) -> dict[str, object]:
    """Two static members (group.instance.id); one restarts: what each is assigned, and what s1 goes through."""
    group = f"static-{uuid.uuid4().hex[:8]}"
    events: list[tuple[str, list[int]]] = []

    def static(name: str) -> Consumer:
        return _member(bootstrap, group, name, **{"group.instance.id": name, "session.timeout.ms": 10000})

    s1, s2 = static("s1"), static("s2")
    s1.subscribe(
        [topic],
        on_assign=lambda _, parts: events.append(("assign", sorted(p.partition for p in parts))),
        on_revoke=lambda _, parts: events.append(("revoke", sorted(p.partition for p in parts))),
    )
    s2.subscribe([topic])
    seen: list[tuple[str, int, int]] = []
    both = {"s1": s1, "s2": s2}
    _poll_until(both, seen, lambda: all(len(_assigned(c)) == PARTITIONS // 2 for c in both.values()), "two statics")
    before = (_assigned(s1), _assigned(s2))
    settled = len(events)
    s2.close()  # a static member leaves no LeaveGroup behind: its partitions wait for it
    again = static("s2")
    again.subscribe([topic])
    _poll_until({"s1": s1, "s2": again}, seen, lambda: bool(_assigned(again)), "s2 restarted")
    moment = time.monotonic() + 3  # long enough for a rebalance to show
    _poll_until({"s1": s1, "s2": again}, seen, lambda: time.monotonic() > moment, "a moment")
    after, s1_went_through = (_assigned(s1), _assigned(again)), events[settled:]
    for consumer in (s1, again):
        consumer.close()
    return {"same partitions after the restart": before == after, "s1 after the restart": s1_went_through}


def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance(served):
    through_server = _static_restart(served.server.bootstrap, served.topic)
    assert through_server == {"same partitions after the restart": True, "s1 after the restart": []}
    assert through_server == _static_restart(served.kafka, served.topic)
