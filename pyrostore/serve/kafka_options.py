"""The live cluster's client properties, as the archiver takes them (librdkafka names), for the server's own
Kafka client (aiokafka's, which speaks asyncio and hands record batches over undecoded).

Only connection properties mean something to a client that fetches on behalf of others; any other property is
refused by name rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.helpers import create_ssl_context

from pyrostore.errors import InvalidKafkaProperties
from pyrostore.settings import parse_bool

_PROTOCOLS = {"plaintext": "PLAINTEXT", "ssl": "SSL", "sasl_plaintext": "SASL_PLAINTEXT", "sasl_ssl": "SASL_SSL"}
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SSL_FILES = {"ssl.ca.location": "cafile", "ssl.certificate.location": "certfile", "ssl.key.location": "keyfile"}
_IGNORED = ("enable.ssl.certificate.verification",)  # handled beside the SSL files
SUPPORTED = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.key.password",
    "client.id",
    "request.timeout.ms",
    "metadata.max.age.ms",
    "ssl.ca.pem",
    *_SSL_FILES,
    *_IGNORED,
)


def client_options(properties: Mapping[str, str], bootstrap: str) -> dict[str, Any]:
    """Keyword arguments of ``aiokafka.AIOKafkaClient`` for ``bootstrap`` and the librdkafka-named connection
    ``properties``. Raises InvalidKafkaProperties naming a property the server does not use, or a bad value."""
    unknown = sorted(set(properties) - set(SUPPORTED))
    if unknown:
        raise InvalidKafkaProperties(
            f"Kafka property {unknown[0]} is not used by pyrostore serve (it takes {', '.join(SUPPORTED)})"
        )
    options: dict[str, Any] = {"bootstrap_servers": bootstrap.split(","), "client_id": "pyrostore-serve"}
    protocol_name = properties.get("security.protocol", "plaintext").lower()
    if protocol_name not in _PROTOCOLS:
        raise InvalidKafkaProperties(f"security.protocol {protocol_name!r} is not one of {', '.join(_PROTOCOLS)}")
    protocol = options["security_protocol"] = _PROTOCOLS[protocol_name]
    mechanism = properties.get("sasl.mechanism", properties.get("sasl.mechanisms", "PLAIN")).upper()
    if protocol.startswith("SASL"):
        if mechanism not in _MECHANISMS:
            raise InvalidKafkaProperties(f"sasl.mechanism {mechanism!r} is not one of {', '.join(_MECHANISMS)}")
        options.update(
            sasl_mechanism=mechanism,
            sasl_plain_username=properties.get("sasl.username"),
            sasl_plain_password=properties.get("sasl.password"),
        )
    if protocol.endswith("SSL"):
        files = {arg: properties[key] for key, arg in _SSL_FILES.items() if key in properties}
        try:
            context = create_ssl_context(
                **files, cadata=properties.get("ssl.ca.pem"), password=properties.get("ssl.key.password")
            )
        except (OSError, ValueError) as exc:
            raise InvalidKafkaProperties(f"cannot load the TLS files of the Kafka properties: {exc}") from exc
        verify = "enable.ssl.certificate.verification"
        if not parse_bool(properties.get(verify, "true"), verify):
            context.check_hostname = False
            context.verify_mode = 0  # ssl.CERT_NONE
        options["ssl_context"] = context
    if "client.id" in properties:
        options["client_id"] = properties["client.id"]
    for key, arg in (("request.timeout.ms", "request_timeout_ms"), ("metadata.max.age.ms", "metadata_max_age_ms")):
        if key in properties:
            try:
                options[arg] = int(properties[key])
            except ValueError:
                raise InvalidKafkaProperties(f"{key}={properties[key]} is not a number of milliseconds") from None
    return options
