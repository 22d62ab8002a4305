"""The operator's status reads against Kafka's SASL_SSL listener and MinIO over HTTPS: credentials and the CA
come from Secrets read from the real API server (``propertiesSecret`` holds the CA inline as ``ssl.ca.pem``, so
no file has to exist beside the operator); each refusal is a ``KafkaAccessDenied`` status with one clear line
and no secret in it."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from pyrostore.operator.status import observe_archive, open_resource_store, resource_kafka_config
from tests.kafka_helpers import ArchiverProcess, produce_numbered, wait_for
from tests.operator_helpers import create_credentials_secret
from tests.security_helpers import (
    REFUSALS,
    assert_no_secret,
    properties_file,
    properties_secret,
    refused_properties,
    restricted_topic,
    s3_environment,
    s3_tls_options,
    tls_storage,
)


@pytest.fixture(scope="module")
def namespace(kube):
    api = kube.api_client()
    name = f"security-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def test_status_reads_kafka_over_sasl_ssl_and_s3_over_https(kube, namespace, kafka, s3_tls_server, tmp_path):
    api = kube.api_client()
    topic = restricted_topic(kafka)
    produce_numbered(kafka.bootstrap, topic, 12)
    prefix = uuid.uuid4().hex[:10]
    archiver = ArchiverProcess(
        kafka.sasl_bootstrap,
        topic,
        f"s3://{s3_tls_server.bucket}/{prefix}",
        tmp_path / "archiver.log",
        "--kafka-properties",
        str(properties_file(tmp_path, kafka.sasl_properties("pyrostore"))),
        *s3_tls_options(s3_tls_server),
        env=s3_environment(s3_tls_server),
    ).start()
    create_credentials_secret(api, namespace, f"s3-{prefix}", s3_tls_server)
    store = open_resource_store(api, namespace, tls_storage(s3_tls_server, prefix, f"s3-{prefix}"))
    kafka_spec = {
        "bootstrapServers": kafka.sasl_bootstrap,
        "topic": topic,
        "propertiesSecret": {"name": properties_secret(api, namespace, kafka.sasl_properties("pyrostore"))},
    }
    conf = resource_kafka_config(api, namespace, kafka_spec)
    try:

        def archived() -> bool:
            seen = observe_archive(store, conf, topic, 0.5)
            assert seen.error is None, seen.error
            return [(p.partition, p.archived_offset, p.high_watermark) for p in seen.partitions] == [(0, 12, 12)]

        wait_for(archived, timeout=60, what=f"the status to see the archive caught up (log {archiver.log})")
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-2000:]
        store.close()


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_status_names_each_refusal_in_one_line(kube, namespace, kafka, s3_tls_server, case):
    api = kube.api_client()
    topic = restricted_topic(kafka)
    secret = properties_secret(api, namespace, refused_properties(kafka, case))
    conf = resource_kafka_config(
        api, namespace, {"bootstrapServers": kafka.sasl_bootstrap, "topic": topic, "propertiesSecret": {"name": secret}}
    )
    prefix = uuid.uuid4().hex[:10]
    create_credentials_secret(api, namespace, f"s3-{prefix}", s3_tls_server)
    store = open_resource_store(api, namespace, tls_storage(s3_tls_server, prefix, f"s3-{prefix}"))
    seen = observe_archive(store, conf, topic, 0.5)
    store.close()
    assert seen.error_reason == "KafkaAccessDenied", seen
    assert seen.error is not None and REFUSALS[case] in seen.error and "\n" not in seen.error
    assert_no_secret(seen.error, *kafka.users.values(), s3_tls_server.secret_key)
