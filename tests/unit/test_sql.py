"""pyrostore sql's parts: --as-of parsing and commit choice, filesystem arguments, result formats, and queries over a
folder archive (as of a past commit, JSON values)."""

from __future__ import annotations

import io
import json
import time

import pyarrow as pa
import pytest

from pyrostore.archive import Archive
from pyrostore.errors import InvalidSetting, InvalidStoreURL, InvalidTopicName, TopicNotFound
from pyrostore.index.writer import PartitionWriter
from pyrostore.segment import encode_segment, records_to_table
from pyrostore.sql import AsOf, InvalidQuery, connect, parse_as_of, run_query
from pyrostore.sql.files import commit_millis, last_at_or_before, resolve
from pyrostore.sql.filesystems import endpoint_arguments, gcs_arguments, s3_arguments
from pyrostore.sql.output import ResultFormat, check_output, json_value, write_csv, write_jsonl
from pyrostore.store import open_store
from tests.helpers import build_partition, make_segment


def test_as_of_is_a_time_or_a_commit():
    assert parse_as_of("1764000000000") == AsOf(millis=1_764_000_000_000)
    assert parse_as_of("2025-11-24T16:00:00Z") == AsOf(millis=1_764_000_000_000)
    assert parse_as_of("orders.v1/3@17") == AsOf(topic="orders.v1", partition=3, seq=17)
    with pytest.raises(InvalidSetting, match="--as-of: 'yesterday' is neither"):
        parse_as_of("yesterday")
    with pytest.raises(InvalidTopicName, match="topic name"):
        parse_as_of("bad topic/0@1")


def test_the_last_commit_at_or_before_a_time_is_found_by_bisection():
    times = {0: 100, 1: 200, 2: 200, 3: 300, 5: 500}
    asked: list[int] = []

    def time_of(seq: int) -> int:
        asked.append(seq)
        return times[seq]

    seqs = sorted(times)
    assert last_at_or_before(seqs, 99, time_of) is None
    assert last_at_or_before(seqs, 100, time_of) == 0
    assert last_at_or_before(seqs, 250, time_of) == 2
    assert last_at_or_before(seqs, 499, time_of) == 3
    assert last_at_or_before(seqs, 10**13, time_of) == 5
    assert last_at_or_before([], 10, time_of) is None
    asked.clear()
    times.update({seq: seq for seq in range(1024)})
    assert last_at_or_before(list(range(1024)), 500, time_of) == 500
    assert len(asked) <= 11  # log2(1024) + 1 commits read, not all of them


def test_s3_arguments_translate_the_store_options():
    options = {"endpoint_url": "http://127.0.0.1:9000", "access_key_id": "a", "secret_access_key": "b"}
    assert s3_arguments(options, {}) == {
        "region": "us-east-1",
        "endpoint_override": "127.0.0.1:9000",
        "scheme": "http",
        "access_key": "a",
        "secret_key": "b",
    }
    assert s3_arguments({"region": "eu-west-3", "session_token": "t"}, {"AWS_REGION": "x"}) == {
        "region": "eu-west-3",
        "session_token": "t",
    }
    assert s3_arguments({}, {"AWS_REGION": "ap-south-1"}) == {"region": "ap-south-1"}
    with pytest.raises(InvalidStoreURL, match="endpoint_url 'localhost:9000'"):
        endpoint_arguments("localhost:9000")


def test_gcs_arguments_are_anonymous_for_an_emulator_only():
    assert gcs_arguments({"endpoint_url": "http://127.0.0.1:4443", "project": "p"}) == {
        "project_id": "p",
        "endpoint_override": "127.0.0.1:4443",
        "scheme": "http",
        "anonymous": True,
    }
    assert gcs_arguments({}) == {}


