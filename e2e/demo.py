"""``make demo``: Pyrostore's main job end to end on the local stack, narrated step by step.

Starts real servers (built and cached on first run), creates a topic and produces records, archives the topic
into S3 (MinIO) with the archiver, and shows the archive with ``pyrostore ls``, ``cat`` and ``verify``. Then
deletes the head of the topic from Kafka, produces a live tail, and reads the whole topic from offset 0 with
``pyrostore.Consumer`` (history from the archive, the tail from Kafka); replays a range of the archived history
into a new topic with ``pyrostore replay``; and ends by reading the whole topic through ``pyrostore serve`` with
an unmodified Kafka client, Debian's ``kcat``: the archived history (head deleted from Kafka) and the live tail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

import pyrostore as pyrostore_package
from e2e.stack import ServerFailed, Stack, clients
from e2e.stack.process import free_port

console = Console()
TOPIC = "demo-orders"
PARTITIONS = 3
RECORDS = 3000
TAIL = 600  # produced after the head is deleted from Kafka, never archived
REPLAY_TOPIC = "demo-orders-replayed"
REPLAY_FROM, REPLAY_TO = 200, 700  # offsets replayed from every partition (the range is partly deleted from Kafka)

Sent = dict[int, list[tuple[bytes, bytes]]]  # partition -> (key, value) at each offset, offsets from 0


def step(title: str) -> None:
    """Print a step heading."""
    console.rule(f"[bold]{title}")


def check(condition: bool, failure: str) -> None:
    """Stop the demo (exit code 1) with ``failure`` unless ``condition`` holds."""
    if not condition:
        raise RuntimeError(failure)


def create_topic(bootstrap: str) -> None:
    """Create the demo topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)


def produce(bootstrap: str, first: int, count: int, sent: Sent) -> None:
    """Produce ``count`` keyed records (orders ``first``...) across the topic, noting each one's offset in ``sent``."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    delivered: list[tuple[int, int, bytes, bytes]] = []

    def on_delivery(error, msg) -> None:
        check(error is None, f"produce failed: {error}")
        delivered.append((msg.partition(), msg.offset(), msg.key(), msg.value()))

    for i in range(first, first + count):
        value = f'{{"order": {i}, "amount": {(i * 37) % 1000}}}'.encode()
        key = f"customer-{i % 50}".encode()
        producer.produce(TOPIC, value, key=key, headers=[("source", b"demo")], on_delivery=on_delivery)
    check(producer.flush(30) == 0, "the producer did not deliver every record within 30 s")
    check(len(delivered) == count, f"{len(delivered)} of {count} records delivered")
    for partition, offset, key, value in sorted(delivered):
        records = sent.setdefault(partition, [])
        check(offset == len(records), f"partition {partition}: offset {offset} follows {len(records)} records")
        records.append((key, value))


def consume_all(bootstrap: str, topic: str = TOPIC) -> Sent:
    """Read ``topic`` from the beginning to its end with a plain Kafka consumer; return each partition's records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "demo-reader",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: Sent = {p: [] for p in range(partitions)}
    done: set[int] = set()
    while len(done) < partitions:
        msg = consumer.poll(10)
        check(msg is not None, "no record within 10 s")
        if msg.error():
            check(msg.error().code() == KafkaError._PARTITION_EOF, f"Kafka error: {msg.error()}")
            done.add(msg.partition())
            continue
        records[msg.partition()].append((msg.key(), msg.value()))
    consumer.close()
    return records


