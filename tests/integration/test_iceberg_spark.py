"""The edge-case topic, archived by the running archiver with crash leftovers beside it and synced with
``pyrostore iceberg sync`` into the stack's PostgreSQL catalog, answers the SQL tests' queries as a plain read of
the topic from Kafka does: through Spark (PySpark in local mode, Iceberg's Spark runtime, JdbcCatalog on the same
PostgreSQL, S3FileIO on MinIO), and through a pyiceberg scan of the table."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from e2e.stack import spark
from pyrostore.archive import Archive
from pyrostore.iceberg import URI_CATALOG_NAME
from pyrostore.sql.output import json_value
from pyrostore.sql.session import run_query
from tests.iceberg_helpers import committed_files, s3_properties
from tests.integration.test_iceberg_sync import Sync
from tests.sql_helpers import QUERIES, archive_edge_topic, kafka_answers

NAMESPACE = "kafka"

# QUERIES in Spark SQL's dialect, over the table {t}.
SPARK_QUERIES = {
    "count": "SELECT count(*) AS n FROM {t}",
    "per_partition": "SELECT `partition`, count(*) AS n FROM {t} GROUP BY 1 ORDER BY 1",
    "offsets": "SELECT `partition`, min(`offset`) AS `first`, max(`offset`) AS `last` FROM {t} GROUP BY 1 ORDER BY 1",
    # Spark sorts NULLs first by default; DuckDB (and the answers) last.
    "latest": (
        "SELECT `partition`, key, max_by(value, `offset`) AS value FROM {t} GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST"
    ),
    "with_header": (
        "SELECT `partition`, `offset` FROM {t} "
        "WHERE exists(headers, h -> h.key = 'round' AND h.value = encode('2', 'UTF-8')) ORDER BY 1, 2"
    ),
    "per_hour": "SELECT date_trunc('HOUR', `timestamp`) AS hour, count(*) AS n FROM {t} GROUP BY 1 ORDER BY 1",
}


@pytest.fixture(scope="module")
def synced(kafka, s3_server, postgres_server, tmp_path_factory):
    """The archived edge-case topic (with crash leftovers) synced into the table ``kafka.<topic>`` of the
    PostgreSQL catalog: (topic, archive, store, Kafka's rows)."""
    folder = tmp_path_factory.mktemp("iceberg-spark")
    topic, archive, store, expected = archive_edge_topic(kafka.bootstrap, s3_server, folder / "archiver.log")
    Sync(archive, topic, postgres_server.sqlalchemy_url(), folder / "sync.log").run()
    return topic, archive, store, expected


def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result rows in the form ``kafka_answers`` gives (bytes as text or base64, times as ISO 8601)."""
    return [json_value(row) for row in rows]


def test_spark_answers_match_a_plain_read_from_kafka(synced, s3_server, postgres_server, tmp_path):
    topic, _, store, expected = synced
    conf = spark.jdbc_catalog_conf(
        URI_CATALOG_NAME,  # JdbcCatalog keeps tables per catalog name: the one the sync wrote
        postgres_server.jdbc_url,
        postgres_server.user,
        postgres_server.password,
        f"s3://{s3_server.bucket}/warehouse",
        {
            "endpoint": s3_server.endpoint,
            "region": s3_server.region,
            "access_key_id": s3_server.access_key,
            "secret_access_key": s3_server.secret_key,
        },
    )
    table = f"{URI_CATALOG_NAME}.{NAMESPACE}.`{topic}`"
    queries = {name: query.format(t=table) for name, query in SPARK_QUERIES.items()}
    queries["files"] = f"SELECT file_path FROM {table}.files ORDER BY 1"  # what Spark plans: the committed segments
    answers = spark.run_sql(spark.runtime(), conf, queries, tmp_path / "spark")

    assert [row["file_path"] for row in answers.pop("files")] == committed_files(Archive(store), topic)
    assert {name: plain(rows) for name, rows in answers.items()} == kafka_answers(expected)


def test_a_pyiceberg_scan_answers_as_kafka(synced, s3_server, postgres_server):
    topic, _, _, expected = synced
    catalog = SqlCatalog(URI_CATALOG_NAME, uri=postgres_server.sqlalchemy_url(), **s3_properties(s3_server))
    scanned = catalog.load_table((NAMESPACE, topic)).scan().to_arrow()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # per_hour truncates in UTC, as pyrostore sql does
    connection.register(topic, scanned)
    answers = {name: plain(run_query(connection, query.format(t=topic)).to_pylist()) for name, query in QUERIES.items()}
    assert answers == kafka_answers(expected)
