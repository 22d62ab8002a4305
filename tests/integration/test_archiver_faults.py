"""The archiver on a bad day: ~10% of its S3 or GCS requests fail (500, 503 SlowDown, 429, truncated bodies,
stalls), its Kafka connections are delayed and reset through Toxiproxy, and its broker is SIGKILLed and
restarted. Every time, the archive ends up equal to the topic record for record and verifies clean."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from e2e.stack import s3 as stack_s3
from e2e.stack.faults import KINDS
from tests.kafka_helpers import ArchiverProcess, archive_rows, assert_archive_equals_topic, keep_producing, wait_for

SHARE = 0.1


def _archive_through_faults(
    kafka, topic: str, url: str, proxy, log, options: dict[str, str], direct: dict[str, str], env=None
) -> dict:
    """Archive ``topic`` (3 partitions, records arriving for 12 s) through ``proxy`` failing SHARE of requests
    (store ``options``, credentials in ``env``); check the archive against Kafka, read with the store options
    ``direct`` (no proxy); return what was injected."""
    args = [arg for name, value in options.items() for arg in ("-o", f"{name}={value}")]
    archiver = ArchiverProcess(kafka.bootstrap, topic, url, log, *args, "--segment-age", "300ms", env=env)
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.004))
    with proxy.failing(SHARE, KINDS, stall_seconds=1.0, seed=17):
        archiver.start()
        producer.start()
        try:
            time.sleep(12)
            assert archiver.running(), archiver.log_text()[-3000:]
        finally:
            stop.set()
            producer.join()
        time.sleep(3)  # the last records' segments go through the faults too
        injected = proxy.counts()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 3, url, log, 60, **direct)
    finally:
        assert archiver.stop() == 0, archiver.log_text()[-3000:]
    print(f"\nfaults injected into {proxy.flavour}: {injected}")
    return injected


def _check_injected(injected: dict) -> None:
    faults = sum(injected[kind] for kind in KINDS)
    assert injected["requests"] > 100, injected
    assert 0.05 < faults / injected["requests"] < 0.15, injected
    assert all(injected[kind] > 0 for kind in KINDS), injected


def test_archiving_through_s3_faults_loses_and_doubles_nothing(kafka, new_topic, s3_server, s3_faults, tmp_path):
    topic = new_topic(partitions=3)
    url = f"s3://{s3_server.bucket}/faults-{uuid.uuid4().hex[:8]}"
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    options = {"endpoint_url": s3_faults.endpoint, "region": s3_server.region}
    direct = stack_s3.store_options(s3_server)
    injected = _archive_through_faults(kafka, topic, url, s3_faults, tmp_path / "archiver.log", options, direct, env)
    _check_injected(injected)


def test_archiving_through_gcs_faults_loses_and_doubles_nothing(kafka, new_topic, gcs_server, gcs_faults, tmp_path):
    topic = new_topic(partitions=3)
    url = f"gs://{gcs_server.bucket}/faults-{uuid.uuid4().hex[:8]}"
    options = {"endpoint_url": gcs_faults.endpoint, "project": gcs_server.project}
    direct = {**options, "endpoint_url": gcs_server.endpoint}
    injected = _archive_through_faults(kafka, topic, url, gcs_faults, tmp_path / "archiver.log", options, direct)
    _check_injected(injected)


def test_archiving_through_kafka_latency_resets_and_a_broker_sigkill(restartable_kafka, toxiproxy, tmp_path):
    kafka = restartable_kafka
    proxy = kafka.proxied(toxiproxy)
    proxy.clear()
    topic = f"kafka-faults-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
    url, log = str(tmp_path / "archive"), tmp_path / "archiver.log"
    # The archiver reaches Kafka only through the proxy (its listener advertises the proxy's address).
    archiver = ArchiverProcess(kafka.proxied_bootstrap, topic, url, log, "--segment-age", "300ms")
    stop = threading.Event()
    producer = threading.Thread(target=keep_producing, args=(kafka.bootstrap, topic, stop, 0.004))
    producer.start()
    try:
        proxy.latency(40, jitter_ms=30)
        proxy.latency(10, stream="upstream")
        archiver.start()
        wait_for(lambda: "assigned" in archiver.log_text(), 60, f"the archiver to be assigned (log {log})")
        time.sleep(3)
        with proxy.toxic("reset_peer", timeout=0):  # every connection reset, and each new one, for a second
            time.sleep(1)
        time.sleep(3)
        kafka.restart(kill=True)
        time.sleep(4)
        assert archiver.running(), archiver.log_text()[-3000:]
    finally:
        stop.set()
        producer.join()
    try:
        assert_archive_equals_topic(kafka.bootstrap, topic, 3, url, log, 60)
    finally:
        proxy.clear()
        assert archiver.stop() == 0, archiver.log_text()[-3000:]
    total = sum(len(rows) for rows in archive_rows(url, topic, 3).values())
    assert total > 2000, "the producer wrote too little for the faults to matter"
    text = archiver.log_text()
    assert f"{kafka.proxied_bootstrap}/1: Disconnected" in text  # the broker, reached through the proxy, went away
    assert kafka.bootstrap not in text
