"""Live latency: how long a record produced to a live partition takes to come out of ``poll()``, through
pyrostore.Consumer and through confluent_kafka.Consumer with the same settings, in one run.

Starts the stack's Kafka. Each role runs in its own process, on a topic of its own (one partition): the consumer
is assigned at the partition's end, a producer thread in the same process sends one record every
``--interval-ms`` (``linger.ms=0``, each value the send time in ns), and the consumer polls with
``poll(--poll-timeout)``; a record's latency is the time from just before its ``produce()`` to the return of the
``poll()`` that delivered it. pyrostore.Consumer reads an empty archive (a local folder), so Kafka serves every
record: this measures what the wrapper adds on the live path. Each role runs ``--rounds`` times, alternating the
order; the report gives each round's p50 and p99 and the medians over rounds, with Pyrostore's over the baseline's
(target: p50 within 1.5x, or within 2 ms, of confluent_kafka's).

    python bench/consumer_latency.py [--records 200] [--interval-ms 20] [--poll-timeout 1.0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid

from bench.common import run_rounds, running_stack

ROLES = ("kafka", "pyrostore")
WARMUP = b"warm-up"


def measure(role: str, setup: dict) -> dict:
    """One role's run: latencies of ``setup["records"]`` live records, in ms, with their p50 and p99."""
    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    import pyrostore

    topic = f"bench-latency-{role}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": setup["bootstrap"]})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    config = {"bootstrap.servers": setup["bootstrap"], "group.id": f"bench-latency-{uuid.uuid4().hex}"}
    if role == "kafka":
        consumer = Consumer(config)
    else:
        consumer = pyrostore.Consumer({**config, "pyrostore.store.url": setup["archive"]})
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    producer = Producer({"bootstrap.servers": setup["bootstrap"], "linger.ms": 0, "enable.idempotence": True})

    def send(count: int, interval: float) -> None:
        for _ in range(count):
            producer.produce(topic, str(time.perf_counter_ns()).encode())
            producer.flush(10)
            time.sleep(interval)

    # Warm-up records until one arrives: then the consumer is fetching at the end and no latency counts its start.
    warm = threading.Event()

    def warm_up() -> None:
        while not warm.is_set():
            producer.produce(topic, WARMUP)
            producer.flush(10)
            warm.wait(0.5)

    warming = threading.Thread(target=warm_up)
    warming.start()
    deadline = time.monotonic() + 60
    while (message := consumer.poll(setup["poll_timeout"])) is None or message.error() is not None:
        if time.monotonic() > deadline:
            warm.set()
            raise RuntimeError(f"{role}: no warm-up record arrived within 60 s")
    warm.set()
    warming.join()

    started = time.perf_counter()
    sender = threading.Thread(target=send, args=(setup["records"], setup["interval_ms"] / 1000))
    sender.start()
    latencies: list[float] = []
    while len(latencies) < setup["records"]:
        message = consumer.poll(setup["poll_timeout"])
        now = time.perf_counter_ns()
        if message is None or message.error() is not None or message.value() == WARMUP:
            continue
        latencies.append((now - int(message.value())) / 1e6)
    seconds = time.perf_counter() - started
    sender.join()
    consumer.close()
    cuts = statistics.quantiles(latencies, n=100)
    return {"seconds": seconds, "p50": statistics.median(latencies), "p99": cuts[98], "records": len(latencies)}


def report(runs: dict[str, list[dict]]) -> None:
    """Each round's figures, then the medians over rounds and their ratios."""
    print("\nlatency from produce() to poll() return, ms")
    for role in ROLES:
        rounds = "  ".join(f"p50 {r['p50']:.2f} p99 {r['p99']:.2f}" for r in runs[role])
        print(f"  {role:<10} {rounds}")
    median = {role: {q: statistics.median(r[q] for r in runs[role]) for q in ("p50", "p99")} for role in ROLES}
    print(f"\n{'':<6}{'confluent_kafka':>16}{'pyrostore':>12}{'ratio':>8}{'difference':>12}")
    for q in ("p50", "p99"):
        base, ours = median["kafka"][q], median["pyrostore"][q]
        print(f"{q:<6}{base:>16.2f}{ours:>12.2f}{ours / base:>8.2f}{ours - base:>12.2f}")
    p50_ok = median["pyrostore"]["p50"] <= max(1.5 * median["kafka"]["p50"], median["kafka"]["p50"] + 2)
    print(f"\ntarget (p50 within 1.5x or 2 ms of confluent_kafka's): {'met' if p50_ok else 'NOT met'}")


def main() -> None:
    """Start Kafka, measure both roles in turns, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200, help="live records per run")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="time between two records")
    parser.add_argument("--poll-timeout", type=float, default=1.0, help="the timeout given to each poll()")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each role (medians are reported)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(measure(args.role, json.loads(args.args[0]))))
        return

    with running_stack("latency") as (folder, stack):
        kafka = stack.get("kafka")
        (folder / "archive").mkdir()
        setup = {
            "bootstrap": kafka.bootstrap,
            "archive": str(folder / "archive"),
            "records": args.records,
            "interval_ms": args.interval_ms,
            "poll_timeout": args.poll_timeout,
        }
        runs = run_rounds(ROLES, args.rounds, lambda _: (json.dumps(setup),), script=__file__)
    report(runs)


if __name__ == "__main__":
    main()
