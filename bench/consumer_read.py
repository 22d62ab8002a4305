"""pyrostore.Consumer reading archived history beside confluent_kafka.Consumer reading the same records from Kafka.

Starts the stack's Kafka, produces ``--records`` records of ``--value-size`` bytes over ``--partitions``
partitions, archives them with the real archiver (``python -m pyrostore archive`` in a child process, into a
local folder or with ``--store s3`` into the stack's MinIO) until the archive holds every one, then measures,
each in its own process, reading all of them from the beginning:

- ``poll()``: confluent_kafka.Consumer from Kafka (two baselines, below) and pyrostore.Consumer from the
  archive, all assigned at OFFSET_BEGINNING on every partition, one ``poll()`` per record, touching each key and
  value;
- ``consume(1000)``: the same with ``consume(num_messages=1000)``;
- ``consume_batches()``: pyrostore.Consumer's Arrow batches until every row is read, key and value bytes summed
  per column.

The two baselines: "defaults" gets the same client settings as pyrostore.Consumer (librdkafka's defaults and a
fresh group id; Pyrostore's adds only ``pyrostore.store.*``); "tuned" adds the archiver's fetch tuning
(:data:`TUNED_FETCH`: ``fetch.queue.backoff.ms`` 20 ms instead of 1 s, which lets a plain consumer of 100 B
records fetch several times faster, docs/decisions.md). Prints records/s and MB/s (key and value bytes) of both
baselines and of pyrostore.Consumer, the ratio to each baseline (targets, against the defaults baseline: poll
records/s at least 1.0, consume_batches MB/s at least 5 times the poll baseline's), each process's peak memory,
and ``source_counts()`` to show the records came from the archive. Rates count from just before ``assign()``;
the "steady" figures count from the first record instead (leaving out connecting and the first fetch). Each role
runs ``--rounds`` times, alternating the order; the best run of each counts.

    python bench/consumer_read.py [--records 1000000] [--value-size 100] [--partitions 4] [--store folder|s3]
        [--segment-bytes 8MiB] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from bench.common import (
    add_archive_arguments,
    archived_topic,
    fastest,
    peak_rss_mb,
    run_rounds,
    running_stack,
    segment_count,
)

# The archiver's fetch tuning for its inner confluent_kafka.Consumer, as set in consumer_config() in
# pyrostore/archiver/config.py (not exposed there as a constant; keep the two in step). Fetch sizes stay at
# librdkafka's defaults there too; the archiver's other settings (read_committed, no auto commit, no EOF events)
# are for its correctness, not its speed, and are left out.
TUNED_FETCH = {"fetch.queue.backoff.ms": "20"}

# kafka: confluent_kafka.Consumer with librdkafka's defaults; tuned: the same with TUNED_FETCH.
BASELINE_ROLES = ("kafka-poll", "kafka-consume", "tuned-poll", "tuned-consume")
PYROSTORE_ROLES = ("pyrostore-poll", "pyrostore-consume", "pyrostore-batches")
# (label, defaults baseline, tuned baseline, pyrostore role)
ROWS = (
    ("poll()", "kafka-poll", "tuned-poll", "pyrostore-poll"),
    ("consume(1000)", "kafka-consume", "tuned-consume", "pyrostore-consume"),
)


def client_config(setup: dict) -> dict:
    """The client settings both consumers share: librdkafka's defaults, the bootstrap servers, a fresh group."""
    return {"bootstrap.servers": setup["bootstrap"], "group.id": f"bench-read-{uuid.uuid4().hex}"}


def pyrostore_config(setup: dict) -> dict:
    """:func:`client_config` plus the archive's store URL and options."""
    options = {f"pyrostore.store.{k}": v for k, v in setup["options"].items()}
    return {**client_config(setup), "pyrostore.store.url": setup["url"], **options}


def tuned_config(setup: dict) -> dict:
    """:func:`client_config` plus the archiver's fetch tuning (:data:`TUNED_FETCH`)."""
    return {**client_config(setup), **TUNED_FETCH}


def _consumer(setup: dict, kind: str):
    from confluent_kafka import Consumer

    import pyrostore

    if kind == "kafka":
        return Consumer(client_config(setup))
    if kind == "tuned":
        return Consumer(tuned_config(setup))
    return pyrostore.Consumer(pyrostore_config(setup))


