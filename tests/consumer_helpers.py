"""Helpers for consumer tests: topics archived into the stack's MinIO, the two consumers built alike, and the
archived ``World`` that the side-by-side suites share (its fixture is in ``tests/integration/conftest.py``)."""

from __future__ import annotations

import pprint
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import pyrostore
from e2e.stack.s3 import S3Server
from tests.kafka_helpers import COMPACTED, ArchiverProcess, archive_until_caught_up, fill_compacted, kafka_rows

KINDS = ("confluent_kafka", "pyrostore")
CLASSES: dict[str, type] = {"confluent_kafka": confluent_kafka.Consumer, "pyrostore": pyrostore.Consumer}
EOF = KafkaError._PARTITION_EOF
# Recent: with timestamps older than the topic's retention.ms, Kafka would delete the history under the test.
BASE_TS = (int(time.time()) - 3600) * 1000
MAIN_PARTITIONS = 3


@dataclass
class S3Archive:
    """An archive under a fresh prefix of the stack's MinIO bucket, as each component is configured for it."""

    server: S3Server
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"s3://{self.server.bucket}/consumer-{uuid.uuid4().hex[:10]}"

    @property
    def store_options(self) -> dict[str, str]:
        """Options for :func:`pyrostore.open_store` / :func:`pyrostore.open_archive`."""
        return {
            "endpoint_url": self.server.endpoint,
            "region": self.server.region,
            "access_key_id": self.server.access_key,
            "secret_access_key": self.server.secret_key,
        }

    @property
    def consumer_conf(self) -> dict[str, str]:
        """The ``pyrostore.*`` settings of a consumer reading this archive."""
        return {
            "pyrostore.store.url": self.url,
            **{f"pyrostore.store.{name}": value for name, value in self.store_options.items()},
        }

    def archiver(self, bootstrap: str, topic: str, log: Path, *extra: str) -> ArchiverProcess:
        """An archiver process writing this archive (credentials in its environment, as in production)."""
        env = {
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
            "AWS_REGION": self.server.region,
        }
        return ArchiverProcess(
            bootstrap, topic, self.url, log, "-o", f"endpoint_url={self.server.endpoint}", *extra, env=env
        )

    def archive(self, bootstrap: str, topic: str, partitions: int, log: Path) -> dict[int, list]:
        """Archive ``topic`` until the archive holds everything Kafka holds; return Kafka's rows."""
        expected = kafka_rows(bootstrap, topic, partitions)
        archive_until_caught_up(self.archiver(bootstrap, topic, log), topic, partitions, expected, **self.store_options)
        return expected


