"""``pyrostore serve`` read by real clients, each run as a user runs it: Debian's kcat (its own, older
librdkafka), Kafka's Java console consumer and ``confluent_kafka.Consumer``. Topics holding every edge case are
archived, then get a live tail; each client reads them from Kafka; Kafka deletes the archived head; the same client
then reads them through the server (``--bootstrap-servers``: the archive, then Kafka) and must print the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from e2e.stack import clients
from tests.consumer_helpers import S3Archive, create_topic, delete_head
from tests.kafka_helpers import COMPACTED, EDGE_HEADERS, fill_compacted, kafka_rows, wait_for
from tests.served_topics import BIG, BIG_TOPIC, archive_all, fill_appended, fill_edge, serve_archive

Lines = dict[str, list[str]]  # topic -> what a client printed, one line per record, by partition and offset


@dataclass(frozen=True)
class Reading:
    """A client and the isolation level it reads with (``default``: what the client does unless told)."""

    client: str  # "kcat", "console" or "confluent"
    isolation: str  # "default", "read_committed" or "read_uncommitted"

    @property
    def committed(self) -> bool:
        """Whether it reads committed records only (librdkafka defaults to it, Java does not)."""
        return self.isolation == "read_committed" or (self.isolation == "default" and self.client != "console")

    def read(self, bootstrap: str, topic: str, partitions: int) -> list[str]:
        """What the client prints reading every partition of ``topic`` at ``bootstrap`` from the beginning."""
        level = None if self.isolation == "default" else self.isolation
        if self.client == "kcat":
            return clients.kcat_consume(bootstrap, topic, {"isolation.level": level} if level else None)
        if self.client == "confluent":
            return _confluent_lines(bootstrap, topic, partitions, level)
        return clients.console_consume(bootstrap, topic, isolation_level=level)

    def read_all(self, bootstrap: str, partitions: dict[str, int]) -> Lines:
        """:meth:`read` of every topic, side by side."""
        with ThreadPoolExecutor(len(partitions)) as pool:
            reads = {topic: pool.submit(self.read, bootstrap, topic, count) for topic, count in partitions.items()}
        return {topic: read.result() for topic, read in reads.items()}


READINGS = [
    Reading("kcat", "default"),
    Reading("kcat", "read_uncommitted"),
    Reading("console", "default"),
    Reading("console", "read_committed"),
    Reading("confluent", "default"),
]


def _confluent_lines(bootstrap: str, topic: str, partitions: int, isolation: str | None) -> list[str]:
    """Every record of ``topic`` as a plain ``confluent_kafka.Consumer`` assigned at the beginning gets it, one line
    each: partition, offset, timestamp type and timestamp, key, value, headers, sorted."""
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": "lines",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    }
    consumer = Consumer({**settings, **({"isolation.level": isolation} if isolation else {})})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # -2: OFFSET_BEGINNING
    lines, ended = [], set()
    try:
        while len(ended) < partitions:
            message = consumer.poll(30)
            assert message is not None, f"no end of {topic} from {bootstrap} within 30 s"
            if message.error():
                ended.add(message.partition())
                continue
            kind, stamp = message.timestamp()
            shown = (clients.show(message.key()), clients.show(message.value()), repr(message.headers()))
            lines.append((message.partition(), message.offset(), f"{kind}:{stamp}", *shown))
    finally:
        consumer.close()
    return ["\t".join(map(str, line)) for line in sorted(lines)]


@dataclass
class Setup:
    """The topics, what each reading printed from the reference (Kafka holding every record), and the server."""

    edge: str  # partition 0: null/empty keys and values, tombstones, headers, a 1 MiB value; 1: transactions
    appended: str  # LogAppendTime
    compacted: str  # offset gaps from compaction
    partitions: dict[str, int]
    expected: dict[Reading, Lines]
    served: str = ""  # host:port of the server under test


def _partition(lines: list[str], partition: int) -> list[str]:
    return [line for line in lines if line.startswith(f"{partition}\t")]


def expected_outputs(bootstrap: str, setup: Setup) -> dict[Reading, Lines]:
    """Each reading of every topic from Kafka. The archive keeps what a read_committed consumer reads (aborted
    records are not archived, docs/decisions.md), so on the transactional partition a read_uncommitted reading is
    expected to print what the same client prints reading committed records only."""
    printed = {reading: reading.read_all(bootstrap, setup.partitions) for reading in READINGS}
    expected = {}
    for reading, lines in printed.items():
        committed = next(r for r in READINGS if r.client == reading.client and r.committed)
        kept = _partition(printed[committed][setup.edge], 1)
        if not reading.committed:  # the difference is real: this reading shows the aborted records
            assert len(_partition(lines[setup.edge], 1)) > len(kept), reading
        expected[reading] = {**lines, setup.edge: _partition(lines[setup.edge], 0) + kept}
    return expected


def _settled(bootstrap: str, topic: str) -> None:
    """Wait until Kafka's log cleaner is done with ``topic``: the same records twice, two cleaner backoffs apart."""
    seen = [kafka_rows(bootstrap, topic, 1)]

    def unchanged() -> bool:
        seen.append(kafka_rows(bootstrap, topic, 1))
        return seen[-1] == seen[-2]

    wait_for(unchanged, timeout=60, what=f"Kafka's log cleaner to leave {topic} alone", interval=1.5)


