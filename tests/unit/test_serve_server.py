"""``pyrostore serve`` in-process over a folder archive: every advertised API version, fetch rules, waiting,
refused produce, and connections that break the protocol (closed alone, nobody else notices)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.record.default_records import DefaultRecordBatch
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kio.schema.errors import ErrorCode

from pyrostore.index.writer import PartitionWriter
from pyrostore.serve import Address, ServeConfig
from pyrostore.serve.apis import APIS
from pyrostore.serve.messages import make
from pyrostore.serve.versions import advertised
from pyrostore.store import open_store
from tests.helpers import make_segment, record
from tests.serve_helpers import (
    ServerThread,
    call,
    closed_by_peer,
    fetch_values,
    read_response,
    request_frame,
    request_type,
)

TABLE = advertised((api.key, api.versions) for api in APIS)


def versions(key: int) -> list[int]:
    low, high = TABLE[key]
    return list(range(low, high + 1))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Topic ``t``: partition 0 starts at 5 with gaps after segments and a lost range, partition 1 is plain;
    topic ``empty`` has a claimed partition and no records yet."""
    root = tmp_path_factory.mktemp("serve") / "store"
    store = open_store(str(root))
    zero = PartitionWriter(store, "t", 0)
    zero.claim(5)
    zero.append([make_segment("t", 0, 5, 10, gap_after=3)])  # 5..14, then 15..17 are a gap
    zero.append([make_segment("t", 0, 18, 10)])  # 18..27
    zero.record_lost(40)  # 28..39 lost
    zero.append([make_segment("t", 0, 40, 10)])  # 40..49
    zero.close()
    one = PartitionWriter(store, "t", 1)
    one.claim(0)
    one.append([make_segment("t", 1, 0, 10)])
    one.close()
    empty = PartitionWriter(store, "empty", 0)
    empty.claim(0)
    empty.close()
    store.close()
    return root


@pytest.fixture(scope="module")
def server(archive: Path):
    config = ServeConfig(store_url=str(archive), listen=Address("127.0.0.1", 0), batch_bytes=100, refresh_interval=0.1)
    with ServerThread(config) as running:
        yield running


