"""The archiver, replay and the S3 store against Kafka's SASL_SSL listener (SCRAM-SHA-512) and MinIO over
HTTPS with a private CA: they work with the right credentials, and each refusal is one clear line with no
secret in any output or command line."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from tests.kafka_helpers import ArchiverProcess, archive_rows, kafka_rows, produce_numbered, wait_for
from tests.replay_helpers import build_archive, replay_args
from tests.security_helpers import (
    REFUSALS,
    assert_no_secret,
    assert_one_line_error,
    command_line,
    environment,
    properties_file,
    refused_properties,
    restricted_topic,
    s3_environment,
    s3_tls_options,
)


def _secrets(kafka, s3_tls_server) -> list[str]:
    return [*kafka.users.values(), s3_tls_server.secret_key]


def test_archiver_archives_over_sasl_ssl_into_s3_over_https(kafka, s3_tls_server, tmp_path):
    topic = restricted_topic(kafka, partitions=2)  # closed to other users: the archiver's user has its ACL
    produce_numbered(kafka.bootstrap, topic, 200, partitions=2)
    expected = kafka_rows(kafka.bootstrap, topic, 2)
    props = properties_file(tmp_path, kafka.sasl_properties("pyrostore"))
    store = f"s3://{s3_tls_server.bucket}/{uuid.uuid4().hex[:10]}"
    archiver = ArchiverProcess(
        kafka.sasl_bootstrap,
        topic,
        store,
        tmp_path / "archiver.log",
        "--kafka-properties",
        str(props),
        *s3_tls_options(s3_tls_server),
        env=s3_environment(s3_tls_server),
    ).start()
    options = {"endpoint_url": s3_tls_server.endpoint, "ca_bundle": str(s3_tls_server.ca_file)}
    options |= {"access_key_id": s3_tls_server.access_key, "secret_access_key": s3_tls_server.secret_key}
    try:
        wait_for(
            lambda: archive_rows(store, topic, 2, **options) == expected,
            timeout=90,
            what=f"the archive to match the topic (log {archiver.log})",
        )
        assert archiver.proc is not None
        assert_no_secret(command_line(archiver.proc.pid), *_secrets(kafka, s3_tls_server))
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-2000:]
    assert_no_secret(archiver.log_text(), *_secrets(kafka, s3_tls_server))


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_archiver_stops_with_one_line_when_kafka_refuses_it(kafka, tmp_path, case):
    topic = restricted_topic(kafka)
    produce_numbered(kafka.bootstrap, topic, 5)
    archiver = _sasl_archiver(kafka, topic, tmp_path, refused_properties(kafka, case))
    started = time.monotonic()
    archiver.start()
    assert archiver.wait(60) == 1, archiver.log_text()[-2000:]
    assert time.monotonic() - started < 30, "the refusal took as long as a timeout"
    assert_one_line_error(archiver.log_text(), REFUSALS[case], *kafka.users.values())


def test_a_stopped_archiver_with_the_group_refused_says_so(kafka, tmp_path):
    """An ACL on the consumer group only (the topic is open): the archiver reads metadata, joins, and is denied."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    topic = restricted_topic(kafka, owner="outsider")  # outsider may read the topic ...
    produce_numbered(kafka.bootstrap, topic, 5)
    group = f"closed-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    allow = AclBinding(
        ResourceType.GROUP,
        group,
        ResourcePatternType.LITERAL,
        "User:pyrostore",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([allow]).values():
        future.result(30)
    # ... but not use the group
    archiver = _sasl_archiver(kafka, topic, tmp_path, kafka.sasl_properties("outsider"), "--group", group).start()
    assert archiver.wait(60) == 1, archiver.log_text()[-2000:]
    assert_one_line_error(archiver.log_text(), "not authorized for consumer group", *kafka.users.values())


def test_replay_produces_over_sasl_ssl(kafka, tmp_path):
    store = str(tmp_path / "archive")
    build_archive(store, "source", 1, 50, per_segment=20)
    target = restricted_topic(kafka)
    props = properties_file(tmp_path, kafka.sasl_properties("pyrostore"))
    args = replay_args(kafka.sasl_bootstrap, store, "source", target, "--kafka-properties", str(props))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    replayed = [row[0] for row in kafka_rows(kafka.bootstrap, target, 1)[0]]
    assert replayed == list(range(50)), done.stdout[-2000:] + done.stderr[-2000:]
    assert_no_secret(done.stdout + done.stderr, *kafka.users.values())


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_replay_refused_by_kafka_is_one_line(kafka, tmp_path, case):
    store = str(tmp_path / "archive")
    build_archive(store, "source", 1, 5)
    target = restricted_topic(kafka)
    props = properties_file(tmp_path, refused_properties(kafka, case))
    args = replay_args(kafka.sasl_bootstrap, store, "source", target, "--kafka-properties", str(props))
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert time.monotonic() - started < 30
    assert_one_line_error(done.stdout + done.stderr, REFUSALS[case], *kafka.users.values())


def test_s3_over_https_needs_the_private_ca(s3_tls_server, tmp_path):
    store = f"s3://{s3_tls_server.bucket}/{uuid.uuid4().hex[:10]}"
    build = [sys.executable, "-m", "pyrostore", "ls", store, "-o", f"endpoint_url={s3_tls_server.endpoint}"]
    env = environment(**s3_environment(s3_tls_server))
    trusted = subprocess.run(
        [*build, "-o", f"ca_bundle={s3_tls_server.ca_file}"], capture_output=True, text=True, env=env
    )
    assert trusted.returncode == 0, trusted.stderr
    assert "no topic is archived" in trusted.stdout
    untrusted = subprocess.run(build, capture_output=True, text=True, env=env, timeout=60)
    assert untrusted.returncode == 1
    assert_one_line_error(untrusted.stderr, "certificate verify failed", s3_tls_server.secret_key)
    assert "ca_bundle" in untrusted.stderr
    missing = subprocess.run(
        [*build, "-o", f"ca_bundle={tmp_path / 'none.pem'}"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr, "is not a readable file")


def _sasl_archiver(kafka, topic: str, tmp_path, properties: dict[str, str], *extra: str) -> ArchiverProcess:
    """An archiver of ``topic`` over the SASL_SSL listener, its client properties in a file (not started)."""
    props = properties_file(tmp_path, properties)
    return ArchiverProcess(
        kafka.sasl_bootstrap,
        topic,
        str(tmp_path / "archive"),
        tmp_path / "archiver.log",
        "--kafka-properties",
        str(props),
        *extra,
    )