def _produce_tail(bootstrap: str, setup: Setup) -> None:
    """A few records after the archived ones, Kafka's only, in every partition but the compacted topic's (its
    log cleaner would then run again and change what Kafka holds of the archived part)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for topic in (setup.edge, setup.appended):
        partitions = setup.partitions[topic]
        for i in range(12):
            producer.produce(topic, b"tail %d" % i, b"tail-%d" % i, partition=i % partitions, headers=EDGE_HEADERS)
    assert producer.flush(30) == 0


@pytest.fixture(scope="module")
def archived(kafka, s3_server, tmp_path_factory) -> tuple[Setup, S3Archive, Path]:
    """The topics filled in Kafka and archived into MinIO, then a live tail produced; every reading of it all from
    Kafka; then the archived head deleted from Kafka (but for the compacted topic: Kafka refuses to delete records
    of a topic that is compacted only)."""
    # Both clients must be there before anything is produced: a missing one fails here, naming its build log.
    clients.kcat_folder()
    clients.kafka_tools()
    logs = tmp_path_factory.mktemp("serve-clients")
    bootstrap = kafka.bootstrap
    edge = create_topic(bootstrap, 2, BIG_TOPIC)
    appended = create_topic(bootstrap, 1, {"message.timestamp.type": "LogAppendTime"})
    compacted = create_topic(bootstrap, 1, COMPACTED)
    fill_edge(bootstrap, edge)
    fill_appended(bootstrap, appended)
    fill_compacted(bootstrap, compacted)
    _settled(bootstrap, compacted)
    setup = Setup(edge, appended, compacted, {edge: 2, appended: 1, compacted: 1}, {})
    archive = S3Archive(s3_server)
    rows = archive_all(archive, bootstrap, setup.partitions, logs)
    _produce_tail(bootstrap, setup)
    setup.expected = expected_outputs(bootstrap, setup)
    for topic in (edge, appended):
        delete_head(bootstrap, topic, {p: kept[-1][0] + 1 for p, kept in rows[topic].items()})
    return setup, archive, logs


@pytest.fixture(scope="module", params=["default", "4KiB"], ids=lambda size: f"batches-{size}")
def setup(archived, kafka, s3_server, request) -> Iterator[Setup]:
    """:func:`archived` served by ``pyrostore serve`` with its default batches, or small ones (fetches then start
    inside batches and cross many of them)."""
    topics, archive, logs = archived
    # The stack's Kafka starts groups at once (group.initial.rebalance.delay.ms=0), and so does this server: the
    # console consumer gives up after 5 s without a record, which a 3 s delay on a loaded machine can exceed.
    extra = ("--bootstrap-servers", kafka.bootstrap, "--group-initial-rebalance-delay", "0s")
    extra += () if request.param == "default" else ("--batch-bytes", request.param)
    server = serve_archive(archive, s3_server, logs / f"serve-{request.param}.log", *extra)
    try:
        yield Setup(**{**topics.__dict__, "served": server.bootstrap})
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


def test_the_edge_cases_are_there(archived):
    setup = archived[0]
    for reading, lines in setup.expected.items():
        if reading.client == "confluent":
            continue  # prints keys and values its own way
        edge = lines[setup.edge]
        assert any("key=NULL" in line for line in edge) and any("key=b''" in line for line in edge), reading
        assert any("value=NULL" in line for line in edge) and any("value=b''" in line for line in edge), reading
        assert any(f"<{len(BIG)} bytes" in line for line in edge), reading
        for topic in (setup.compacted, setup.edge):
            offsets = [int(line.split("\t")[1]) for line in _partition(lines[topic], 1 if topic == setup.edge else 0)]
            assert len(offsets) < offsets[-1] + 1, (reading, topic)  # gaps: compaction, aborted records, markers
        if reading.client == "console":  # kcat prints no timestamp type
            assert all("\tLogAppendTime:" in line for line in lines[setup.appended]), reading


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: f"{r.client}-{r.isolation}")
def test_each_client_prints_the_served_archive_as_it_printed_kafka(setup, reading):
    got = reading.read_all(setup.served, setup.partitions)
    for topic, lines in setup.expected[reading].items():
        assert got[topic] == lines, f"{reading} of {topic} through the server"
