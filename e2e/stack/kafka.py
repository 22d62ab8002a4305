"""A single-node Apache Kafka broker in KRaft mode, from the Maven Central jars cached by ``builds``."""

from __future__ import annotations

import base64
import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from e2e.stack import builds, certs
from e2e.stack.process import Process, ServerFailed, free_port, spawn, tail, wait_ready
from e2e.stack.toxiproxy import Proxy, ToxiproxyServer

# The PROXIED listener advertises a port nothing listens on until a Toxiproxy proxy to the listener is made there
# (KafkaServer.proxied): clients that bootstrap through the proxy are then sent back to it, never around it.
# The SASL_SSL listener takes SCRAM-SHA-512 users made at format time, over TLS with the stack's test
# certificates. The authorizer lets everyone do anything on a resource without ACLs, and the listeners without
# authentication (ANONYMOUS) everything, so only topics a test restricts with ACLs are closed to other users.
# Short segments and fast background threads so that retention, compaction and delete_records tests are quick.
_BROKER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{proxied_port},SASL_SSL://127.0.0.1:{sasl_port},\
CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{proxy_port},SASL_SSL://127.0.0.1:{sasl_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
super.users=User:ANONYMOUS
log.dirs={data}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
log.segment.bytes=1048576
log.retention.check.interval.ms=1000
log.segment.delete.delay.ms=0
log.cleaner.backoff.ms=500
log.cleaner.dedupe.buffer.size=33554432
file.delete.delay.ms=0
"""

_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
"""


@dataclass
class KafkaServer:
    """A running broker: where to connect and the process behind it (replaced by :meth:`restart`).

    ``proxied_upstream`` is a second listener whose advertised address is ``proxied_bootstrap``, where
    :meth:`proxied` puts a Toxiproxy proxy to it.
    """

    bootstrap: str
    cluster_id: str
    process: Process
    command: list[str] = field(default_factory=list, repr=False)  # how to start it again, same config and data
    proxied_upstream: str = ""
    proxied_bootstrap: str = ""
    sasl_bootstrap: str = ""  # the SASL_SSL listener (SCRAM-SHA-512 over TLS)
    ca_file: Path | None = None  # the CA that signed the SASL_SSL listener's certificate
    users: dict[str, str] = field(default_factory=dict, repr=False)  # SCRAM user -> password
    certificates: certs.TestCertificates | None = field(default=None, repr=False)

    def sasl_properties(self, user: str, password: str | None = None) -> dict[str, str]:
        """librdkafka properties reaching the SASL_SSL listener as ``user`` (with its password unless another
        is given), trusting the stack's CA."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": self.users[user] if password is None else password,
            "ssl.ca.location": str(self.ca_file),
        }

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the broker (a clean shutdown keeps its data) and wait until it exited."""
        self.process.stop(grace)

    def restart(self, timeout: float = 120.0, kill: bool = False) -> None:
        """Start the broker again on the same ports and data folder, stopping it first if it runs: SIGTERM, or
        with ``kill`` SIGKILL (no clean shutdown: the broker recovers its log on start). Return once it answers
        metadata requests. Raises ServerFailed."""
        if kill:
            self.process.kill()
        else:
            self.stop()
        self.process = spawn("kafka", self.command, self.process.log)
        wait_ready(self.process, lambda: _answers_metadata(self.bootstrap), timeout=timeout)

    def proxied(self, toxiproxy: ToxiproxyServer) -> Proxy:
        """A Toxiproxy proxy at ``proxied_bootstrap`` to the PROXIED listener: every connection of a client
        bootstrapped there, to the broker and its coordinators, passes through the proxy's toxics. Made once;
        later calls return the same proxy."""
        name = f"kafka-{self.cluster_id}"
        return toxiproxy.existing(name) or toxiproxy.proxy(name, self.proxied_upstream, listen=self.proxied_bootstrap)


# SCRAM users of the SASL_SSL listener, with random passwords: tests give one of them ACLs on a topic, which
# closes that topic to the other.
USERS = ("pyrostore", "outsider")


def start(workdir: Path) -> KafkaServer:
    """Format storage and start a broker in ``workdir``; return once it answers metadata requests."""
    libs = builds.kafka_libs()
    workdir.mkdir(parents=True, exist_ok=True)
    port, controller_port, proxied_port, proxy_port = free_port(), free_port(), free_port(), free_port()
    sasl_port = free_port()
    pki = certs.ensure(workdir.parent / "certs")
    users = {name: secrets.token_hex(12) for name in USERS}
    props = workdir / "server.properties"
    props.write_text(
        _BROKER_PROPERTIES.format(
            port=port,
            controller_port=controller_port,
            proxied_port=proxied_port,
            proxy_port=proxy_port,
            sasl_port=sasl_port,
            keystore=certs.keystore_pem(pki.server, workdir / "keystore.pem"),
            data=workdir / "data",
        )
    )
    (workdir / "log4j2.yaml").write_text(_LOG4J2)
    java = ["java", "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={workdir / 'log4j2.yaml'}"]
    java += ["-cp", f"{libs}/*"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    log = workdir / "kafka.log"
    scram = [f"--add-scram=SCRAM-SHA-512=[name={user},password={password}]" for user, password in users.items()]
    formatted = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(props), *scram],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log.write_text(formatted.stdout)
    if formatted.returncode != 0:
        raise ServerFailed(f"kafka storage format failed; log {log}:\n{tail(log)}")
    command = [*java, "kafka.Kafka", str(props)]
    proc = spawn("kafka", command, log)
    bootstrap = f"127.0.0.1:{port}"
    wait_ready(proc, lambda: _answers_metadata(bootstrap), timeout=120)
    return KafkaServer(
        bootstrap=bootstrap,
        cluster_id=cluster_id,
        process=proc,
        command=command,
        proxied_upstream=f"127.0.0.1:{proxied_port}",
        proxied_bootstrap=f"127.0.0.1:{proxy_port}",
        sasl_bootstrap=f"127.0.0.1:{sasl_port}",
        ca_file=pki.ca,
        users=users,
        certificates=pki,
    )


def _answers_metadata(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)
