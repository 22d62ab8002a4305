"""``pyrostore sql`` over archived history beside the same aggregation computed by consuming the topic from Kafka.

Starts the stack's Kafka and MinIO (a local folder instead with ``--store folder``), produces ``--records``
records of ``--value-size`` bytes (keys from a set of 10007, ``user-N``) over ``--partitions`` partitions,
archives them with the real archiver (``python -m pyrostore archive`` in a child process) until the archive holds
every one, once per run, then ``--rounds`` times, alternating which goes first, each in its own process:

- ``sql``: ``python -m pyrostore sql URL QUERY --format jsonl`` as a user runs it, each a fresh process timed
  whole (start-up, imports, reading the index, the query, writing the result): a count
  (:data:`COUNT_SQL`), then a group-by (:data:`GROUP_SQL`: records and value bytes per key);
- ``kafka``: one confluent_kafka.Consumer (serve_throughput.py's reader: librdkafka's defaults with the
  archiver's fetch tuning, :data:`~bench.consumer_read.TUNED_FETCH`, no auto commit) assigned at OFFSET_BEGINNING
  on every partition, ``consume(1000)`` until every partition's high watermark, computing the same count and the
  same group-by in Python in one pass; timed from ``assign()`` to the last record.

Every round checks that both give the same answers, and that the count is the number produced: a mismatch stops
the bench with the difference. Prints each round, then the medians: seconds, records/s, CPU seconds and peak
memory of each side (for ``sql``, of its ``pyrostore sql`` processes), and the ratio Kafka seconds / pyrostore
seconds (above 1: ``pyrostore sql`` is faster), for the count, the group-by, and both; then the set-up time, the
whole bench's time and the load average seen.

    python bench/sql_scan.py [--records 10000000] [--value-size 100] [--partitions 4] [--store s3|folder]
        [--segment-bytes 8MiB] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

from bench.common import (
    add_archive_arguments,
    archived_topic,
    consume_to_ends,
    cpu_seconds,
    peak_rss_mb,
    run_rounds,
    running_stack,
    segment_count,
)
from bench.serve_throughput import reader_config

ROLES = ("sql", "kafka")
READ_TIMEOUT = 1800.0  # seconds the Kafka read may take before the bench gives up
COUNT_SQL = 'SELECT count(*) AS records FROM "{topic}"'
GROUP_SQL = (
    'SELECT decode(key) AS key, count(*) AS records, sum(octet_length(value))::BIGINT AS value_bytes FROM "{topic}" '
    "GROUP BY key"
)


# --- the roles ---------------------------------------------------------------------------------------------------


def sql_command(setup: dict, query: str) -> list[str]:
    """``python -m pyrostore sql`` on the archive with ``query``, results as JSON lines on standard output."""
    command = [sys.executable, "-m", "pyrostore", "sql", setup["url"], query, "--format", "jsonl"]
    for key, value in setup["options"].items():
        command += ["-o", f"{key}={value}"]
    return command


def run_sql(setup: dict, query: str) -> tuple[float, list[dict]]:
    """Run one ``pyrostore sql`` process; its wall seconds and its result rows. Raises RuntimeError if it fails."""
    started = time.perf_counter()
    result = subprocess.run(sql_command(setup, query), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"pyrostore sql exited {result.returncode}: {result.stderr[-3000:]}")
    return elapsed, [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def role_sql(setup: dict) -> dict:
    """The count, then the group-by, each a ``pyrostore sql`` process; their seconds, answers, CPU and memory."""
    topic = setup["topic"]
    count_seconds, count_rows = run_sql(setup, COUNT_SQL.format(topic=topic))
    group_seconds, group_rows = run_sql(setup, GROUP_SQL.format(topic=topic))
    children = os.times()
    return {
        "seconds": count_seconds + group_seconds,
        "count_seconds": count_seconds,
        "group_seconds": group_seconds,
        "count": count_rows[0]["records"],
        "groups": {row["key"]: [row["records"], row["value_bytes"]] for row in group_rows},
        "cpu": children.children_user + children.children_system,
        # ru_maxrss of the children: the larger of the two pyrostore sql processes' peaks, in KB
        "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def role_kafka(setup: dict) -> dict:
    """Read every partition from Kafka to its high watermark (``setup["ends"]``), counting records and, per key,
    records and value bytes (a NULL value counts no bytes, as SQL's ``sum`` skips it)."""
    from confluent_kafka import Consumer

    consumer = Consumer(reader_config(setup["bootstrap"]))
    groups: dict[bytes | None, list[int]] = {}
    count = 0
    started, cpu = time.perf_counter(), cpu_seconds()
    for records in consume_to_ends(consumer, setup["topic"], setup["ends"], READ_TIMEOUT):
        count += len(records)
        for message in records:
            value = message.value()
            size = 0 if value is None else len(value)
            entry = groups.get(key := message.key())
            if entry is None:
                groups[key] = [1, size]
            else:
                entry[0] += 1
                entry[1] += size
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    consumer.close()
    return {
        "seconds": elapsed,
        "count": count,
        "groups": {("NULL" if k is None else k.decode()): v for k, v in groups.items()},
        "cpu": cpu,
        "peak_mb": peak_rss_mb(),
    }


# --- checking and reporting --------------------------------------------------------------------------------------


def differences(ours: dict, theirs: dict, records: int) -> list[str]:
    """What differs between the ``sql`` and ``kafka`` answers, and from the ``records`` produced (empty: none)."""
    found = []
    if not ours["count"] == theirs["count"] == records:
        found.append(f"count: pyrostore sql {ours['count']}, Kafka {theirs['count']}, produced {records}")
    mine, yours = ours["groups"], theirs["groups"]
    if len(mine) != len(yours):
        found.append(f"groups: pyrostore sql {len(mine)}, Kafka {len(yours)}")
    wrong = [key for key in mine.keys() | yours.keys() if mine.get(key) != yours.get(key)]
    found += [f"key {key!r}: pyrostore sql {mine.get(key)}, Kafka {yours.get(key)}" for key in sorted(wrong)[:10]]
    if len(wrong) > 10:
        found.append(f"... and {len(wrong) - 10} more keys")
    return found


def check(runs: dict[str, list[dict]], records: int) -> None:
    """Stop the bench (SystemExit, one line per difference) if any round's answers differ."""
    for round_, (ours, theirs) in enumerate(zip(runs["sql"], runs["kafka"], strict=True)):
        found = differences(ours, theirs, records)
        if found:
            sys.exit(f"round {round_}: the answers differ\n  " + "\n  ".join(found))


def report(setup: dict, runs: dict[str, list[dict]]) -> None:
    """Every round, then the medians and the ratios."""
    records = setup["records"]
    print(f"\n{'round':>5} {'count s':>8} {'group-by s':>10} {'sql s':>8} {'kafka s':>8} {'ratio':>6}")
    for round_, (ours, theirs) in enumerate(zip(runs["sql"], runs["kafka"], strict=True)):
        print(
            f"{round_:>5} {ours['count_seconds']:>8.2f} {ours['group_seconds']:>10.2f} {ours['seconds']:>8.2f} "
            f"{theirs['seconds']:>8.2f} {theirs['seconds'] / ours['seconds']:>6.2f}"
        )

    def median(role: str, key: str) -> float:
        return statistics.median(f[key] for f in runs[role])

    kafka = median("kafka", "seconds")
    print(
        f"\n{records} records of {setup['value_size']} B over {setup['partitions']} partitions, {setup['keys']} keys, "
        f"store {setup['store']} ({setup['segments']} segments); medians of {len(runs['sql'])} round(s); "
        "answers equal in every round\n"
    )
    print(f"{'':<36} {'seconds':>8} {'rec/s':>11} {'CPU s':>7} {'peak MB':>8} {'kafka s / this':>14}")
    rows = [
        ("pyrostore sql: count", median("sql", "count_seconds"), "", ""),
        ("pyrostore sql: group-by", median("sql", "group_seconds"), "", ""),
        (
            "pyrostore sql: both (2 processes)",
            median("sql", "seconds"),
            f"{median('sql', 'cpu'):.1f}",
            f"{median('sql', 'peak_mb'):.0f}",
        ),
        (
            "Kafka + Python: both in one read",
            kafka,
            f"{median('kafka', 'cpu'):.1f}",
            f"{median('kafka', 'peak_mb'):.0f}",
        ),
    ]
    for label, seconds, cpu, peak in rows:
        print(f"{label:<36} {seconds:>8.2f} {records / seconds:>11.0f} {cpu:>7} {peak:>8} {kafka / seconds:>14.2f}")


# --- setting up --------------------------------------------------------------------------------------------------


def kafka_ends(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """Each partition's high watermark in Kafka."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-sql-{uuid.uuid4().hex}"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions)]
    finally:
        consumer.close()


def main() -> None:
    """Start the stack, produce, archive, run both sides in rounds, check the answers, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_arguments(parser, value_size=100)
    # S3 by default: it is where users' archives are (here the stack's MinIO, on the same cores as the query)
    parser.set_defaults(records=10_000_000, store="s3")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating; medians count")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        setup = json.loads(args.args[0])
        print(json.dumps(role_sql(setup) if args.role == "sql" else role_kafka(setup)))
        return

    started, load_before = time.perf_counter(), os.getloadavg()
    with running_stack("sql") as (workdir, stack):
        setup = archived_topic(stack, workdir, "sql", args)
        setup["ends"] = kafka_ends(setup["bootstrap"], setup["topic"], args.partitions)
        setup["segments"] = segment_count(setup)
        setup["keys"] = min(10007, setup["records"])  # bench.common.produce's keys
        os.sync()  # neither side should compete with the writeback of what was just produced and archived
        setup_seconds, load_setup = time.perf_counter() - started, os.getloadavg()
        runs = run_rounds(ROLES, args.rounds, lambda _: (json.dumps(setup),), script=__file__)
    load_after = os.getloadavg()
    check(runs, setup["records"])
    report(setup, runs)
    print(
        f"\nset-up (stack, produce, archive) {setup_seconds:.0f} s; whole bench {time.perf_counter() - started:.0f} s; "
        f"load average (1 min) {load_before[0]:.2f} at start, {load_setup[0]:.2f} after set-up, "
        f"{load_after[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
