"""Test helpers for the SASL_SSL listener and TLS servers: topics closed by ACLs, properties files, the one-line
error check, and looking for secrets where they must not be."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import javaproperties
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kubernetes import client

from e2e.stack.kafka import KafkaServer
from e2e.stack.s3 import S3Server
from tests.replay_helpers import KEEP_FOREVER

# The refusals every component must name in one line, and the wrong settings that cause them.
REFUSALS = {
    "wrong-password": "authentication failed",
    "untrusted-ca": "certificate verify failed",
    "missing-acl": "not authorized for topic",
}


def restricted_topic(kafka: KafkaServer, owner: str = "pyrostore", partitions: int = 1) -> str:
    """A new topic with an ACL allowing ``owner`` everything on it, which closes it to every other SCRAM user."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    topic = f"secured-{uuid.uuid4().hex[:10]}"
    # Kept forever: a replay writes the archive's old timestamps, which retention would delete at its next check.
    admin.create_topics([NewTopic(topic, partitions, 1, config=KEEP_FOREVER)])[topic].result(60)
    allow = AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        f"User:{owner}",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([allow]).values():
        future.result(30)
    return topic


def refused_properties(kafka: KafkaServer, case: str) -> dict[str, str]:
    """The SASL_SSL properties of one refusal case of REFUSALS (the topic of ``missing-acl`` is one that
    :func:`restricted_topic` closed to the ``outsider`` user)."""
    assert kafka.certificates is not None
    if case == "wrong-password":
        return kafka.sasl_properties("pyrostore", "not-" + kafka.users["pyrostore"])
    if case == "untrusted-ca":
        return kafka.sasl_properties("pyrostore") | {"ssl.ca.location": str(kafka.certificates.untrusted_ca)}
    assert case == "missing-acl", case
    return kafka.sasl_properties("outsider")


def properties_file(folder: Path, properties: dict[str, str], name: str = "client.properties") -> Path:
    """Write Kafka client properties to a file only the owner reads (passwords stay off command lines)."""
    path = folder / name
    path.write_text(javaproperties.dumps(properties, timestamp=False))
    path.chmod(0o600)
    return path


def s3_environment(server: S3Server) -> dict[str, str]:
    """The S3 keys as environment variables, as the operator's pods get them from a Secret."""
    return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}


def s3_tls_options(server: S3Server) -> list[str]:
    """``-o`` options reaching the HTTPS MinIO, without keys (they come from :func:`s3_environment`)."""
    return ["-o", f"endpoint_url={server.endpoint}", "-o", f"ca_bundle={server.ca_file}", "-o", "region=us-east-1"]


def command_line(pid: int) -> str:
    """A running process's command line as ``ps`` shows it."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def assert_one_line_error(output: str, expected: str, *secrets: str) -> None:
    """``output`` of a failed command: its error line names ``expected``, no traceback, and no secret anywhere."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    assert expected in errors[0], errors[0]
    assert "Traceback" not in output, output[-3000:]
    assert_no_secret(output, *secrets)


def assert_no_secret(text: str, *secrets: str) -> None:
    """None of ``secrets`` appears in ``text``."""
    for secret in secrets:
        assert secret and secret not in text, "a secret appears in the output"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment with ``extra``."""
    return {**os.environ, **extra}


def properties_secret(api: client.ApiClient, namespace: str, properties: dict[str, str]) -> str:
    """A new Secret holding the properties as ``client.properties``, the CA file's content inline as
    ``ssl.ca.pem`` (so that nothing but the Secret has to exist where it is used); its name."""
    inline = dict(properties)
    inline["ssl.ca.pem"] = Path(inline.pop("ssl.ca.location")).read_text()
    name = f"kafka-{uuid.uuid4().hex[:8]}"
    text = javaproperties.dumps(inline, timestamp=False)
    data = {"client.properties": base64.b64encode(text.encode()).decode()}
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": data})
    return name


def tls_storage(server: S3Server, prefix: str, secret: str) -> dict:
    """A resource's ``storage`` section for ``prefix`` of the HTTPS MinIO, credentials from Secret ``secret``."""
    options = {"endpoint_url": server.endpoint, "region": "us-east-1", "ca_bundle": str(server.ca_file)}
    return {"url": f"s3://{server.bucket}/{prefix}", "options": options, "credentialsSecret": {"name": secret}}