def create_topic(bootstrap: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    """Create a uniquely named topic (for fixtures wider than one test)."""
    name = f"topic-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(60)
    return name


def delete_head(bootstrap: str, topic: str, before: dict[int, int]) -> None:
    """Delete each partition's records below the given offset from Kafka (``delete_records``)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(topic, p, offset) for p, offset in before.items()])
    for future in futures.values():
        future.result(60)


def consumer_factory(kind: str, bootstrap: str, archive: S3Archive, made: list) -> Callable[..., Any]:
    """``make(exact=None, mixin=None, **conf)`` building a consumer of ``kind`` with the same settings for both
    kinds: ``conf`` with ``_`` for ``.`` in its keys, ``exact`` keys as they are (``error_cb``), a setting given as
    None left out. Keeps them in ``made`` so a test can check where the records came from and close them all.
    With a ``mixin`` class the consumer is an application subclass: ``(mixin, Consumer)``."""

    def make(exact: dict[str, Any] | None = None, /, mixin: type | None = None, **conf: Any) -> Any:
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": f"group-{uuid.uuid4().hex[:10]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            **{key.replace("_", "."): value for key, value in conf.items()},
            **(exact or {}),
        }
        settings = {key: value for key, value in settings.items() if value is not None}
        if kind == "pyrostore":
            settings.update(archive.consumer_conf)
        cls = CLASSES[kind] if mixin is None else type(mixin.__name__, (mixin, CLASSES[kind]), {})
        consumer = cls(settings)
        made.append(consumer)
        return consumer

    return make


def view(message: Message) -> tuple:
    """What an application sees of a message or event, for comparing consumers."""
    error = message.error()
    if error is not None:
        return ("event", message.topic(), message.partition(), message.offset(), error.code())
    return (
        message.offset(),
        message.key(),
        message.value(),
        message.headers(),
        message.timestamp(),
        message.leader_epoch(),
        len(message),
    )


def read_to_end(consumer: Any, keys: set[tuple[str, int]], timeout: float = 60) -> dict[tuple[str, int], list]:
    """Poll until every partition in ``keys`` reported end-of-partition; each partition's messages in order,
    its end-of-partition offset last."""
    got: dict[tuple[str, int], list] = {key: [] for key in keys}
    ended: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    while ended != keys:
        assert time.monotonic() < deadline, f"no end of partition for {sorted(keys - ended)} within {timeout}s"
        message = consumer.poll(0.5)
        if message is None:
            continue
        key = (message.topic(), message.partition())
        error = message.error()
        assert error is None or error.code() == EOF, f"unexpected event {error}"
        if key not in got:
            continue
        got[key].append(view(message))
        if error is not None:
            ended.add(key)
    return got


def take(consumer: Any, count: int, timeout: float = 30, stop_at_eof: bool = True) -> list[tuple]:
    """The next ``count`` messages and events (fewer when an end-of-partition event comes first)."""
    found: list[tuple] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        found.append(view(message))
        if stop_at_eof and message.error() is not None:
            break
    return found


def _timestamp(i: int) -> int:
    return BASE_TS + ((i * 37) % 100) * 1000  # not monotonic within a partition


@dataclass
class World:
    """Topics with every kind of position, archived, and what Kafka holds of them."""

    bootstrap: str
    archive: S3Archive
    main: str  # 3 partitions, keys, headers, tombstones, non-monotonic timestamps
    compacted: str  # offset gaps from compaction
    txn: str  # offset gaps from aborted transactions and markers
    rows: dict[str, dict[int, list]]

    def offsets(self, topic: str, partition: int = 0) -> list[int]:
        return [row[0] for row in self.rows[topic][partition]]

    def gap(self, topic: str) -> int:
        """An offset inside a gap: the first one below the last record that the topic does not hold."""
        offsets = self.offsets(topic)
        return min(set(range(offsets[-1])) - set(offsets))


def _fill_main(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(600):
        headers = [("n", b"%d" % i), ("n", None)] if i % 3 == 0 else None
        value = None if i % 50 == 7 else b"value %d" % i
        producer.produce(
            topic, value, b"key %d" % (i % 40), partition=i % MAIN_PARTITIONS, timestamp=_timestamp(i), headers=headers
        )
    assert producer.flush(30) == 0


def _fill_txn(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    for round_ in range(6):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, b"txn %d.%d" % (round_, i), b"k%d" % i)
        if round_ % 2:
            producer.flush(30)  # the aborted records reach the broker and take offsets
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)


def make_world(bootstrap: str, s3_server: S3Server, logs: Path) -> World:
    """Create, fill and archive the world's topics (archiver logs under ``logs``)."""
    archive = S3Archive(s3_server)
    main = create_topic(bootstrap, MAIN_PARTITIONS)
    compacted = create_topic(bootstrap, 1, COMPACTED)
    txn = create_topic(bootstrap, 1)
    _fill_main(bootstrap, main)
    fill_compacted(bootstrap, compacted)
    _fill_txn(bootstrap, txn)
    rows = {
        topic: archive.archive(bootstrap, topic, partitions, logs / f"{topic}.log")
        for topic, partitions in ((main, MAIN_PARTITIONS), (compacted, 1), (txn, 1))
    }
    return World(bootstrap, archive, main, compacted, txn, rows)


Scenario = Callable[[World, Callable[..., Any]], Any]


def run_both(world: World, scenario: Scenario, reads: bool = True, bootstrap: str | None = None) -> Any:
    """The scenario's result with each consumer, which must be the same; when the scenario ``reads`` records,
    also proves that pyrostore.Consumer read them from the archive. ``bootstrap`` replaces the world's Kafka."""
    results = {}
    for kind in KINDS:
        made: list = []
        try:
            results[kind] = scenario(world, consumer_factory(kind, bootstrap or world.bootstrap, world.archive, made))
        finally:
            for consumer in made:
                consumer.close()
        if kind == "pyrostore" and reads:
            assert sum(c.source_counts()["archive"] for c in made) > 0, "pyrostore.Consumer never read the archive"
    assert results["confluent_kafka"] == results["pyrostore"], "\n".join(
        f"{kind}:\n{pprint.pformat(result, width=120)}" for kind, result in results.items()
    )  # spelled out: pytest rewrites the asserts of test modules only
    return results["pyrostore"]
