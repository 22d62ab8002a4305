"""The live cluster's client properties (librdkafka names) as the server's Kafka client takes them."""

from __future__ import annotations

import ssl

import pytest

from pyrostore.errors import InvalidKafkaProperties
from pyrostore.serve.kafka_options import client_options


def test_plaintext_by_default():
    options = client_options({}, "a:9092,b:9092")
    assert options["bootstrap_servers"] == ["a:9092", "b:9092"]
    assert options["security_protocol"] == "PLAINTEXT"
    assert "sasl_mechanism" not in options


def test_sasl_over_tls():
    options = client_options(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "scram-sha-512",
            "sasl.username": "u",
            "sasl.password": "p",
            "enable.ssl.certificate.verification": "false",
            "request.timeout.ms": "5000",
        },
        "k:9093",
    )
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("u", "p")
    assert options["ssl_context"].verify_mode == ssl.CERT_NONE
    assert options["request_timeout_ms"] == 5000


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"fetch.wait.max.ms": "5"}, "fetch.wait.max.ms is not used by pyrostore serve"),
        ({"security.protocol": "tls"}, "security.protocol 'tls'"),
        ({"security.protocol": "sasl_plaintext", "sasl.mechanism": "GSSAPI"}, "sasl.mechanism 'GSSAPI'"),
        ({"security.protocol": "ssl", "ssl.ca.location": "/nonexistent/ca.pem"}, "cannot load the TLS files"),
        ({"request.timeout.ms": "soon"}, "request.timeout.ms=soon"),
    ],
)
def test_bad_properties_are_named(properties, named):
    with pytest.raises(InvalidKafkaProperties, match=named):
        client_options(properties, "k:9092")
