"""Shared by the SQL tests: the edge-case topic archived by the running archiver with crash leftovers beside it,
the queries every route answers, and the answers a plain read of the topic from Kafka gives."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from e2e.stack.s3 import S3Server
from pyrostore.layout import segment_key
from pyrostore.sql.output import json_value
from pyrostore.store import ObjectStore, open_store
from tests.consumer_helpers import S3Archive, create_topic
from tests.helpers import make_segment
from tests.served_topics import BIG_TOPIC, fill_edge

PARTITIONS = 2
HEADER = ("round", b"2")  # a header some transactional records of partition 1 carry

# name -> (SQL over the view {t}, the same answer computed from Kafka's rows)
QUERIES = {
    "count": 'SELECT count(*) AS n FROM "{t}"',
    "per_partition": 'SELECT "partition", count(*) AS n FROM "{t}" GROUP BY 1 ORDER BY 1',
    "offsets": 'SELECT "partition", min("offset") AS first, max("offset") AS last FROM "{t}" GROUP BY 1 ORDER BY 1',
    "latest": 'SELECT "partition", key, arg_max(value, "offset") AS value FROM "{t}" GROUP BY 1, 2 ORDER BY 1, 2',
    "with_header": (
        'SELECT "partition", "offset" FROM "{t}" '
        "WHERE len(list_filter(headers, lambda h: h.key = 'round' AND h.value = encode('2'))) > 0 ORDER BY 1, 2"
    ),
    "per_hour": 'SELECT date_trunc(\'hour\', "timestamp") AS hour, count(*) AS n FROM "{t}" GROUP BY 1 ORDER BY 1',
}


def kafka_answers(rows: dict[int, list]) -> dict[str, list[dict]]:
    """The answers to :data:`QUERIES` from Kafka's rows (offset, type, timestamp, key, value, headers, epoch)."""
    everything = [(p, row) for p, partition_rows in rows.items() for row in partition_rows]
    latest: dict[tuple, bytes | None] = {}
    for p, row in everything:
        latest[(p, row[3])] = row[4]  # in offset order: the last one wins
    hours = Counter(
        datetime.fromtimestamp(row[2] / 1000, UTC).replace(minute=0, second=0, microsecond=0) for _, row in everything
    )
    answers = {
        "count": [{"n": len(everything)}],
        "per_partition": [{"partition": p, "n": len(r)} for p, r in rows.items() if r],
        "offsets": [{"partition": p, "first": r[0][0], "last": r[-1][0]} for p, r in rows.items() if r],
        "latest": [
            {"partition": p, "key": key, "value": value}
            for (p, key), value in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or b""))
        ],
        "with_header": [{"partition": p, "offset": row[0]} for p, row in everything if HEADER in row[5]],
        "per_hour": [{"hour": hour, "n": n} for hour, n in sorted(hours.items())],
    }
    return {name: [json_value(answer) for answer in found] for name, found in answers.items()}


def leave_crash_leftovers(store: ObjectStore, topic: str, next_offsets: dict[int, int]) -> None:
    """Segments a writer uploaded and never committed: past each partition's end, and over archived offsets."""
    for p, next_offset in next_offsets.items():
        for start in (next_offset, 0):
            segment = make_segment(topic, p, start, 7)
            store.put(segment_key(topic, p, segment.base_offset, segment.digest), segment.data)


def archive_edge_topic(
    bootstrap: str, s3_server: S3Server, log: Path
) -> tuple[str, S3Archive, ObjectStore, dict[int, list]]:
    """The edge-case topic, archived into MinIO by the running archiver, with crash leftovers beside it: (topic,
    archive, its store, Kafka's rows by partition)."""
    topic = create_topic(bootstrap, PARTITIONS, BIG_TOPIC)
    fill_edge(bootstrap, topic)
    archive = S3Archive(s3_server)
    expected = archive.archive(bootstrap, topic, PARTITIONS, log)
    store = open_store(archive.url, **archive.store_options)
    leave_crash_leftovers(store, topic, {p: rows[-1][0] + 1 for p, rows in expected.items()})
    return topic, archive, store, expected
