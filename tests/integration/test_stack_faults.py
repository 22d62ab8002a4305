"""The stack's fault tools against its real servers: Toxiproxy's toxics, the HTTP fault proxy in front of MinIO
and fake-gcs-server as each backend's own client sees it, and a broker SIGKILLed and restarted."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from e2e.stack import s3 as stack_s3
from tests.kafka_helpers import kafka_rows


def _health(url: str, timeout: float = 5) -> float:
    """Seconds MinIO's liveness check took through ``url``."""
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/minio/health/live", timeout=timeout) as answer:
        assert answer.status == 200
    return time.monotonic() - started


def test_toxiproxy_toxics_reach_a_client(toxiproxy, s3_server):
    proxy = toxiproxy.proxy(f"minio-{uuid.uuid4().hex[:6]}", s3_server.endpoint.removeprefix("http://"))
    url = f"http://{proxy.listen}"
    try:
        assert _health(url) < 0.5
        with proxy.toxic("latency", latency=400):
            assert _health(url) >= 0.4
        assert [t["type"] for t in proxy.toxics()] == []
        proxy.reset_peer()
        with pytest.raises((ConnectionResetError, urllib.error.URLError)):
            _health(url)
        proxy.clear()
        # Requests stop on their way, the connection stays open: the client's own timeout fires. (Downstream, the
        # answer would be dropped but the server's close after it passed on.)
        proxy.timeout(0, stream="upstream")
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            _health(url, timeout=1)
        proxy.clear()
        proxy.slicer(average_size=8, size_variation=4, delay_us=200)
        proxy.bandwidth(64)
        assert {t["type"] for t in proxy.toxics()} == {"slicer", "bandwidth"}
        assert _health(url) < 5  # sliced and throttled, the answer is whole
        proxy.clear()
        proxy.enabled(False)
        with pytest.raises(urllib.error.URLError):
            _health(url)
        proxy.enabled(True)
        assert _health(url) < 0.5
    finally:
        proxy.delete()


def test_fault_proxy_keeps_s3_signatures_and_boto3_sees_each_fault(s3_faults, s3_server):
    proxied = stack_s3.client(s3_server, endpoint=s3_faults.endpoint, attempts=1)
    key = f"faults/{uuid.uuid4().hex}"
    proxied.put_object(Bucket=s3_server.bucket, Key=key, Body=b"x" * 5000)
    assert proxied.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"x" * 5000
    for kind, code in (("500", "InternalError"), ("503", "SlowDown")):
        with s3_faults.failing(1.0, (kind,)), pytest.raises(ClientError) as failed:
            proxied.get_object(Bucket=s3_server.bucket, Key=key)
        assert failed.value.response["Error"]["Code"] == code
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == int(kind)
    with s3_faults.failing(1.0, ("truncate",)), pytest.raises(Exception) as cut:
        proxied.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert "read" in type(cut.value).__name__.lower() or "incomplete" in str(cut.value).lower(), repr(cut.value)
    with s3_faults.failing(1.0, ("stall",), stall_seconds=1.0):
        started = time.monotonic()
        assert proxied.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"x" * 5000
        assert time.monotonic() - started >= 0.9
        assert s3_faults.counts()["stall"] == 1


def test_fault_proxy_gives_the_gcs_client_throttling_and_server_errors(gcs_faults, gcs_server):
    from google.api_core import exceptions as api
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=gcs_server.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_faults.endpoint},
    )
    blob = client.bucket(gcs_server.bucket).blob(f"faults/{uuid.uuid4().hex}")
    blob.upload_from_string(b"y" * 5000, retry=None)
    assert blob.download_as_bytes(retry=None) == b"y" * 5000
    for kind, error in (
        ("429", api.TooManyRequests),
        ("503", api.ServiceUnavailable),
        ("500", api.InternalServerError),
    ):
        with gcs_faults.failing(1.0, (kind,)), pytest.raises(error) as failed:
            client.bucket(gcs_server.bucket).get_blob(blob.name, retry=None)
        assert failed.value.code == int(kind)
    assert gcs_faults.counts()["500"] == 1


def test_a_sigkilled_broker_restarts_with_its_data_and_clients_reconnect(restartable_kafka):
    kafka = restartable_kafka
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(1000):
        producer.produce(topic, b"before-%d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    while len(seen) < 1000:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            seen.append(message.value())
    consumer.commit(asynchronous=False)
    before = kafka_rows(kafka.bootstrap, topic, 2)
    old_pid = kafka.process.pid

    kafka.restart(kill=True)

    assert kafka.process.pid != old_pid and kafka.process.alive()
    assert kafka_rows(kafka.bootstrap, topic, 2) == before  # acknowledged records survived the SIGKILL
    for i in range(200):  # the same producer and consumer carry on, reconnected
        producer.produce(topic, b"after-%d" % i, partition=i % 2)
    assert producer.flush(60) == 0
    deadline = time.monotonic() + 60
    while len(seen) < 1200 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            seen.append(message.value())
    consumer.close()
    assert sorted(seen) == sorted([b"before-%d" % i for i in range(1000)] + [b"after-%d" % i for i in range(200)])
    after = kafka_rows(kafka.bootstrap, topic, 2)
    assert {p: rows[: len(before[p])] for p, rows in after.items()} == before
    assert sum(len(rows) for rows in after.values()) == 1200
    committed = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"g-{topic}"})
    offsets = committed.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=30)
    committed.close()
    assert [tp.offset for tp in offsets] == [500, 500]  # the group's offsets survived too