def test_results_as_jsonl_and_csv_keep_bytes_nulls_and_nested_values():
    result = pa.table(
        {
            "n": pa.array([1, None], pa.int64()),
            "b": pa.array([b"text", b"\xff\x00"], pa.binary()),
            "h": pa.array([[{"key": "k", "value": b"v"}], []]),
        }
    )
    text = io.StringIO()
    write_jsonl(result, text)
    assert [json.loads(line) for line in text.getvalue().splitlines()] == [
        {"n": 1, "b": "text", "h": [{"key": "k", "value": "v"}]},
        {"n": None, "b": {"base64": "/wA="}, "h": []},
    ]
    binary = io.BytesIO()
    write_csv(result, binary)
    assert binary.getvalue().decode().splitlines() == [
        '"n","b","h"',
        '1,"text","[{""key"": ""k"", ""value"": ""v""}]"',
        ',"{""base64"": ""/wA=""}","[]"',
    ]
    assert json_value(pa.scalar(0, pa.timestamp("ms", tz="UTC")).as_py()) == "1970-01-01T00:00:00+00:00"
    with pytest.raises(InvalidSetting, match="--output"):
        check_output(ResultFormat.PARQUET, None)


def test_as_of_reads_the_archive_as_it_was(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    writer = build_partition(store, "t", 0, segments=2)  # commits 0 (claim), 1 and 2
    time.sleep(0.01)  # commit times are in ms
    build_partition(store, "t", 1, segments=1)
    time.sleep(0.01)
    writer.append([make_segment("t", 0, 20, 10)])  # commit 3
    archive = Archive(store)
    count = 'SELECT "partition", count(*) AS n, max("offset") AS last FROM t GROUP BY 1 ORDER BY 1'

    def answer(as_of: AsOf | None) -> list[dict]:
        return run_query(connect(archive, {}, as_of), count).to_pylist()

    assert answer(None) == [{"partition": 0, "n": 30, "last": 29}, {"partition": 1, "n": 10, "last": 9}]
    assert answer(AsOf(topic="t", partition=0, seq=2)) == [
        {"partition": 0, "n": 20, "last": 19}
    ]  # partition 1 was first committed after that
    assert answer(AsOf(topic="t", partition=0, seq=1)) == [{"partition": 0, "n": 10, "last": 9}]
    assert answer(AsOf(topic="t", partition=0, seq=0)) == []  # claimed, nothing archived yet
    partition_1 = Archive(store).partition("t", 1).commit
    at = commit_millis(partition_1)
    assert answer(AsOf(millis=at)) == [{"partition": 0, "n": 20, "last": 19}, {"partition": 1, "n": 10, "last": 9}]
    assert answer(AsOf(millis=0)) == []
    with pytest.raises(TopicNotFound, match="no commit t/0@9"):
        resolve(archive, AsOf(topic="t", partition=0, seq=9))


def test_json_values_are_queryable_as_json(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    writer = PartitionWriter(store, "orders", 0)
    writer.claim(0)
    docs = [{"id": i, "customer": f"c{i % 3}", "total": i * 1.5, "items": list(range(i % 4))} for i in range(30)]
    rows = [
        (i, 1_764_000_000_000 + i, 0, b"c%d" % (i % 3), json.dumps(doc).encode(), [], 0) for i, doc in enumerate(docs)
    ]
    writer.append([encode_segment(records_to_table(rows), topic="orders", partition=0, next_offset=30)])
    query = """
        SELECT v ->> '$.customer' AS customer, sum((v ->> '$.total')::DOUBLE) AS total,
               max(json_array_length(v -> '$.items')) AS most_items
        FROM (SELECT decode(value)::JSON AS v FROM orders) GROUP BY 1 ORDER BY 1
    """
    result = run_query(connect(Archive(store), {}), query).to_pylist()
    expected = {}
    for doc in docs:
        total, items = expected.get(doc["customer"], (0.0, 0))
        expected[doc["customer"]] = (total + doc["total"], max(items, len(doc["items"])))
    assert [(r["customer"], r["total"], r["most_items"]) for r in result] == [
        (c, t, i) for c, (t, i) in sorted(expected.items())
    ]


def test_bad_sql_is_an_invalid_query_naming_the_problem(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    build_partition(store, "t", 0, segments=1)
    connection = connect(Archive(store), {})
    with pytest.raises(InvalidQuery, match="syntax error"):
        run_query(connection, "SELEC 1")
    with pytest.raises(InvalidQuery, match="nope"):
        run_query(connection, "SELECT * FROM nope")
    with pytest.raises(InvalidQuery, match="colour"):
        run_query(connection, "SELECT colour FROM t")
    assert run_query(connection, "SELECT count(*) AS n FROM t").to_pylist() == [{"n": 10}]
