"""The Spark settings the stack's Spark runs with, and the row values its child process hands back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from e2e.stack import spark, spark_child


def test_local_sessions_stay_small_on_loopback_and_in_utc():
    conf = spark.local_conf((Path("/c/a.jar"), Path("/c/b.jar")))
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.jars"] == "/c/a.jar,/c/b.jar"
    assert "spark.jars" not in spark.local_conf()


def test_the_catalog_is_iceberg_jdbc_with_s3fileio_under_its_name():
    s3 = {"endpoint": "http://127.0.0.1:9000", "region": "eu-west-1", "access_key_id": "k", "secret_access_key": "s"}
    conf = spark.jdbc_catalog_conf("pyrostore", "jdbc:postgresql://h:5/db", "u", "p", "s3://b/w", s3)
    assert conf["spark.sql.catalog.pyrostore"] == "org.apache.iceberg.spark.SparkCatalog"
    assert conf["spark.sql.catalog.pyrostore.catalog-impl"] == "org.apache.iceberg.jdbc.JdbcCatalog"
    assert conf["spark.sql.catalog.pyrostore.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf["spark.sql.catalog.pyrostore.uri"] == "jdbc:postgresql://h:5/db"
    assert conf["spark.sql.catalog.pyrostore.client.region"] == "eu-west-1"
    assert conf["spark.sql.catalog.pyrostore.s3.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.sql.catalog.pyrostore.s3.path-style-access"] == "true"
    assert all(key.startswith("spark.sql.catalog.pyrostore") for key in conf)


def test_the_iceberg_runtime_matches_the_spark_and_scala_versions():
    runtime = spark.maven_packages()[0]
    minor = ".".join(spark.SPARK_VERSION.split(".")[:2])
    assert runtime == f"org.apache.iceberg:iceberg-spark-runtime-{minor}_{spark.SCALA_VERSION}:{spark.ICEBERG_VERSION}"


def test_row_values_come_back_as_they_were():
    row = {
        "key": bytearray(b"\x00\xff"),
        "at": datetime(2026, 11, 24, 12, 0, 0, 123000),  # naive, in the child's time zone (UTC)
        "headers": [{"key": "round", "value": b"2"}, {"key": "none", "value": None}],
        "n": 3,
    }
    back = spark_child.decode_rows(spark_child.encode_rows([row]))
    assert back == [{**row, "key": b"\x00\xff", "at": datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)}]
