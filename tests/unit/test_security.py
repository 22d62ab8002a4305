"""The pure parts of security: which Kafka errors are refusals and their one line, serve's TLS flags, and the
live client's inline CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from e2e.stack import certs
from pyrostore.errors import InvalidSetting, KafkaAccessDenied
from pyrostore.kafka import Refusals, refusal
from pyrostore.serve.kafka_options import client_options
from pyrostore.serve.tls import check_tls

AT = "broker:9094"


def test_an_authentication_failure_is_one_line_without_librdkafka_decoration():
    error = KafkaError(
        KafkaError._AUTHENTICATION,
        "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 311ms in state AUTH_REQ)",
    )
    assert refusal(error, AT) == (
        "Kafka at broker:9094: authentication failed: SASL authentication error: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )


def test_certificate_errors_are_refusals_and_other_tls_errors_are_not():
    untrusted = KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed: broker certificate")
    assert (refusal(untrusted, AT) or "").startswith("Kafka at broker:9094: TLS certificate verify failed: ")
    assert refusal(KafkaError(KafkaError._SSL, "SSL handshake failed: Disconnected"), AT) is None
    assert refusal(KafkaError(KafkaError._TRANSPORT, "Connection refused"), AT) is None


def test_authorization_errors_name_what_was_denied():
    topic = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed")
    assert refusal(topic, AT, "orders") == (
        "Kafka at broker:9094: not authorized for topic 'orders': Broker: Topic authorization failed (no ACL allows it)"
    )
    group = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "Group authorization failed.")
    assert "not authorized for consumer group" in (refusal(group, AT) or "")


def test_refusals_remember_the_last_refusal_and_forward_the_rest():
    forwarded: list[int] = []
    watch = Refusals(AT, lambda error: forwarded.append(error.code()))
    watch(KafkaError(KafkaError._TRANSPORT, "down"))
    watch.check()  # nothing refused yet
    watch(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: bad"))
    assert forwarded == [KafkaError._TRANSPORT]
    with pytest.raises(KafkaAccessDenied, match="authentication failed: SASL authentication error: bad"):
        watch.check()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> certs.TestCertificates:
    return certs.ensure(tmp_path_factory.mktemp("certs"))


def test_tls_flags_come_in_pairs(pki):
    assert check_tls(None, None, None) is None
    with pytest.raises(InvalidSetting, match="together"):
        check_tls(pki.server.cert, None, None)
    with pytest.raises(InvalidSetting, match="--tls-client-ca needs"):
        check_tls(None, None, pki.ca)
    tls = check_tls(pki.server.cert, pki.server.key, pki.ca)
    assert tls is not None and tls.client_ca == pki.ca


def test_a_key_of_another_certificate_is_refused_naming_the_files_only(pki):
    with pytest.raises(InvalidSetting) as refused:
        check_tls(pki.server.cert, pki.client.key, None)
    assert str(pki.server.cert) in str(refused.value) and "PRIVATE KEY" not in str(refused.value)
    with pytest.raises(InvalidSetting, match="client CA file"):
        check_tls(pki.server.cert, pki.server.key, Path(pki.server.key.parent / "missing.pem"))


def test_the_live_client_takes_an_inline_ca(pki):
    options = client_options(
        {"security.protocol": "SSL", "ssl.ca.pem": pki.ca.read_text()},
        "broker:9093",
    )
    context: ssl.SSLContext = options["ssl_context"]
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        ((("organizationName", "pyrostore tests"),), (("commonName", "test CA"),))
    ]