def watermarks(bootstrap: str) -> dict[int, tuple[int, int]]:
    """Kafka's low and high watermark of each partition of the topic, asked of the broker."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-watermarks"})
    marks = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10) for p in range(PARTITIONS)}
    consumer.close()
    return marks


def delete_head(bootstrap: str, sent: Sent) -> dict[int, int]:
    """Delete the first half of every partition from Kafka; return each partition's new low watermark."""
    cut = {p: len(records) // 2 for p, records in sent.items()}
    admin = AdminClient({"bootstrap.servers": bootstrap})  # referenced until its futures resolve
    futures = admin.delete_records([TopicPartition(TOPIC, p, offset) for p, offset in cut.items()])
    lows = {tp.partition: future.result(timeout=30).low_watermark for tp, future in futures.items()}
    check(lows == cut, f"Kafka's low watermarks are {lows}, expected {cut}")
    return lows


def read_with_pyrostore(bootstrap: str, s3, url: str, sent: Sent) -> dict[str, int]:
    """Read the whole topic from offset 0 with ``pyrostore.Consumer``, checking every record arrives once, in
    order and unchanged; return its ``source_counts()``."""
    consumer = pyrostore_package.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "demo-pyrostore",
            "enable.partition.eof": True,
            "pyrostore.store.url": url,
            "pyrostore.store.endpoint_url": s3.endpoint,
            "pyrostore.store.access_key_id": s3.access_key,
            "pyrostore.store.secret_access_key": s3.secret_key,
            "pyrostore.store.region": s3.region,
        }
    )
    try:
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        next_offset = dict.fromkeys(range(PARTITIONS), 0)
        done: set[int] = set()
        deadline = time.monotonic() + 60
        while len(done) < PARTITIONS:
            check(time.monotonic() < deadline, f"pyrostore.Consumer did not reach the end within 60 s: {next_offset}")
            msg = consumer.poll(1)
            if msg is None:
                continue
            p = msg.partition()
            if msg.error():
                check(msg.error().code() == KafkaError._PARTITION_EOF, f"pyrostore.Consumer error: {msg.error()}")
                check(msg.offset() == next_offset[p], f"partition {p}: end at {msg.offset()}, read to {next_offset[p]}")
                if next_offset[p] == len(sent[p]):
                    done.add(p)
                continue
            offset = next_offset[p]
            check(msg.offset() == offset, f"partition {p}: offset {msg.offset()} where {offset} was due")
            check((msg.key(), msg.value()) == sent[p][offset], f"partition {p} offset {offset}: wrong record")
            next_offset[p] = offset + 1
        return consumer.source_counts()
    finally:
        consumer.close()


def pyrostore(*args: str, env: dict[str, str], check: bool = True, log: bool = False) -> subprocess.CompletedProcess:
    """Run the ``pyrostore`` command, echoing it and its output (and its log on stderr with ``log`` or failure)."""
    console.print(f"[dim]$ pyrostore {' '.join(args)}[/]", highlight=False)
    command = [sys.executable, "-m", "pyrostore", *args]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr[-2000:] if result.returncode or log else "")
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


@contextmanager
def serving(url: str, s3, flags: list[str], log: Path) -> Iterator[str]:
    """Run ``pyrostore serve`` over the archive at ``url`` (``flags``: store options, and any other serve option)
    for the ``with``; yield the address clients bootstrap from."""
    address = f"127.0.0.1:{free_port()}"
    command = ["serve", "--store", url, "--listen", address, *flags]
    console.print(f"[dim]$ pyrostore {' '.join(command)}[/]", highlight=False)
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "pyrostore", *command, "--log-format", "text"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **s3_environment(s3)},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            check(server.poll() is None, f"pyrostore serve exited; see {log}")
            check(time.monotonic() < deadline, f"pyrostore serve did not listen within 30 s; see {log}")
            try:
                socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield address
    finally:
        server.terminate()
        check(server.wait(30) == 0, f"pyrostore serve did not stop cleanly; see {log}")


def read_with_kcat(bootstrap: str, expected: Sent) -> None:
    """Read the topic from the beginning to its end with kcat (``-C -o beginning -e``); show a few records and
    each partition's count, and check it printed exactly the ``expected`` records, in order."""
    console.print(f"[dim]$ kcat -C -b {bootstrap} -t {TOPIC} -o beginning -e -f ...[/]", highlight=False)
    lines = clients.kcat_consume(bootstrap, TOPIC)
    for line in lines[:3]:
        console.print(line.replace("\t", "  "), highlight=False, markup=False, soft_wrap=True)
    console.print("...")
    table = Table("partition", "records read with kcat", "first offset", "last offset")
    for partition in sorted(expected):
        offsets = [int(line.split("\t")[1]) for line in lines if line.startswith(f"{partition}\t")]
        table.add_row(str(partition), str(len(offsets)), str(offsets[0]), str(offsets[-1]))
    console.print(table)
    wanted = [
        (str(p), str(offset), f"key={clients.show(key)}", f"value={clients.show(value)}")
        for p in sorted(expected)
        for offset, (key, value) in enumerate(expected[p])
    ]
    got = [(f[0], f[1], f[3], f[4]) for f in (line.split("\t") for line in lines)]
    check(len(got) == len(wanted), f"kcat read {len(got)} records through pyrostore serve, expected {len(wanted)}")
    check(got == wanted, "kcat read other records through pyrostore serve than were produced")


