"""Test helpers for replay: archives built directly from records, and ``pyrostore replay`` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable

from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.store import open_store
from tests.kafka_helpers import ChildProcess

KEEP_FOREVER = {"retention.ms": "-1"}
"""Target topic configuration for tests: replayed records keep old timestamps, which time retention deletes."""


def numbered_record(offset: int, value_size: int = 0) -> tuple:
    """Archived record ``offset`` of a test partition (segment tuple order), a pure function of the offset."""
    value = b"value-%d-" % offset
    return (
        offset,
        1_700_000_000_000 + offset * 10,
        0,
        b"key-%d" % (offset % 97),
        value + b"x" * max(0, value_size - len(value)),
        [("n", b"%d" % offset)],
        0,
    )


def build_archive(
    url: str,
    topic: str,
    partitions: int,
    records: int,
    per_segment: int = 1000,
    record: Callable[[int], tuple] = numbered_record,
    offsets: Callable[[int], Iterable[int]] | None = None,
) -> None:
    """Archive ``records`` records (``record(offset)``) in each partition, ``per_segment`` per segment.

    ``offsets(partition)`` may give each partition's own offsets (gaps allowed); default ``0..records-1``.
    """
    store = open_store(url)
    for p in range(partitions):
        wanted = list(offsets(p)) if offsets else list(range(records))
        writer = PartitionWriter(store, topic, p)
        writer.claim(0)
        for i in range(0, len(wanted), per_segment):
            rows = [record(o) for o in wanted[i : i + per_segment]]
            segment = encode_segment(records_to_table(rows), topic=topic, partition=p, next_offset=rows[-1][0] + 1)
            writer.append([segment])
    store.close()


def replay_args(bootstrap: str, store: str, topic: str, to_topic: str, *extra: str) -> list[str]:
    """The command line of ``pyrostore replay`` with JSON logs."""
    return [
        sys.executable,
        "-m",
        "pyrostore",
        "replay",
        "--store",
        store,
        "-t",
        topic,
        "--to-topic",
        to_topic,
        "-b",
        bootstrap,
        "--log-format",
        "json",
        *extra,
    ]


def run_replay(bootstrap: str, store: str, topic: str, to_topic: str, *extra: str) -> subprocess.CompletedProcess:
    """Run ``pyrostore replay`` to the end; return its result (text output)."""
    args = replay_args(bootstrap, store, topic, to_topic, *extra)
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ})


class ReplayProcess(ChildProcess):
    """``pyrostore replay`` as a child process that a test may kill."""

    def wait(self, timeout: float = 300) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout)


def without_offsets(rows: dict[int, list[tuple]]) -> dict[int, list[tuple]]:
    """Rows as a target topic must reproduce them: timestamp, key, value, headers (offsets and epochs differ)."""
    return {p: [(r[2], r[3], r[4], r[5]) for r in found] for p, found in rows.items()}


def as_kafka_row(record: tuple) -> tuple:
    """An archived record tuple (segment order) in ``kafka_rows``' order: offset, type, timestamp, key, ..."""
    offset, timestamp, timestamp_type, key, value, headers, epoch = record
    return (offset, timestamp_type, timestamp, key, value, headers, epoch)