def _open(setup: dict, kind: str):
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = _consumer(setup, kind)
    partitions = [TopicPartition(setup["topic"], p, OFFSET_BEGINNING) for p in range(setup["partitions"])]
    return consumer, partitions


def _check(message) -> None:
    from confluent_kafka import KafkaError, KafkaException

    if message.error().code() != KafkaError._PARTITION_EOF:
        raise KafkaException(message.error())


def _figures(consumer, started: float, first: float | None, count: int, nbytes: int) -> dict:
    elapsed = time.perf_counter() - started
    counts = consumer.source_counts() if hasattr(consumer, "source_counts") else None
    consumer.close()
    return {
        "seconds": elapsed,
        "first_seconds": (first or elapsed) - started,
        "records": count,
        "bytes": nbytes,
        "peak_mb": peak_rss_mb(),
        "sources": counts,
    }


def role_poll(setup: dict, kind: str) -> dict:
    """Assign every partition at OFFSET_BEGINNING and ``poll()`` until every record was read, touching each key
    and value. ``kind`` is ``kafka`` (confluent_kafka.Consumer, librdkafka's defaults), ``tuned`` (the same with
    :data:`TUNED_FETCH`) or ``pyrostore`` (pyrostore.Consumer)."""
    consumer, partitions = _open(setup, kind)
    expected = setup["records"]
    poll = consumer.poll
    count = nbytes = 0
    first = None
    started = time.perf_counter()
    consumer.assign(partitions)
    while count < expected:
        message = poll(1.0)
        if message is None:
            continue
        if message.error() is not None:
            _check(message)
            continue
        if first is None:
            first = time.perf_counter()
        count += 1
        nbytes += len(message.key()) + len(message.value())
    return _figures(consumer, started, first, count, nbytes)


def role_consume(setup: dict, kind: str) -> dict:
    """As :func:`role_poll`, with ``consume(num_messages=1000)`` calls."""
    consumer, partitions = _open(setup, kind)
    expected = setup["records"]
    consume = consumer.consume
    count = nbytes = 0
    first = None
    started = time.perf_counter()
    consumer.assign(partitions)
    while count < expected:
        for message in consume(num_messages=1000, timeout=1.0):
            if message.error() is not None:
                _check(message)
                continue
            count += 1
            nbytes += len(message.key()) + len(message.value())
        if first is None and count:
            first = time.perf_counter()
    return _figures(consumer, started, first, count, nbytes)


def role_batches(setup: dict) -> dict:
    """pyrostore.Consumer's ``consume_batches()`` until every row was read; key and value bytes summed per column
    (the same bytes the message roles count)."""
    import pyarrow.compute as pc

    consumer, partitions = _open(setup, "pyrostore")
    expected = setup["records"]
    count = nbytes = 0
    first = None
    started = time.perf_counter()
    consumer.assign(partitions)
    while count < expected:
        for batch in consumer.consume_batches(timeout=1.0):
            count += batch.num_rows
            for name in ("key", "value"):
                nbytes += pc.sum(pc.binary_length(batch.column(name))).as_py() or 0
        if first is None and count:
            first = time.perf_counter()
    return _figures(consumer, started, first, count, nbytes)


def run(role: str, setup: dict) -> dict:
    """Run ``role`` in this process and return its figures."""
    kind, _, how = role.partition("-")
    if how == "poll":
        return role_poll(setup, kind)
    if how == "consume":
        return role_consume(setup, kind)
    return role_batches(setup)


def _rate(figures: dict) -> tuple[float, float]:
    return figures["records"] / figures["seconds"], figures["bytes"] / figures["seconds"] / 1e6


def _steady(figures: dict) -> float:
    """Records/s after the first record arrived (leaves out connecting, assigning and the first fetch)."""
    return figures["records"] / max(figures["seconds"] - figures["first_seconds"], 1e-9)


def _cells(figures: dict, width: int) -> str:
    """A run's records/s (``width`` wide), MB/s and peak MB."""
    records_s, mb_s = _rate(figures)
    return f"{records_s:>{width}.0f} {mb_s:>6.1f} {figures['peak_mb']:>7.0f}"