def run(workdir: Path) -> None:
    """Run every step of the demo against a stack under ``workdir``."""
    stack = Stack(workdir)
    try:
        step("1. Start the local stack")
        started = time.monotonic()
        kafka = stack.get("kafka")
        console.print(f"Kafka (KRaft) at [cyan]{kafka.bootstrap}[/] in {time.monotonic() - started:.1f}s")

        step("2. Produce to a topic")
        create_topic(kafka.bootstrap)
        sent: Sent = {}
        produce(kafka.bootstrap, 0, RECORDS, sent)
        console.print(f"produced [bold]{RECORDS}[/] records to [cyan]{TOPIC}[/] ({PARTITIONS} partitions)")

        step("3. Read it back from Kafka")
        records = consume_all(kafka.bootstrap)
        for partition, read in records.items():
            console.print(f"partition {partition}: {len(read)} records")
        check(records == sent, f"read {sum(map(len, records.values()))} records, expected the {RECORDS} produced")
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

        step("6. Delete the head of the topic from Kafka, then produce a live tail")
        lows = delete_head(kafka.bootstrap, sent)
        archived = {p: len(records) for p, records in sent.items()}
        produce(kafka.bootstrap, RECORDS, TAIL, sent)
        table = Table("partition", "archived offsets", "Kafka low watermark", "Kafka high watermark")
        for partition, (low, high) in watermarks(kafka.bootstrap).items():
            check(low == lows[partition], f"partition {partition}: Kafka's low watermark is {low}")
            table.add_row(str(partition), f"0..{archived[partition] - 1}", str(low), str(high))
        console.print(table)
        console.print(f"deleted {sum(lows.values())} records from Kafka; produced {TAIL} more, not archived")

        step("7. Read the whole topic from offset 0 with pyrostore.Consumer")
        counts = read_with_pyrostore(kafka.bootstrap, s3, url, sent)
        table = Table("side", "records")
        for side, count in counts.items():
            table.add_row(side, str(count))
        console.print(table)
        check(counts == {"archive": RECORDS, "kafka": TAIL}, f"expected {RECORDS} from the archive, {TAIL} from Kafka")
        console.print(f"[green]all {RECORDS + TAIL} records read once, in order, from offset 0[/]")

        step("8. Replay part of the history into a new topic")
        replay = ["replay", "--store", url, *flags, "-t", TOPIC, "--to-topic", REPLAY_TOPIC, "-b", kafka.bootstrap]
        replay += ["--from-offset", str(REPLAY_FROM), "--to-offset", str(REPLAY_TO)]
        pyrostore(*replay, "--dry-run", env=env)
        pyrostore(*replay, "--create-topic", "--log-format", "text", env=env, log=True)
        replayed = consume_all(kafka.bootstrap, REPLAY_TOPIC)
        for partition, read in replayed.items():
            console.print(f"{REPLAY_TOPIC} partition {partition}: {len(read)} records")
        expected = {p: records[REPLAY_FROM:REPLAY_TO] for p, records in sent.items()}
        check(replayed == expected, f"{REPLAY_TOPIC} does not hold offsets {REPLAY_FROM}..{REPLAY_TO - 1}")
        console.print(f"[green]offsets {REPLAY_FROM}..{REPLAY_TO - 1} of every partition replayed, as archived[/]")

        step("9. Read the whole topic through pyrostore serve with kcat, a plain Kafka client")
        serve_flags = [*flags, "--bootstrap-servers", kafka.bootstrap]  # past the archive: live Kafka
        with serving(url, s3, serve_flags, workdir / "serve.log") as served:
            read_with_kcat(served, sent)
        console.print(
            f"[green]kcat read all {RECORDS + TAIL} records: {RECORDS} from the archive, the"
            f" {sum(lows.values())} deleted from Kafka included, and the live tail of {TAIL} from Kafka[/]"
        )
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
