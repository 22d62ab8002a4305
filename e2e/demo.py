"""``make demo``: Pyrostore's main job end to end on the local stack, narrated step by step.

Starts real servers (built and cached on first run), creates a topic and produces records, archives the topic
into S3 (MinIO) with the archiver, and shows the archive with ``pyrostore ls``, ``cat`` and ``verify``.
"""

from __future__ import annotations

import os
import subprocess
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
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-reader", "enable.partition.eof": True})
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


def pyrostore(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``pyrostore`` command, echoing it and its output."""
    console.print(f"[dim]$ pyrostore {' '.join(args)}[/]", highlight=False)
    command = [sys.executable, "-m", "pyrostore", *args]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr[-2000:] if result.returncode else "")
    if check and result.returncode != 0:
        raise RuntimeError(f"pyrostore {args[0]} failed with exit code {result.returncode}")
    return result


def s3_environment(s3) -> dict[str, str]:
    """Credentials for the stack's MinIO the standard AWS way, so no secret shows on a command line."""
    return {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_REGION": s3.region}


def archive(bootstrap: str, s3, url: str, flags: list[str]) -> None:
    """Run the archiver until the archive at ``url`` holds every record."""
    from pyrostore.archive import open_archive
    from pyrostore.errors import PyrostoreError

    command = [sys.executable, "-m", "pyrostore", "archive", "-b", bootstrap, "-t", TOPIC, "--store", url]
    archiver = subprocess.Popen(
        [*command, "--segment-age", "1s", "--log-format", "text", *flags], env={**os.environ, **s3_environment(s3)}
    )
    started = time.monotonic()

    def archived() -> int:
        try:
            archive = open_archive(
                url,
                endpoint_url=s3.endpoint,
                access_key_id=s3.access_key,
                secret_access_key=s3.secret_key,
                region=s3.region,
            )
            return sum(archive.partition(TOPIC, p).commit.records for p in range(PARTITIONS))
        except PyrostoreError:
            return 0

    while archived() < RECORDS:
        if time.monotonic() - started > 120 or archiver.poll() is not None:
            archiver.kill()
            raise RuntimeError("the archiver did not archive the topic within 120 s")
        time.sleep(0.5)
    archiver.terminate()
    archiver.wait(60)
    console.print(f"[green]archived all {RECORDS} records into {url} in {time.monotonic() - started:.1f}s[/]")


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

        step("4. Archive the topic into S3 (MinIO) with the archiver")
        s3 = stack.get("s3")
        url, flags, env = f"s3://{s3.bucket}/demo", ["-o", f"endpoint_url={s3.endpoint}"], s3_environment(s3)
        console.print("credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION")
        archive(kafka.bootstrap, s3, url, flags)

        step("5. Look at the archive")
        pyrostore("ls", url, *flags, env=env)
        pyrostore("cat", url, TOPIC, "-p", "0", "-n", "3", *flags, env=env)
        pyrostore("cat", url, TOPIC, "-p", "1", "--from-offset", "500", "-n", "1", "--format", "jsonl", *flags, env=env)
        pyrostore("verify", url, *flags, env=env)
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
