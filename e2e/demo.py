"""``make demo``: Pyrostore's main job end to end on the local stack, narrated step by step.

Starts real servers (built and cached on first run), creates a topic, produces records, and reads them back.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

from e2e.stack import ServerFailed, Stack

console = Console()
TOPIC = "demo-orders"
PARTITIONS = 3
RECORDS = 3000


def step(title: str) -> None:
    """Print a step heading."""
    console.rule(f"[bold]{title}")


def produce(bootstrap: str) -> None:
    """Create the demo topic and produce RECORDS keyed records across its partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(RECORDS):
        value = f'{{"order": {i}, "amount": {(i * 37) % 1000}}}'.encode()
        producer.produce(TOPIC, value, key=f"customer-{i % 50}".encode(), headers=[("source", b"demo")])
    producer.flush(30)
    console.print(f"produced [bold]{RECORDS}[/] records to [cyan]{TOPIC}[/] ({PARTITIONS} partitions)")


def consume_all(bootstrap: str) -> dict[int, int]:
    """Read the topic from the beginning to its end; return the record count per partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "demo-reader", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    counts = dict.fromkeys(range(PARTITIONS), 0)
    done: set[int] = set()
    while len(done) < PARTITIONS:
        msg = consumer.poll(10)
        if msg is None:
            raise RuntimeError("no record within 10 s")
        if msg.error():
            done.add(msg.partition())
            continue
        counts[msg.partition()] += 1
    consumer.close()
    return counts


def run(workdir: Path) -> None:
    """Run every step of the demo against a stack under ``workdir``."""
    stack = Stack(workdir)
    try:
        step("1. Start the local stack")
        started = time.monotonic()
        kafka = stack.get("kafka")
        console.print(f"Kafka (KRaft) at [cyan]{kafka.bootstrap}[/] in {time.monotonic() - started:.1f}s")

        step("2. Produce to a topic")
        produce(kafka.bootstrap)

        step("3. Read it back from Kafka")
        counts = consume_all(kafka.bootstrap)
        for partition, count in counts.items():
            console.print(f"partition {partition}: {count} records")
        if sum(counts.values()) != RECORDS:
            raise RuntimeError(f"read {sum(counts.values())} records, expected {RECORDS}")
        console.print(f"[green]all {RECORDS} records read back[/]")
    finally:
        stack.stop()


def main() -> int:
    """Entry point: run the demo in a temporary folder; exit non-zero on any failure."""
    with tempfile.TemporaryDirectory(prefix="pyrostore-demo-") as tmp:
        try:
            run(Path(tmp))
        except ServerFailed as exc:
            console.print(f"[red]a server failed to start:[/] {exc}")
            return 1
    console.print("[bold green]demo finished[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
