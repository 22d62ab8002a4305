"""``pyrostore sql`` over an archive written by the running archiver gives the answers a plain read of the topic
from Kafka gives, from S3 (MinIO), GCS (fake-gcs-server) and a folder; crashed-writer leftovers never count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from pyrostore.archive import Archive
from pyrostore.index.commits import iter_commits, read_commit
from pyrostore.layout import ROOT_PREFIX, segment_key, segment_prefix
from pyrostore.sql import segment_urls
from pyrostore.sql.files import commit_millis
from pyrostore.sql.output import json_value
from pyrostore.store import open_store
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


def sql(
    url: str, query: str, options: dict[str, str], *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``pyrostore sql`` as a child process (with more environment variables, when given)."""
    flags = [arg for name, value in options.items() for arg in ("-o", f"{name}={value}")]
    return subprocess.run(
        [sys.executable, "-m", "pyrostore", "sql", url, query, *flags, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def sql_answers(url: str, topic: str, options: dict[str, str]) -> dict[str, list[dict]]:
    """The answers to :data:`QUERIES` from ``pyrostore sql --format jsonl``."""
    answers = {}
    for name, query in QUERIES.items():
        result = sql(url, query.format(t=topic), options, "--format", "jsonl")
        assert result.returncode == 0, result.stderr
        answers[name] = [json.loads(line) for line in result.stdout.splitlines()]
    return answers


def leave_crash_leftovers(store, topic: str, next_offsets: dict[int, int]) -> None:
    """Segments a writer uploaded and never committed: past each partition's end, and over archived offsets."""
    for p, next_offset in next_offsets.items():
        for start in (next_offset, 0):
            segment = make_segment(topic, p, start, 7)
            store.put(segment_key(topic, p, segment.base_offset, segment.digest), segment.data)


def copy_archive(source, target) -> None:
    """Every object of one store into another (the same archive in another kind of store)."""
    for info in source.list(ROOT_PREFIX):
        target.put(info.key, source.get(info.key))


@pytest.fixture(scope="module")
def archived(kafka, s3_server, tmp_path_factory):
    """The edge-case topic, archived into MinIO by the running archiver, with crash leftovers beside it."""
    topic = create_topic(kafka.bootstrap, PARTITIONS, BIG_TOPIC)
    fill_edge(kafka.bootstrap, topic)
    archive = S3Archive(s3_server)
    expected = archive.archive(kafka.bootstrap, topic, PARTITIONS, tmp_path_factory.mktemp("sql") / "archiver.log")
    store = open_store(archive.url, **archive.store_options)
    leave_crash_leftovers(store, topic, {p: rows[-1][0] + 1 for p, rows in expected.items()})
    return topic, archive, store, expected


def test_s3_answers_match_a_plain_read_from_kafka(archived):
    topic, archive, store, expected = archived
    answers = kafka_answers(expected)
    assert answers["with_header"] and len(answers["per_hour"]) >= 1 and len(answers["latest"]) > 5
    committed = segment_urls(Archive(store), topic)
    in_bucket = [info.key for info in store.list(segment_prefix(topic))]
    assert len(in_bucket) == len(committed) + 2 * PARTITIONS  # the leftovers are there, and not counted:
    assert sql_answers(archive.url, topic, archive.store_options) == answers


def test_s3_credentials_from_the_environment_reach_pyarrow(archived):
    topic, archive, _, expected = archived
    server = archive.server
    env = {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_REGION": server.region,
    }
    result = sql(
        archive.url, QUERIES["count"].format(t=topic), {"endpoint_url": server.endpoint}, "--format", "csv", env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['"n"', str(sum(len(r) for r in expected.values()))]


def test_as_of_a_commit_reads_the_archive_as_it_was(archived):
    topic, archive, store, expected = archived

    def counts(as_of: str) -> dict[int, int]:
        query = QUERIES["per_partition"].format(t=topic)
        result = sql(archive.url, query, archive.store_options, "--format", "jsonl", "--as-of", as_of)
        assert result.returncode == 0, result.stderr
        return {row["partition"]: row["n"] for row in map(json.loads, result.stdout.splitlines())}

    first = read_commit(store, topic, 0, 1)  # the first commit of partition 0 that archived records
    then = counts(f"{topic}/0@1")
    assert then[0] == first.records > 0
    assert then.get(1, 0) <= len(expected[1])
    assert 0 not in counts(f"{topic}/0@0")  # the writer's claim: nothing archived yet
    at = commit_millis(first)
    then_by_time = [c.records for c in iter_commits(store, topic, 0) if commit_millis(c) <= at][-1]
    assert counts(first.committed_at)[0] == then_by_time >= first.records


def test_folder_answers_match_and_results_are_written_as_parquet_csv_and_a_table(archived, tmp_path):
    topic, _, store, expected = archived
    folder = str(tmp_path / "archive")
    copy_archive(store, open_store(folder))
    assert sql_answers(folder, topic, {}) == kafka_answers(expected)

    result = sql(
        folder,
        f'SELECT * FROM "{topic}" ORDER BY 2, 3',
        {},
        "--format",
        "parquet",
        "--output",
        str(tmp_path / "r.parquet"),
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names[:4] == ["topic", "partition", "offset", "timestamp"]
    columns = (table.column(c).to_pylist() for c in ("partition", "offset", "value"))
    assert list(zip(*columns, strict=True)) == [(p, row[0], row[4]) for p, rows in expected.items() for row in rows]
    csv = sql(folder, QUERIES["per_partition"].format(t=topic), {}, "--format", "csv")
    assert csv.stdout.splitlines() == ['"partition","n"', *(f"{p},{len(r)}" for p, r in expected.items())]
    shown = sql(folder, QUERIES["count"].format(t=topic), {})
    assert shown.returncode == 0 and str(sum(len(r) for r in expected.values())) in shown.stdout


def test_gcs_answers_match(archived, gcs_server):
    topic, _, store, expected = archived
    url = f"gs://{gcs_server.bucket}/sql-{topic}"
    copy_archive(store, open_store(url, endpoint_url=gcs_server.endpoint, project=gcs_server.project))
    options = {"endpoint_url": gcs_server.endpoint, "project": gcs_server.project}
    assert sql_answers(url, topic, options) == kafka_answers(expected)
