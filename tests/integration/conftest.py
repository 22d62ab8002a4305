"""Fixtures for the operator's tests (its CRDs on the stack's API server, a namespace, a running operator), the
archived ``world`` that the consumer suites share, and a Kafka broker a test may stop."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2e.stack import ServerFailed, Stack
from e2e.stack.kafka import KafkaServer
from e2e.stack.kube import KubeServer
from e2e.stack.s3 import S3Server
from tests.consumer_helpers import World, make_world
from tests.operator_helpers import OperatorProcess, apply_crds


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[tuple[Stack, KafkaServer]]:
    """A Kafka broker of the test's own (with its stack), so the test can stop and restart it."""
    (tmp_path / "own-stack").mkdir()
    stack = Stack(tmp_path / "own-stack")
    try:
        yield stack, stack.get("kafka")
    except ServerFailed as exc:
        pytest.fail(f"the test's own kafka server could not start: {exc}", pytrace=False)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def crds(kube: KubeServer) -> KubeServer:
    """The stack's API server with the TopicArchive and ReplayJob CRDs of ``crds/`` applied."""
    apply_crds(kube.api_client())
    return kube


@pytest.fixture(scope="module")
def operator_namespace(crds: KubeServer) -> Iterator[str]:
    """A fresh namespace for one test module (deleted afterwards)."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(crds.api_client())
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def operator(crds: KubeServer, operator_namespace: str, tmp_path_factory: pytest.TempPathFactory):
    """``pyrostore operator`` with the admin kubeconfig, watching the module's namespace; status every second."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    running = OperatorProcess(crds.kubeconfig, [operator_namespace], log)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def world(kafka: KafkaServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Topics with every kind of position in the stack's Kafka, archived into its MinIO (read-only for tests)."""
    return make_world(kafka.bootstrap, s3_server, tmp_path_factory.mktemp("archivers"))
