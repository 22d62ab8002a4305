"""``pyrostore sql`` over an archive written by the running archiver gives the answers a plain read of the topic
from Kafka gives, from S3 (MinIO), GCS (fake-gcs-server) and a folder; crashed-writer leftovers never count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pyrostore.archive import Archive
from pyrostore.index.commits import iter_commits, read_commit
from pyrostore.layout import ROOT_PREFIX, segment_prefix
from pyrostore.sql import segment_urls
from pyrostore.sql.files import commit_millis
from pyrostore.store import open_store
from tests.helpers import build_partition
from tests.sql_helpers import PARTITIONS, QUERIES, archive_edge_topic, kafka_answers


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


def copy_archive(source, target) -> None:
    """Every object of one store into another (the same archive in another kind of store)."""
    for info in source.list(ROOT_PREFIX):
        target.put(info.key, source.get(info.key))


@pytest.fixture(scope="module")
def archived(kafka, s3_server, tmp_path_factory):
    """The edge-case topic, archived into MinIO by the running archiver, with crash leftovers beside it."""
    return archive_edge_topic(kafka.bootstrap, s3_server, tmp_path_factory.mktemp("sql") / "archiver.log")


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


def test_an_s3_server_with_a_private_ca_is_trusted_with_ca_bundle(s3_tls_server):
    """MinIO over HTTPS with the stack's test CA: ``-o ca_bundle=FILE`` reaches pyarrow's S3 filesystem too; without
    it the query fails with one line (no traceback)."""
    url = f"s3://{s3_tls_server.bucket}/sql-tls-{os.urandom(4).hex()}"
    options = {"endpoint_url": s3_tls_server.endpoint, "region": "us-east-1"}
    keys = {"AWS_ACCESS_KEY_ID": s3_tls_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_tls_server.secret_key}
    trusted = {**options, "ca_bundle": str(s3_tls_server.ca_file)}
    build_partition(open_store(url, **trusted, **_keys(s3_tls_server)), "orders", 0, segments=2)
    result = sql(url, 'SELECT count(*) AS n FROM "orders"', trusted, "--format", "csv", env=keys)
    assert result.returncode == 0 and result.stdout.splitlines()[1:] == ["20"], result.stderr
    refused = sql(url, 'SELECT count(*) AS n FROM "orders"', options, "--format", "csv", env=keys)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "certificate" in refused.stderr, refused.stderr


def _keys(server) -> dict[str, str]:
    return {"access_key_id": server.access_key, "secret_access_key": server.secret_key}