def _row(label: str, defaults: dict, tuned: dict, ours: dict, measure, target: str) -> None:
    """One line of the comparison: both baselines' and pyrostore's figures, pyrostore's ``measure`` (records/s or
    MB/s of a run) over each baseline's, and the steady records/s ratios."""
    print(
        f"{label:<17} | {_cells(defaults, 14)} | {_cells(tuned, 11)} | {_cells(ours, 15)} | "
        f"{measure(ours) / measure(defaults):>11.2f} {measure(ours) / measure(tuned):>8.2f} {target:>6} | "
        f"{_steady(ours) / _steady(defaults):>18.2f} {_steady(ours) / _steady(tuned):>8.2f}"
    )


def report(setup: dict, best: dict[str, dict], runs: dict[str, list[dict]]) -> None:
    """Print every run, then the comparison table of the best runs."""
    print(
        f"\n{'role':<18} {'run':>3} {'seconds':>8} {'first s':>8} {'rec/s':>10} {'steady':>10} {'MB/s':>7} "
        f"{'peak MB':>8}  sources"
    )
    for role, figures in runs.items():
        for i, run_ in enumerate(figures):
            records_s, mb_s = _rate(run_)
            print(
                f"{role:<18} {i:>3} {run_['seconds']:>8.2f} {run_['first_seconds']:>8.2f} {records_s:>10.0f} "
                f"{_steady(run_):>10.0f} {mb_s:>7.1f} {run_['peak_mb']:>8.0f}  {run_['sources'] or ''}"
            )
    print(
        f"\n{setup['records']} records of {setup['value_size']} B over {setup['partitions']} partitions, "
        f"store {setup['store']} ({setup['segments']} segments); best of {len(runs['kafka-poll'])} "
        "(steady: records/s after the first record)\n"
    )
    print(
        f"{'read':<17} | {'defaults rec/s':>14} {'MB/s':>6} {'peak MB':>7} | {'tuned rec/s':>11} {'MB/s':>6} "
        f"{'peak MB':>7} | {'pyrostore rec/s':>15} {'MB/s':>6} {'peak MB':>7} | {'vs defaults':>11} {'vs tuned':>8} "
        f"{'target':>6} | {'steady vs defaults':>18} {'vs tuned':>8}"
    )
    for label, default_role, tuned_role, role in ROWS:
        target = ">= 1.0" if default_role == "kafka-poll" else ""
        _row(label, best[default_role], best[tuned_role], best[role], lambda f: _rate(f)[0], target)
    (_, d_mb), (_, t_mb), (_, p_mb) = (_rate(best[r]) for r in ("kafka-consume", "tuned-consume", "pyrostore-batches"))
    _row(
        "consume_batches()",
        best["kafka-poll"],
        best["tuned-poll"],
        best["pyrostore-batches"],
        lambda f: _rate(f)[1],
        ">= 5",
    )
    print(
        f"{'':<17}   (consume_batches() ratios are MB/s vs poll(); vs consume(1000): defaults {p_mb / d_mb:.2f}, "
        f"tuned {p_mb / t_mb:.2f})"
    )
    for role in PYROSTORE_ROLES:
        sources = best[role]["sources"]
        if sources is None or sources.get("archive") != setup["records"] or sources.get("kafka"):
            print(f"WARNING: {role} did not read every record from the archive: {sources}")


def main() -> None:
    """Start Kafka (and MinIO for ``--store s3``), produce, archive, measure every role, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_arguments(parser, value_size=100)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each role (the best counts)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(run(args.role, json.loads(args.args[0]))))
        return

    with running_stack("read") as (workdir, stack):
        setup = archived_topic(stack, workdir, "read", args)
        setup["segments"] = segment_count(setup)
        roles = [*BASELINE_ROLES, *PYROSTORE_ROLES]
        runs = run_rounds(roles, args.rounds, lambda _: (json.dumps(setup),), script=__file__)
        for role, figures in runs.items():
            assert all(f["records"] == setup["records"] for f in figures), (role, figures)

    report(setup, fastest(runs), runs)


if __name__ == "__main__":
    main()
