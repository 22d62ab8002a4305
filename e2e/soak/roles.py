"""The soak's roles that are our own code, each run as ``python -m e2e.soak.roles ROLE CONFIG_JSON`` in a child
process (so that its memory is its own): the fault proxies, the producer and the two readers.

Each role writes its figures as JSON to the ``status`` file of its config about once a second (replacing the
file whole), and once more when SIGTERM ends it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

TICK = 1.0
GAPS = 20  # skips or repeats a reader keeps the place of


def digest(previous: int, value: bytes | None) -> int:
    """A running CRC-32 over the values of a partition in offset order: equal digests, equal contents."""
    return zlib.crc32(value or b"", previous)


def write_status(path: str, figures: dict[str, Any]) -> None:
    """Replace the status file at once (write beside it, then rename), so a reader never sees half of it."""
    partial = Path(path + ".partial")
    partial.write_text(json.dumps(figures))
    partial.replace(path)


def read_status(path: str | Path) -> dict[str, Any] | None:
    """The role's last figures, or None before its first."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def _stopping() -> threading.Event:
    """An event set by SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def proxies(config: dict[str, Any]) -> None:
    """One HTTP fault proxy in front of the S3 server for each component named in ``config["components"]``
    (so that faults are counted per component), each failing ``share`` of its requests with every kind."""
    from e2e.stack.faults import KINDS, FaultProxy

    stop = _stopping()
    running = {}
    for i, name in enumerate(config["components"]):
        proxy = FaultProxy(config["upstream"], "s3", seed=config["seed"] + i).start()
        proxy.configure(config["share"], KINDS, stall_seconds=config["stall_seconds"])
        running[name] = proxy

    def figures() -> dict[str, Any]:
        return {name: {"endpoint": p.endpoint, "counts": p.counts()} for name, p in running.items()}

    while not stop.wait(TICK):
        write_status(config["status"], figures())
    for proxy in running.values():
        proxy.stop()
    write_status(config["status"], figures())


def producer(config: dict[str, Any]) -> None:
    """Numbered records (value ``value-<i>``, keys over 97 values, a ``seq`` header) spread over the topic's
    partitions by key, idempotent, one every ``pause`` seconds until SIGTERM; then flush them all."""
    from confluent_kafka import Producer

    stop = _stopping()
    failed: Counter[str] = Counter()
    delivered = 0

    def acked(error: Any, _message: Any) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            failed[str(error.code())] += 1

    client = Producer({"bootstrap.servers": config["bootstrap"], "enable.idempotence": True, "linger.ms": 5})
    sent, last = 0, time.monotonic()
    while not stop.is_set():
        client.produce(
            config["topic"],
            b"value-%d" % sent,
            b"key-%d" % (sent % 97),
            headers=[("seq", b"%d" % sent)],
            on_delivery=acked,
        )
        sent += 1
        client.poll(0)
        time.sleep(config["pause"])
        if time.monotonic() - last > TICK:
            write_status(config["status"], {"sent": sent, "delivered": delivered, "failed": dict(failed)})
            last = time.monotonic()
    unflushed = client.flush(120)
    write_status(
        config["status"],
        {"sent": sent, "delivered": delivered, "failed": dict(failed), "unflushed": unflushed, "done": True},
    )


class Tally:
    """What a reader saw of each partition: records, the next offset it expects, records delivered again
    (an offset below that), records skipped (an offset above it), and the digest of the values in order."""

    def __init__(self, partitions: int) -> None:
        self.records = 0
        self.next = [0] * partitions
        self.doubled = [0] * partitions
        self.skipped = [0] * partitions
        self.digests = [0] * partitions
        self.errors: Counter[str] = Counter()
        self.gaps: list[list[int]] = []  # the first GAPS skips or repeats: partition, offset expected, offset seen

    def see(self, partition: int, offset: int, value: bytes | None) -> None:
        """Count one record."""
        self.records += 1
        expected = self.next[partition]
        if offset != expected:
            logging.warning("partition %d: expected offset %d, got %d", partition, expected, offset)
            if len(self.gaps) < GAPS:
                self.gaps.append([partition, expected, offset])
        if offset < expected:
            self.doubled[partition] += 1
            return
        self.skipped[partition] += offset - expected
        self.next[partition] = offset + 1
        self.digests[partition] = digest(self.digests[partition], value)

    def figures(self) -> dict[str, Any]:
        """The tally as JSON-ready figures."""
        return {
            "records": self.records,
            "next": self.next,
            "doubled": self.doubled,
            "skipped": self.skipped,
            "digests": self.digests,
            "errors": dict(self.errors),
            "gaps": self.gaps,
        }


def reader(config: dict[str, Any]) -> None:
    """Read every partition of the topic from its beginning until SIGTERM, counting each (partition, offset):
    a ``pyrostore.Consumer`` (``kind`` pyrostore: the archive, then live Kafka) or a plain
    ``confluent_kafka.Consumer`` (``kind`` serve: through ``pyrostore serve``)."""
    import confluent_kafka
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    import pyrostore

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = _stopping()
    conf = {
        "group.id": f"soak-{config['kind']}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **config["conf"],
    }
    cls = pyrostore.Consumer if config["kind"] == "pyrostore" else confluent_kafka.Consumer
    consumer = cls(conf)
    partitions = config["partitions"]
    consumer.assign([TopicPartition(config["topic"], p, OFFSET_BEGINNING) for p in range(partitions)])
    tally, last = Tally(partitions), time.monotonic()
    while not stop.is_set():
        for message in consumer.consume(num_messages=500, timeout=0.5):
            if (error := message.error()) is not None:
                tally.errors[error.name()] += 1
                logging.warning("consume: %s", error)
            else:
                tally.see(message.partition() or 0, message.offset() or 0, message.value())
        if time.monotonic() - last > TICK:
            write_status(config["status"], tally.figures())
            last = time.monotonic()
    consumer.close()
    write_status(config["status"], {**tally.figures(), "done": True})


ROLES = {"proxies": proxies, "producer": producer, "reader": reader}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
