"""Each server of the stack really works: the guarantees every later test relies on, checked at the source."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer, TopicPartition

from e2e.stack import s3 as stack_s3


def test_kafka_produce_and_consume(kafka, new_topic):
    topic = new_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    sent = [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(100)]
    for key, value, partition in sent:
        producer.produce(topic, value, key, partition=partition, headers=[("h", b"x"), ("h", None)])
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "stack-test", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    received, eofs = [], set()
    while len(eofs) < 2:
        msg = consumer.poll(10)
        assert msg is not None, "no message within 10 s"
        if msg.error():
            eofs.add(msg.partition())
            continue
        received.append((msg.key(), msg.value(), msg.partition()))
        assert msg.headers() == [("h", b"x"), ("h", None)]
    consumer.close()
    assert sorted(received) == sorted(sent)


def _race(create, count: int = 16) -> list[bool]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(create, range(count)))


def test_s3_create_only_put(s3_server):
    client = stack_s3.client(s3_server)
    key = f"race/{uuid.uuid4().hex}"
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"first"

    contested = f"race/{uuid.uuid4().hex}"

    def create(i: int) -> bool:
        try:
            client.put_object(Bucket=s3_server.bucket, Key=contested, Body=f"writer {i}".encode(), IfNoneMatch="*")
            return True
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] in (409, 412)
            return False

    wins = _race(create)
    assert wins.count(True) == 1
    stored = client.get_object(Bucket=s3_server.bucket, Key=contested)["Body"].read()
    assert stored == f"writer {wins.index(True)}".encode()


def test_gcs_create_only_put(gcs_server):
    from google.api_core.exceptions import PreconditionFailed
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=gcs_server.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_server.endpoint},
    )
    bucket = client.bucket(gcs_server.bucket)
    blob = bucket.blob(f"race/{uuid.uuid4().hex}")
    blob.upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        bucket.blob(blob.name).upload_from_string(b"second", if_generation_match=0)
    assert bucket.blob(blob.name).download_as_bytes() == b"first"

    contested = f"race/{uuid.uuid4().hex}"

    def create(i: int) -> bool:
        try:
            bucket.blob(contested).upload_from_string(f"writer {i}".encode(), if_generation_match=0)
            return True
        except PreconditionFailed:
            return False

    wins = _race(create)
    assert wins.count(True) == 1
    assert bucket.blob(contested).download_as_bytes() == f"writer {wins.index(True)}".encode()


def test_kube_apiserver_serves_custom_resources(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = kube.api_client()
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.stack.test.io"},
        "spec": {
            "group": "stack.test.io",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                        }
                    },
                }
            ],
        },
    }
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    objects = client.CustomObjectsApi(api)
    widget = {
        "apiVersion": "stack.test.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    # The CRD's API becomes available a moment after creation: retry only on 404 of the new resource.
    for _ in range(100):
        try:
            objects.create_namespaced_custom_object("stack.test.io", "v1", namespace, "widgets", widget)
            break
        except ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.1)
    got = objects.get_namespaced_custom_object("stack.test.io", "v1", namespace, "widgets", "w1")
    assert got["spec"] == {"size": 3}
    assert got["metadata"]["namespace"] == namespace
