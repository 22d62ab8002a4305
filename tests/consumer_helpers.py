"""Helpers for consumer tests: topics archived into the stack's MinIO, and the two consumers built alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import pyrostore
from e2e.stack.s3 import S3Server
from tests.kafka_helpers import ArchiverProcess, archive_until_caught_up, kafka_rows

KINDS = ("confluent_kafka", "pyrostore")
EOF = KafkaError._PARTITION_EOF


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
    """``make(**conf)`` building a consumer of ``kind`` with the same settings for both kinds; keeps them in
    ``made`` so a test can check where the records came from and close them all."""

    def make(**conf: Any) -> Any:
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": f"group-{uuid.uuid4().hex[:10]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            **{key.replace("_", "."): value for key, value in conf.items()},
        }
        consumer = (
            pyrostore.Consumer({**settings, **archive.consumer_conf})
            if kind == "pyrostore"
            else confluent_kafka.Consumer(settings)
        )
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
