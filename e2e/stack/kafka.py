"""A single-node Apache Kafka broker in KRaft mode, from the Maven Central jars cached by ``builds``."""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from e2e.stack import builds
from e2e.stack.process import Process, ServerFailed, free_port, spawn, tail, wait_ready

# Short segments and fast background threads so that retention, compaction and delete_records tests are quick.
_BROKER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
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
    """A running broker: where to connect and the process behind it (replaced by :meth:`restart`)."""

    bootstrap: str
    cluster_id: str
    process: Process
    command: list[str] = field(default_factory=list, repr=False)  # how to start it again, same config and data

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the broker (a clean shutdown keeps its data) and wait until it exited."""
        self.process.stop(grace)

    def restart(self, timeout: float = 120.0) -> None:
        """Start the broker again on the same ports and data folder (stopping it first if it runs); return once
        it answers metadata requests. Raises ServerFailed."""
        self.stop()
        self.process = spawn("kafka", self.command, self.process.log)
        wait_ready(self.process, lambda: _answers_metadata(self.bootstrap), timeout=timeout)


def start(workdir: Path) -> KafkaServer:
    """Format storage and start a broker in ``workdir``; return once it answers metadata requests."""
    libs = builds.kafka_libs()
    workdir.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_port(), free_port()
    props = workdir / "server.properties"
    props.write_text(_BROKER_PROPERTIES.format(port=port, controller_port=controller_port, data=workdir / "data"))
    (workdir / "log4j2.yaml").write_text(_LOG4J2)
    java = ["java", "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={workdir / 'log4j2.yaml'}"]
    java += ["-cp", f"{libs}/*"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    log = workdir / "kafka.log"
    formatted = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(props)],
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
    return KafkaServer(bootstrap=bootstrap, cluster_id=cluster_id, process=proc, command=command)


def _answers_metadata(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)