def topic_id(server: ServerThread, name: str):
    with server.connect() as sock:
        body = call(
            sock, 3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
    return next(t.topic_id for t in body.topics if t.name == name)


def parse(records: bytes) -> list[DefaultRecordBatch]:
    batches, position = [], 0
    while position < len(records):
        length = int.from_bytes(records[position + 8 : position + 12], "big") + 12
        batches.append(DefaultRecordBatch(records[position : position + length]))
        position += length
    return batches


def fetch(server: ServerThread, version: int, partition: int, offset: int, topic: str = "t", **overrides):
    ident = topic_id(server, topic) if version >= 13 else None
    with server.connect() as sock:
        body = call(sock, 1, version, **fetch_values(version, topic, ident, partition, offset, **overrides))
    (answer,) = body.responses
    (part,) = answer.partitions
    return part


# --- every advertised version answers ----------------------------------------------------------------------


@pytest.mark.parametrize("version", versions(18))
def test_api_versions(server, version):
    with server.connect() as sock:
        body = call(sock, 18, version, client_software_name="test", client_software_version="1")
    assert body.error_code == ErrorCode.none
    assert {k.api_key: (k.min_version, k.max_version) for k in body.api_keys} == TABLE


def test_api_versions_of_an_unknown_version_answers_in_v0(server):
    frame = struct.pack(">hhi", 18, 99, 5) + b"\x00\x01t\x00"  # header v2 of a future version
    with server.connect() as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        correlation, body = read_response(sock, 18, 0)
    assert correlation == 5
    assert body.error_code == ErrorCode.unsupported_version
    assert {k.api_key: (k.min_version, k.max_version) for k in body.api_keys} == TABLE


@pytest.mark.parametrize("version", versions(3))
def test_metadata(server, version):
    topics = None if version else ()  # every topic (v0: an empty list)
    with server.connect() as sock:
        body = call(
            sock,
            3,
            version,
            topics=topics,
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
            include_cluster_authorized_operations=False,
        )
    (broker,) = body.brokers
    assert (broker.node_id, broker.host, broker.port) == (0, "127.0.0.1", server.address.port)
    found = {t.name: t for t in body.topics}
    assert set(found) == {"t", "empty"}
    assert [(p.partition_index, p.leader_id, p.error_code) for p in found["t"].partitions] == [
        (0, 0, ErrorCode.none),
        (1, 0, ErrorCode.none),
    ]


@pytest.mark.parametrize("version", [1, 4, 9, 10, 12, 13])
def test_metadata_of_named_and_unknown_topics(server, version):
    wanted = request_type(3, version, "topics")
    with server.connect() as sock:
        body = call(
            sock,
            3,
            version,
            topics=(make_topic(wanted, "missing"), make_topic(wanted, "t")),
            allow_auto_topic_creation=True,
            include_topic_authorized_operations=False,
            include_cluster_authorized_operations=False,
        )
    assert [(t.name, t.error_code) for t in body.topics] == [
        ("missing", ErrorCode.unknown_topic_or_partition),
        ("t", ErrorCode.none),
    ]


def make_topic(cls, name):
    return make(cls, name=name, topic_id=None)


@pytest.mark.parametrize("version", versions(2))
def test_list_offsets(server, version):
    part_type = request_type(2, version, "topics", "partitions")
    stamps = [-2, -1, record(20)[1] - 5, record(49)[1] + 1]
    partitions = tuple(make(part_type, partition_index=0, timestamp=s, current_leader_epoch=-1) for s in stamps)
    # One request may not name a partition twice in Kafka, but nothing here depends on it.
    topic = make(request_type(2, version, "topics"), name="t", partitions=partitions)
    with server.connect() as sock:
        body = call(sock, 2, version, replica_id=-1, isolation_level=1, topics=(topic,), timeout=timedelta(seconds=5))
    answers = [(p.error_code, p.offset) for p in body.topics[0].partitions]
    assert answers == [(ErrorCode.none, 5), (ErrorCode.none, 50), (ErrorCode.none, 20), (ErrorCode.none, -1)]
    if version >= 1:
        assert body.topics[0].partitions[2].timestamp == record(20)[1]


@pytest.mark.parametrize("version", versions(1))
def test_fetch_in_every_version(server, version):
    part = fetch(server, version, 0, 7)
    assert part.error_code == ErrorCode.none
    assert (part.high_watermark, part.last_stable_offset) == (50, 50)
    if version >= 5:
        assert part.log_start_offset == 5
    batches = parse(part.records)
    assert batches[0].base_offset <= 7 < batches[0].next_offset  # the whole batch holding the offset
    offsets = [r.offset for b in batches for r in b]
    assert offsets == [o for o in range(batches[0].base_offset, 28) if o < 15 or o >= 18]  # up to the lost range


@pytest.mark.parametrize("version", versions(0))
def test_produce_is_refused_in_every_version(server, version):
    data_type = request_type(0, version, "topic_data", "partition_data")
    ident = topic_id(server, "t") if version >= 13 else None
    topic = make(
        request_type(0, version, "topic_data"),
        name="t",
        topic_id=ident,
        partition_data=(make(data_type, index=0, records=b""),),
    )
    with server.connect() as sock:
        body = call(sock, 0, version, transactional_id=None, acks=-1, timeout=timedelta(seconds=5), topic_data=(topic,))
    (answer,) = body.responses[0].partition_responses
    assert answer.error_code == ErrorCode.topic_authorization_failed


# --- fetch rules -------------------------------------------------------------------------------------------


def test_fetch_positions(server):
    assert fetch(server, 12, 0, 4).error_code == ErrorCode.offset_out_of_range  # before the start
    assert fetch(server, 12, 0, 51).error_code == ErrorCode.offset_out_of_range  # past the high watermark
    assert fetch(server, 12, 0, 30).error_code == ErrorCode.offset_out_of_range  # lost before archiving
    at_end = fetch(server, 12, 0, 50)
    assert (at_end.error_code, at_end.records) == (ErrorCode.none, b"")  # empty, not null
    gap = parse(fetch(server, 12, 0, 16).records)  # inside the gap that ends the first segment
    assert gap[0].base_offset <= 16 < gap[0].next_offset == 18  # the batch holding it, reaching past the gap
    assert next(r.offset for b in gap for r in b if r.offset >= 16) == 18
    after_lost = fetch(server, 12, 0, 40)
    assert [r.offset for b in parse(after_lost.records) for r in b] == list(range(40, 50))
    empty = fetch(server, 12, 0, 0, topic="empty")
    assert (empty.error_code, empty.high_watermark, empty.records) == (ErrorCode.none, 0, b"")


def test_unknown_topics_and_partitions(server):
    assert fetch(server, 12, 0, 0, topic="nope").error_code == ErrorCode.unknown_topic_or_partition
    assert fetch(server, 12, 2, 0).error_code == ErrorCode.unknown_topic_or_partition
    with server.connect() as sock:
        body = call(sock, 1, 16, **fetch_values(16, "", uuid.uuid4(), 0, 0))
    assert body.responses[0].partitions[0].error_code == ErrorCode.unknown_topic_id


def test_a_batch_above_the_limits_still_comes(server):
    part = fetch(server, 12, 0, 5, partition_max_bytes=1, max_bytes=1)
    assert len(parse(part.records)) == 1  # KIP-74: the first batch, whatever its size


def test_the_last_batch_reaches_past_a_trailing_gap(server):
    part = fetch(server, 12, 0, 5, partition_max_bytes=10**6)
    first_segment = [b for b in parse(part.records) if b.base_offset < 15]
    assert first_segment[-1].next_offset == 18  # the client continues at 18, not 15


def test_fetch_waits_up_to_max_wait_at_the_end(server):
    started = time.monotonic()
    part = fetch(server, 12, 1, 10, max_wait=timedelta(milliseconds=400), min_bytes=1)
    assert part.records == b""
    assert 0.35 < time.monotonic() - started < 5


def test_new_commits_are_served_as_they_land(tmp_path):
    root = tmp_path / "store"
    store = open_store(str(root))
    writer = PartitionWriter(store, "grow", 0)
    writer.claim(0)
    writer.append([make_segment("grow", 0, 0, 5)])
    writer.close()
    config = ServeConfig(store_url=str(root), listen=Address("127.0.0.1", 0), refresh_interval=0.1)
    with ServerThread(config) as running:
        threading.Timer(0.5, lambda: (writer.append([make_segment("grow", 0, 5, 5)]), writer.close())).start()
        started = time.monotonic()
        part = fetch(running, 12, 0, 5, topic="grow", max_wait=timedelta(seconds=10), min_bytes=1)
        assert time.monotonic() - started < 5
        assert part.high_watermark == 10
        assert [r.offset for b in parse(part.records) for r in b] == list(range(5, 10))


def test_confluent_kafka_reads_the_archive(server):
    consumer = Consumer(
        {
            "bootstrap.servers": server.bootstrap,
            "group.id": "g",
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition("t", 0, 16), TopicPartition("t", 1, -2)])  # inside a gap; the beginning
    got: dict[int, list] = {0: [], 1: []}
    events = []
    deadline = time.monotonic() + 30
    while len(events) < 2 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            events.append((message.partition(), message.error().code(), message.offset()))
            continue
        got[message.partition()].append(
            (
                message.offset(),
                message.key(),
                message.value(),
                message.headers(),
                message.timestamp()[1],
                message.leader_epoch(),
            )
        )
    low_high = consumer.get_watermark_offsets(TopicPartition("t", 0), timeout=10)
    consumer.close()
    expected_1 = [(o, k, v, h, ts, e) for o, ts, _, k, v, h, e in map(record, range(10))]
    assert got[1] == expected_1
    assert [row[0] for row in got[0]] == list(range(18, 28))
    # 28..39 were lost: the consumer is told so (auto.offset.reset=error), never silently moved on.
    assert sorted(events)[0][:2] == (0, KafkaError._AUTO_OFFSET_RESET)
    assert (1, KafkaError._PARTITION_EOF, 10) in events
    assert low_high == (5, 50)


def test_produce_fails_with_an_authorization_error(server):
    failures = []
    producer = Producer({"bootstrap.servers": server.bootstrap, "message.send.max.retries": 0})
    producer.produce("t", b"v", partition=0, on_delivery=lambda err, _msg: failures.append(err))
    assert producer.flush(30) == 0
    assert [f.code() for f in failures] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_produce_with_acks_0_closes_the_connection(server):
    data_type = request_type(0, 9, "topic_data", "partition_data")
    topic = make(request_type(0, 9, "topic_data"), name="t", partition_data=(make(data_type, index=0, records=b""),))
    with server.connect() as sock:
        sock.sendall(request_frame(0, 9, acks=0, timeout=timedelta(seconds=5), topic_data=(topic,)))
        assert closed_by_peer(sock)


# --- connections that break the protocol -------------------------------------------------------------------


def framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def bad_connections(server: ServerThread) -> list[socket.socket]:
    """Random bytes, a 2 GiB length prefix, an unknown API key, an unknown Fetch version, a malformed body."""
    sends = [
        os.urandom(64 * 1024),
        struct.pack(">i", 2**31 - 1) + b"\x00" * 16,
        framed(struct.pack(">hhih", 9999, 0, 1, -1)),  # unknown API key
        framed(struct.pack(">hhih", 1, 3, 1, -1)),  # Fetch 3: removed from Kafka 4, not advertised
        framed(struct.pack(">hhih", 1, 12, 1, -1) + b"\xff" * 9),  # a Fetch body that does not decode
    ]
    sockets = []
    for data in sends:
        sock = server.connect()
        with contextlib.suppress(ConnectionError):  # the server may reset it before all is sent
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # random bytes may announce a longer frame: end it
        sockets.append(sock)
    return sockets


def test_broken_connections_close_alone(server):
    with server.connect() as good:
        sockets = bad_connections(server)
        for sock in sockets:
            assert closed_by_peer(sock), "the server kept a connection that broke the protocol"
            sock.close()
        body = call(good, 18, 3, client_software_name="test", client_software_version="1")
        assert body.error_code == ErrorCode.none


def test_a_truncated_frame_then_a_hang_up(server):
    with server.connect() as sock:
        sock.sendall(request_frame(18, 3, client_software_name="a", client_software_version="1")[:9])
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)
    with server.connect() as sock:
        assert call(sock, 18, 0).error_code == ErrorCode.none


def test_responses_come_back_in_request_order(server):
    with server.connect() as sock:
        long_poll = fetch_values(12, "t", None, 1, 10, max_wait=timedelta(milliseconds=500), min_bytes=1)
        sock.sendall(
            request_frame(1, 12, 1, **long_poll)
            + request_frame(18, 3, 2, client_software_name="a", client_software_version="1")
            + request_frame(
                3, 12, 3, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
            )
        )
        assert read_response(sock, 1, 12)[0] == 1
        assert read_response(sock, 18, 3)[0] == 2
        assert read_response(sock, 3, 12)[0] == 3
