"""What several benchmarks share: a Kafka topic filled with event-like values, figures of this process, and
running each role of a bench in its own process, in turns, keeping each role's fastest run."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def running_stack(name: str) -> Iterator[tuple[Path, Any]]:
    """A scratch folder and the test stack's servers in it (each starts on first ``get``), all stopped and
    removed afterwards. Yields ``(folder, stack)``."""
    from e2e.stack import Stack  # only the bench's main process needs the stack, not its role processes

    with tempfile.TemporaryDirectory(prefix=f"pyrostore-bench-{name}-") as folder:
        stack = Stack(Path(folder) / "stack")
        try:
            yield Path(folder), stack
        finally:
            stack.stop()


def produce(bootstrap: str, topic: str, partitions: int, size: int, total_bytes: int) -> int:
    """Create the topic and fill it with ``total_bytes`` of JSON-like values of ``size`` bytes; return the count."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"segment.bytes": str(256 * 1024 * 1024), "retention.ms": "-1"}
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, partitions, 1, config=config)])[topic].result(60)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    pool = event_values(size)
    count = total_bytes // size
    for i in range(count):
        value = pool[i % len(pool)]
        while True:
            try:
                producer.produce(topic, value, b"user-%d" % (i % 10007))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(300)
    return count


def event_values(size: int, count: int = 4096) -> list[bytes]:
    """JSON-like values of ``size`` bytes that compress about 3x, like typical event payloads."""
    rng = random.Random(size)
    words = ["page_view", "checkout", "search", "click", "session", "product", "user", "cart", "promo", "ok"]
    values = []
    for _ in range(count):
        text = f'{{"id": "{rng.getrandbits(128):032x}", "event": "{rng.choice(words)}", "fields": {{'
        while len(text) < size:
            text += f'"{rng.choice(words)}": "{rng.choice(words)}-{rng.getrandbits(24):x}", '

        values.append(text.encode()[:size])
    return values


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak resident memory in MB (Linux VmHWM) of this process, or of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """CPU time (user and system, all threads) this process has used so far."""
    times = os.times()
    return times.user + times.system


