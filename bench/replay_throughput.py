"""Replay throughput beside a plain confluent_kafka producer loop sending the same records from memory (the ceiling).

Starts the stack's Kafka, archives ``--mb`` MB of records per record size (1 KiB and 100 B by default) straight
into a local archive, then, each in its own process and into its own new topic: a plain producer loop that
first loads every record into memory and then only produces them (with the replay's producer settings), and
``Replayer`` replaying the archive (preserve mode, no limits). Prints MB/s of keys and values, records/s, the
ratio to the ceiling (target: at least 0.7), and each process's peak memory. Each side runs ``--rounds`` times,
alternating which goes first; the best run of each counts.

    python bench/replay_throughput.py [--mb 500] [--sizes 1024,100] [--partitions 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from bench.common import event_values, fastest, peak_rss_mb, run_rounds, running_stack

PER_SEGMENT = 50_000


def build(folder: str, topic: str, partitions: int, size: int, total_bytes: int) -> int:
    """Archive ``total_bytes`` of ``size``-byte values over the partitions; return the record count."""
    from pyrostore.index.writer import PartitionWriter
    from pyrostore.segment import encode_segment, records_to_table
    from pyrostore.store import open_store

    store = open_store(folder)
    pool = event_values(size)
    per_partition = total_bytes // size // partitions
    base_time = int(time.time() * 1000) - 3_600_000
    for p in range(partitions):
        writer = PartitionWriter(store, topic, p)
        writer.claim(0)
        for start in range(0, per_partition, PER_SEGMENT):
            rows = [
                (o, base_time + o, 0, b"user-%d" % (o % 10007), pool[o % len(pool)], None, 0)
                for o in range(start, min(start + PER_SEGMENT, per_partition))
            ]
            segment = encode_segment(records_to_table(rows), topic=topic, partition=p, next_offset=rows[-1][0] + 1)
            writer.append([segment])
    return per_partition * partitions


def _options(bootstrap: str, folder: str, topic: str, target: str):
    from pyrostore.replay import ReplayOptions

    return ReplayOptions(folder, topic, target, bootstrap, create_topic=True, replay_id=f"bench-{target}")


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient

    from pyrostore.kafka import create_topic

    create_topic(AdminClient({"bootstrap.servers": bootstrap}), topic, partitions, {"retention.ms": "-1"})


def role_produce(bootstrap: str, folder: str, topic: str, partitions: int, target: str) -> dict:
    """The ceiling: load the archive's records into memory, then only produce them (replay's producer settings)."""
    from confluent_kafka import Producer

    from pyrostore.archive import open_archive
    from pyrostore.replay.kafka import producer_config

    _create(bootstrap, target, partitions)
    archive = open_archive(folder)
    records = [(p, r.key, r.value, r.timestamp) for p in range(partitions) for r in archive.partition(topic, p).read()]
    nbytes = sum(len(key) + len(value) for _, key, value, _ in records)
    # Millions of records held in memory would make every full garbage collection walk them all: a handicap a
    # streaming replay does not have.
    gc.collect()
    gc.freeze()
    producer = Producer(producer_config(_options(bootstrap, folder, topic, target)))
    produce = producer.produce
    started = time.perf_counter()
    for partition, key, value, timestamp in records:
        while True:
            try:
                produce(target, value, key, partition, timestamp=timestamp, headers=None)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(300) == 0
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "records": len(records), "bytes": nbytes, "peak_mb": peak_rss_mb()}


def role_replay(bootstrap: str, folder: str, topic: str, partitions: int, target: str) -> dict:
    """Replay the whole archive into a new topic (preserve mode, no limits), start to finish."""
    from pyrostore.replay import Replayer

    _create(bootstrap, target, partitions)
    started = time.perf_counter()
    progress = Replayer(_options(bootstrap, folder, topic, target)).run()
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "records": progress.records_done, "peak_mb": peak_rss_mb()}


def main() -> None:
    """Start Kafka, build archives, measure both roles per record size, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=500.0, help="MB of values to archive and replay per record size")
    parser.add_argument("--sizes", default="1024,100", help="record value sizes in bytes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (the best counts)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        bootstrap, folder, topic, partitions, round_ = args.args
        role = role_produce if args.role == "produce" else role_replay
        print(json.dumps(role(bootstrap, folder, topic, int(partitions), f"{topic}-{args.role}-{round_}")))
        return

    with running_stack("replay") as (folder, stack):
        kafka = stack.get("kafka")
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            topic, archive = f"bench-{size}", str(folder / f"archive-{size}")
            print(f"archiving {args.mb} MB of {size} B records ...", flush=True)
            count = build(archive, topic, args.partitions, size, int(args.mb * 1e6))
            runs = run_rounds(
                ("produce", "replay"),
                args.rounds,
                lambda round_: (kafka.bootstrap, archive, topic, str(args.partitions), str(round_)),  # noqa: B023 (used at once)
                script=__file__,
            )
            best = fastest(runs)
            ceiling, replayed = best["produce"], best["replay"]
            assert replayed["records"] == count == ceiling["records"], (count, ceiling, replayed)
            rows.append((size, count, ceiling, replayed))

    print(
        f"\n{'records':>10} {'size':>6} | {'producer MB/s':>13} {'rec/s':>10} {'peak MB':>8} | "
        f"{'replay MB/s':>11} {'rec/s':>10} {'peak MB':>8} | {'ratio':>6}"
    )
    for size, count, ceiling, replayed in rows:
        raw = ceiling["bytes"]
        c_mbs, r_mbs = raw / ceiling["seconds"] / 1e6, raw / replayed["seconds"] / 1e6
        print(
            f"{count:>10} {size:>6} | {c_mbs:>13.1f} {count / ceiling['seconds']:>10.0f} {ceiling['peak_mb']:>8.0f} | "
            f"{r_mbs:>11.1f} {count / replayed['seconds']:>10.0f} {replayed['peak_mb']:>8.0f} | {r_mbs / c_mbs:>6.2f}"
        )


if __name__ == "__main__":
    main()
