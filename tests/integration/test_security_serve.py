"""``pyrostore serve`` secured on both sides: its live side reads Kafka's SASL_SSL listener, and its own listener
speaks TLS (``--tls-cert``/``--tls-key``), optionally requiring client certificates (``--tls-client-ca``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.kafka_helpers import produce_numbered
from tests.replay_helpers import build_archive
from tests.security_helpers import (
    REFUSALS,
    assert_no_secret,
    assert_one_line_error,
    command_line,
    properties_file,
    refused_properties,
    restricted_topic,
)
from tests.serve_helpers import ServeProcess, free_port

ARCHIVED, LIVE = 20, 10


def _read(bootstrap: str, topic: str, count: int, timeout: float = 30, **conf: str) -> tuple[list[int], list[str]]:
    """Offsets read from partition 0 of ``topic`` (up to ``count``), and the client's error events."""
    errors: list[str] = []
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "security", "error_cb": lambda e: errors.append(e.str()), **conf}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    offsets: list[int] = []
    deadline = time.monotonic() + timeout
    while len(offsets) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            offsets.append(message.offset())
    consumer.close()
    return offsets, errors


def _archived_topic(kafka, folder: Path) -> tuple[str, str]:
    """A topic closed to all but the ``pyrostore`` user, with ARCHIVED + LIVE records, ARCHIVED of them in an
    archive in ``folder``."""
    topic = restricted_topic(kafka)
    produce_numbered(kafka.bootstrap, topic, ARCHIVED + LIVE)
    store = str(folder / "archive")
    build_archive(store, topic, 1, ARCHIVED)
    return topic, store


def test_serve_reads_live_kafka_over_sasl_ssl(kafka, tmp_path):
    topic, store = _archived_topic(kafka, tmp_path)
    props = properties_file(tmp_path, kafka.sasl_properties("pyrostore"))
    server = ServeProcess(
        store, free_port(), tmp_path / "serve.log", "-b", kafka.sasl_bootstrap, "--kafka-properties", str(props)
    ).start()
    try:
        offsets, _ = _read(server.bootstrap, topic, ARCHIVED + LIVE)
        assert offsets == list(range(ARCHIVED + LIVE))  # the archive, then Kafka past its end
        assert server.proc is not None
        assert_no_secret(command_line(server.proc.pid), *kafka.users.values())
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
    assert_no_secret(server.log_text(), *kafka.users.values())


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_serve_refused_by_live_kafka_stops_with_one_line(kafka, tmp_path, case):
    _, store = _archived_topic(kafka, tmp_path)
    props = properties_file(tmp_path, refused_properties(kafka, case))
    server = ServeProcess(
        store, free_port(), tmp_path / "serve.log", "-b", kafka.sasl_bootstrap, "--kafka-properties", str(props)
    )
    server.start = super(ServeProcess, server).start  # type: ignore[method-assign]  # it never listens
    server.start()
    assert server.wait(60) == 1, server.log_text()[-2000:]
    assert_one_line_error(server.log_text(), REFUSALS[case], *kafka.users.values())


@pytest.fixture
def archive(tmp_path: Path) -> tuple[str, str]:
    build_archive(str(tmp_path / "archive"), "served", 1, ARCHIVED)
    return "served", str(tmp_path / "archive")


def test_serve_listens_with_tls(kafka, archive, tmp_path):
    pki = kafka.certificates
    topic, store = archive
    tls = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    server = ServeProcess(store, free_port(), tmp_path / "serve.log", *tls).start()
    try:
        trusted = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
        assert _read(server.bootstrap, topic, ARCHIVED, **trusted)[0] == list(range(ARCHIVED))
        offsets, errors = _read(
            server.bootstrap, topic, 1, timeout=5, **(trusted | {"ssl.ca.location": str(pki.untrusted_ca)})
        )
        assert offsets == [] and any("certificate verify failed" in e for e in errors), errors
        offsets, _ = _read(server.bootstrap, topic, 1, timeout=5)  # plaintext to a TLS listener: nothing
        assert offsets == []
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
    assert "over TLS" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_serve_requires_client_certificates_from_its_client_ca(kafka, archive, tmp_path):
    pki = kafka.certificates
    topic, store = archive
    tls = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-ca", str(pki.ca)]
    server = ServeProcess(store, free_port(), tmp_path / "serve.log", *tls).start()
    base = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
    try:
        signed = {"ssl.certificate.location": str(pki.client.cert), "ssl.key.location": str(pki.client.key)}
        assert _read(server.bootstrap, topic, ARCHIVED, **base, **signed)[0] == list(range(ARCHIVED))
        assert _read(server.bootstrap, topic, 1, timeout=5, **base)[0] == []  # no client certificate
        stranger = {
            "ssl.certificate.location": str(pki.untrusted_client.cert),
            "ssl.key.location": str(pki.untrusted_client.key),
        }
        assert _read(server.bootstrap, topic, 1, timeout=5, **base, **stranger)[0] == []
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
    assert "with client certificates" in server.log_text()
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--tls-cert", "{cert}"], "give --tls-cert and --tls-key together"),
        (["--tls-client-ca", "{ca}"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "{cert}", "--tls-key", "{missing}"], "cannot load the TLS certificate"),
        (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "cannot load the TLS certificate"),
    ],
)
def test_serve_refuses_bad_tls_flags_with_one_line(kafka, archive, tmp_path, flags, expected):
    import subprocess
    import sys

    pki = kafka.certificates
    names = {
        "cert": pki.server.cert,
        "ca": pki.ca,
        "missing": tmp_path / "none.key",
        "other_key": pki.client.key,
    }
    args = [a.format(**names) for a in flags]
    done = subprocess.run(
        [sys.executable, "-m", "pyrostore", "serve", "--store", archive[1], "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, expected, pki.server.key.read_text(), pki.client.key.read_text())