def run_role(role: str, *args: str, script: str) -> dict:
    """Run one role of a bench ``script`` in a fresh process (so its memory is its own); return its JSON figures."""
    # The child inherits this environment, and with it the PYTHONPATH that found the repository's packages.
    result = subprocess.run([sys.executable, script, "--role", role, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{role} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_rounds(
    roles: Sequence[str], rounds: int, role_args: Callable[[int], Sequence[str]], script: str
) -> dict[str, list[dict]]:
    """Run every role ``rounds`` times, in turns, reversing the order each round (so that no role always meets a
    cold cache first); ``role_args(round)`` gives the roles' arguments. Returns each role's figures."""
    runs: dict[str, list[dict]] = {role: [] for role in roles}
    for round_ in range(rounds):
        for role in roles if round_ % 2 == 0 else reversed(roles):
            figures = run_role(role, *role_args(round_), script=script)
            runs[role].append(figures)
            print(f"  round {round_} {role}: {figures['seconds']:.2f} s", flush=True)
    return runs


def fastest(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Each role's fastest run."""
    return {role: min(figures, key=lambda f: f["seconds"]) for role, figures in runs.items()}


def add_archive_arguments(parser: argparse.ArgumentParser, value_size: int) -> None:
    """The options of :func:`archived_topic`: --records, --value-size, --partitions, --store, --segment-bytes."""
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--value-size", type=int, default=value_size, help="value bytes per record (keys are ~9 B)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--store", choices=("folder", "s3"), default="folder", help="where the archive lives")
    parser.add_argument("--segment-bytes", default="8MiB", help="the archiver's segment size")


def archived_topic(stack: Any, workdir: Path, name: str, args: Any) -> dict:
    """A new topic in the stack's Kafka filled with ``args.records`` records of ``args.value_size`` bytes over
    ``args.partitions`` partitions, archived by the real archiver (segments of ``args.segment_bytes``) into a
    folder under ``workdir`` or, with ``args.store`` "s3", into the stack's MinIO. Returns the set-up the roles
    share: bootstrap, topic, partitions, value_size, store, url, options (store options) and records."""
    kafka = stack.get("kafka")
    topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    setup = {
        "bootstrap": kafka.bootstrap,
        "topic": topic,
        "partitions": args.partitions,
        "value_size": args.value_size,
        "store": args.store,
        "url": str(workdir / "archive"),
        "options": {},
    }
    (workdir / "archive").mkdir()
    if args.store == "s3":
        s3 = stack.get("s3")
        setup["url"] = f"s3://{s3.bucket}/{topic}"
        setup["options"] = {
            "endpoint_url": s3.endpoint,
            "region": s3.region,
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
        }
    print(f"producing {args.records} records of {args.value_size} B into {topic} ...", flush=True)
    started = time.perf_counter()
    setup["records"] = produce(kafka.bootstrap, topic, args.partitions, args.value_size, args.records * args.value_size)
    print(f"  {time.perf_counter() - started:.1f} s; archiving ...", flush=True)
    print(f"  {archive_topic(setup, workdir, args.segment_bytes):.1f} s", flush=True)
    return setup


def archive_topic(setup: dict, workdir: Path, segment_bytes: str, timeout: float = 600) -> float:
    """Run the real archiver (``python -m pyrostore archive``) until the archive holds every record, then stop it
    with SIGTERM; return the seconds it took."""
    from pyrostore.archive import open_archive
    from pyrostore.errors import TopicNotFound

    command = [sys.executable, "-m", "pyrostore", "archive", "-b", setup["bootstrap"], "-t", setup["topic"]]
    command += ["--store", setup["url"], "--segment-bytes", segment_bytes, "--segment-age", "2s"]
    command += ["--log-format", "json", "--group", f"bench-archiver-{uuid.uuid4().hex}"]
    for key, value in setup["options"].items():
        command += ["-o", f"{key}={value}"]
    log = workdir / "archiver.log"
    archive = open_archive(setup["url"], **setup["options"])
    started = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                archived = sum(archive.partition(setup["topic"], p).commit.records for p in range(setup["partitions"]))
            except TopicNotFound:
                archived = 0
            if archived >= setup["records"]:
                break
            if proc.poll() is not None or time.perf_counter() - started > timeout:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the archiver holds {archived} of {setup['records']} records:\n{tail}")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        archive.close()
    return elapsed


def segment_count(setup: dict) -> int:
    """How many segments the archive at ``setup["url"]`` commits for ``setup["topic"]`` (lost ranges aside)."""
    from pyrostore.archive import open_archive

    archive = open_archive(setup["url"], **setup["options"])
    try:
        return sum(
            sum(1 for e in archive.partition(setup["topic"], p).segments() if not e.lost)
            for p in range(setup["partitions"])
        )
    finally:
        archive.close()


def consume_to_ends(consumer: Any, topic: str, ends: Sequence[int], timeout: float) -> Iterator[list]:
    """Assign ``consumer`` (a confluent_kafka.Consumer) every partition of ``topic`` at OFFSET_BEGINNING and yield
    the records of each ``consume(num_messages=1000)`` until every partition's position reached its end in
    ``ends``. Raises KafkaException for an error other than a partition's end, RuntimeError after ``timeout`` s."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    remaining = {p for p, end in enumerate(ends) if end > 0}
    deadline = time.perf_counter() + timeout
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(len(ends))])
    consume = consumer.consume
    while remaining:
        batch = consume(num_messages=1000, timeout=1.0)
        records = [message for message in batch if message.error() is None]
        for message in batch if len(records) < len(batch) else ():
            if message.error() is not None and message.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(message.error())
        yield records
        # The position (the offset after the last record handed out) is the client's own state: no request.
        for position in consumer.position([TopicPartition(topic, p) for p in remaining]):
            if position.offset >= ends[position.partition]:
                remaining.discard(position.partition)
        if time.perf_counter() > deadline:
            raise RuntimeError(f"partitions {sorted(remaining)} of {topic} unfinished after {timeout:.0f} s")
