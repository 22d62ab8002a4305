"""Archiver throughput beside a plain confluent_kafka consumer reading the same topic (the ceiling).

Starts the stack's Kafka, produces at least 1 GB per record size (1 KiB and 100 B records by default) and
flushes it to disk, then for each topic runs, each in its own process and in turns (``--rounds``, the order
reversed each round): a plain
consumer with the archiver's consumer settings that only reads every record (the ceiling), and the archiver
writing the topic into a local archive until it has everything. Prints each side's best MB/s and records/s,
the CPU seconds its process spent, its peak memory, and the ratio to the ceiling.

    python bench/archive_throughput.py [--gb 1.0] [--sizes 1024,100] [--partitions 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

from bench.common import cpu_seconds, fastest, peak_rss_mb, produce, run_rounds, running_stack


def role_consume(bootstrap: str, topic: str, partitions: int, expected: int) -> dict:
    """The ceiling: read every record of the topic, touching key and value, and nothing else."""
    from confluent_kafka import Consumer, TopicPartition

    from pyrostore.archiver.config import ArchiverConfig, consumer_config

    config = consumer_config(ArchiverConfig(bootstrap, topic, "unused"), "ceiling")
    consumer = Consumer({**config, "group.id": f"ceiling-{time.time()}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    started, cpu = time.perf_counter(), cpu_seconds()
    count = nbytes = 0
    while count < expected:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is None:
                count += 1
                nbytes += len(message.value()) + len(message.key())
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    consumer.close()
    return {"seconds": elapsed, "cpu": cpu, "records": count, "bytes": nbytes, "peak_mb": peak_rss_mb()}


def role_archive(bootstrap: str, topic: str, partitions: int, expected: int) -> dict:
    """The archiver, in this process, until the archive holds every record; then its figures."""
    from pyrostore.archive import Archive
    from pyrostore.archiver import Archiver, ArchiverConfig
    from pyrostore.errors import TopicNotFound
    from pyrostore.store import open_store

    with tempfile.TemporaryDirectory(prefix="pyrostore-bench-archive-") as folder:
        config = ArchiverConfig(bootstrap, topic, folder, segment_age=1.0, group_id=f"bench-{time.time()}")
        archiver = Archiver(config)
        stop = threading.Event()
        runner = threading.Thread(target=archiver.run, args=(stop,))
        started, cpu = time.perf_counter(), cpu_seconds()
        runner.start()
        archive = Archive(open_store(folder))
        while True:
            try:
                archived = sum(archive.partition(topic, p).commit.records for p in range(partitions))
            except TopicNotFound:
                archived = 0
            if archived >= expected:
                break
            time.sleep(0.1)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        stored = sum(archive.partition(topic, p).commit.bytes for p in range(partitions))
        stop.set()
        runner.join()
    return {"seconds": elapsed, "cpu": cpu, "records": archived, "stored_bytes": stored, "peak_mb": peak_rss_mb()}


def main() -> None:
    """Start Kafka, produce, measure both roles per record size, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="GB to produce per record size")
    parser.add_argument("--sizes", default="1024,100", help="record value sizes in bytes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, in turns; the best counts")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        bootstrap, topic, partitions, expected = args.args
        role = role_consume if args.role == "consume" else role_archive
        print(json.dumps(role(bootstrap, topic, int(partitions), int(expected))))
        return

    with running_stack("stack") as (_, stack):
        kafka = stack.get("kafka")
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            topic = f"bench-{size}"
            print(f"producing {args.gb} GB of {size} B records ...", flush=True)
            count = produce(kafka.bootstrap, topic, args.partitions, size, int(args.gb * 1e9))
            os.sync()  # neither side should compete with the broker's writeback of what was just produced
            role_args = (kafka.bootstrap, topic, str(args.partitions), str(count))
            runs = run_rounds(
                ("consume", "archive"),
                args.rounds,
                lambda _: role_args,  # noqa: B023 (used at once)
                script=__file__,
            )
            best = fastest(runs)
            rows.append((size, count, best["consume"], best["archive"]))

    side = f"{'rec/s':>10} {'CPU s':>6} {'peak MB':>8}"
    print(
        f"\n{'records':>10} {'size':>6} | {'ceiling MB/s':>12} {side} | {'archiver MB/s':>13} {side} | "
        f"{'ratio':>6} {'stored/raw':>10}"
    )
    for size, count, ceiling, archived in rows:
        raw = ceiling["bytes"]
        c_mbs, a_mbs = raw / ceiling["seconds"] / 1e6, raw / archived["seconds"] / 1e6
        print(
            f"{count:>10} {size:>6} | {c_mbs:>12.1f} {_side(ceiling, count)} | "
            f"{a_mbs:>13.1f} {_side(archived, count)} | {a_mbs / c_mbs:>6.2f} {archived['stored_bytes'] / raw:>10.2f}"
        )


def _side(figures: dict, count: int) -> str:
    return f"{count / figures['seconds']:>10.0f} {figures['cpu']:>6.1f} {figures['peak_mb']:>8.0f}"


if __name__ == "__main__":
    main()
