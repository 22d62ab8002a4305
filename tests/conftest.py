"""Fixtures over the real servers of ``e2e.stack``: each server starts on first use and stops at the end.

A server that cannot start fails every test that asks for it, with its name and log file; nothing skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.stack import ServerFailed, Stack
from e2e.stack import s3 as stack_s3
from e2e.stack.faults import FaultProxy
from e2e.stack.gcs import GcsServer
from e2e.stack.kafka import KafkaServer
from e2e.stack.kube import KubeServer
from e2e.stack.postgres import PostgresServer
from e2e.stack.s3 import S3Server
from e2e.stack.toxiproxy import ToxiproxyServer
from pyrostore.store import ObjectStore, open_store


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's stack; servers start lazily and all stop when the session ends."""
    running = Stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


def _server(stack: Stack, name: str):
    try:
        return stack.get(name)
    except ServerFailed as exc:
        pytest.fail(f"the stack's {name} server could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka(stack: Stack) -> KafkaServer:
    """A running single-node Kafka broker (KRaft), with a SASL_SSL listener too (``sasl_bootstrap``, ``users``,
    ``ca_file``)."""
    return _server(stack, "kafka")


@pytest.fixture(scope="session")
def s3_server(stack: Stack) -> S3Server:
    """A running MinIO server with a test bucket."""
    return _server(stack, "s3")


@pytest.fixture(scope="session")
def s3_tls_server(stack: Stack) -> S3Server:
    """A second MinIO server, serving HTTPS with a certificate of the stack's test CA (``ca_file``)."""
    return _server(stack, "s3tls")


@pytest.fixture(scope="session")
def gcs_server(stack: Stack) -> GcsServer:
    """A running fake-gcs-server with a test bucket."""
    return _server(stack, "gcs")


@pytest.fixture(scope="session")
def kube(stack: Stack) -> KubeServer:
    """A running etcd + kube-apiserver pair, with an admin kubeconfig."""
    return _server(stack, "kube")


@pytest.fixture(scope="session")
def postgres_server(stack: Stack) -> PostgresServer:
    """A running PostgreSQL (Debian's package) with a database for the tests, reached by password over TCP."""
    return _server(stack, "postgres")


@pytest.fixture(scope="session")
def toxiproxy(stack: Stack) -> ToxiproxyServer:
    """A running Toxiproxy server: TCP proxies whose toxics (latency, resets, ...) a test sets."""
    return _server(stack, "toxiproxy")


@pytest.fixture(scope="session")
def restartable_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """A Kafka broker of its own for the session's fault tests, which SIGKILL and restart it (the stack's
    shared broker stays up for every other test)."""
    own = Stack(tmp_path_factory.mktemp("restartable"))
    try:
        yield _server(own, "kafka")
    finally:
        own.stop()


@pytest.fixture(scope="session")
def s3_faults(s3_server: S3Server) -> Iterator[FaultProxy]:
    """The HTTP fault proxy in front of MinIO (``endpoint``), passing everything until a test sets a share."""
    proxy = FaultProxy(s3_server.endpoint, "s3").start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def gcs_faults(gcs_server: GcsServer) -> Iterator[FaultProxy]:
    """The HTTP fault proxy in front of fake-gcs-server, passing everything until a test sets a share."""
    proxy = FaultProxy(gcs_server.endpoint, "gcs").start()
    yield proxy
    proxy.stop()


def _unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh store in a local folder."""
    store = open_store(str(tmp_path / "store"))
    yield store
    store.close()


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[ObjectStore]:
    """A fresh store under a unique prefix of the MinIO test bucket."""
    store = open_store(f"s3://{s3_server.bucket}/{_unique('test')}", **stack_s3.store_options(s3_server))
    yield store
    store.close()


@pytest.fixture
def gcs_store(gcs_server: GcsServer) -> Iterator[ObjectStore]:
    """A fresh store under a unique prefix of the fake-gcs-server test bucket."""
    store = open_store(
        f"gs://{gcs_server.bucket}/{_unique('test')}",
        endpoint_url=gcs_server.endpoint,
        project=gcs_server.project,
    )
    yield store
    store.close()


@pytest.fixture(params=["file_store", "s3_store", "gcs_store"])
def any_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each of the three backends in turn, so contract tests prove all of them."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def new_topic(kafka: KafkaServer) -> Callable[..., str]:
    """Create a uniquely named topic: ``new_topic(partitions=1, config={...}) -> name``."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})

    def create(partitions: int = 1, config: dict[str, str] | None = None, name: str | None = None) -> str:
        topic = name or _unique("topic")
        futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})], operation_timeout=30)
        futures[topic].result(timeout=60)
        return topic

    return create
