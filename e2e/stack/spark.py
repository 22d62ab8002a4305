"""Spark for the tests: PySpark in local mode with Iceberg's Spark runtime, run as a child process.

PyPI serves PySpark as a source archive only (no wheel), which the project's lock cannot hold (it installs wheels
alone, by hash). So PySpark is a cached runtime like the stack's servers: its archive, pinned by version and
SHA-256 below, is fetched with pip and unpacked into the cache (its Python package, and the Spark jars and
launch scripts it carries as ``SPARK_HOME``); py4j's wheel, pinned the same way, beside it. Iceberg's Spark
runtime, its AWS bundle (S3FileIO) and the PostgreSQL JDBC driver come from Maven Central through
:func:`e2e.stack.cache.maven_libs`.

:func:`run_sql` runs queries in one Spark session in a child process (:mod:`e2e.stack.spark_child`: the JVM
stays out of the caller) and returns the rows; a Spark that cannot start raises ServerFailed naming the log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.stack import spark_child
from e2e.stack.cache import filled_once, maven_libs, run_step
from e2e.stack.process import ServerFailed, tail

SPARK_VERSION = "3.5.9"
SCALA_VERSION = "2.12"
ICEBERG_VERSION = "1.12.0"
POSTGRES_JDBC_VERSION = "42.7.14"
# pip's hash-checking mode: the archive and the wheel are exactly these (pyspark needs py4j >=0.10.9.7,<0.10.9.10).
_REQUIREMENTS = f"""\
pyspark=={SPARK_VERSION} --hash=sha256:ea27adc39ddac9413b8951e45aa748cbed6c785971b81386efc41938f6243d93
py4j==0.10.9.7 --hash=sha256:85defdfd2b2376eb3abf5ca6474b51ab7e0de341c75a02f46dc9b5976f5a5c1b
"""
# What the archive's setup.py would install: the package, and from deps/ the jars and the launch scripts
# (examples, data and licences are left out).
_HOME_PARTS = ("jars", "bin", "sbin")


@dataclass(frozen=True)
class SparkRuntime:
    """An unpacked PySpark: ``home`` (SPARK_HOME: ``bin/spark-submit``, ``jars/``), ``python`` (the folder holding
    the ``pyspark`` and ``py4j`` packages) and the extra ``jars`` (Iceberg, S3 access, PostgreSQL's driver)."""

    home: Path
    python: Path
    jars: tuple[Path, ...]

    def __str__(self) -> str:
        return f"{self.home} (+ {len(self.jars)} jars)"


def maven_packages() -> list[str]:
    """The Maven coordinates a Spark session reading the Iceberg table needs beside Spark itself: Iceberg's Spark
    runtime, its AWS bundle (for S3FileIO; no hadoop-aws) and the JDBC catalog's PostgreSQL driver."""
    return [
        f"org.apache.iceberg:iceberg-spark-runtime-{SPARK_VERSION.rsplit('.', 1)[0]}_{SCALA_VERSION}:{ICEBERG_VERSION}",
        f"org.apache.iceberg:iceberg-aws-bundle:{ICEBERG_VERSION}",
        f"org.postgresql:postgresql:{POSTGRES_JDBC_VERSION}",
    ]


def pyspark() -> tuple[Path, Path]:
    """PySpark and py4j unpacked into the cache, fetched by pip in hash-checking mode: (SPARK_HOME, python path)."""

    def fill(folder: Path, log: Path) -> None:
        download = folder / "download"
        requirements = folder / "requirements.txt"
        requirements.write_text(_REQUIREMENTS)
        command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "--no-deps"]
        command += ["--require-hashes", "-r", str(requirements), "-d", str(download)]
        run_step(command, cwd=folder, log=log, what=f"PySpark {SPARK_VERSION}")
        python, home = folder / "python", folder / "home"
        with tarfile.open(download / f"pyspark-{SPARK_VERSION}.tar.gz") as archive:
            top = f"pyspark-{SPARK_VERSION}"
            wanted = (f"{top}/pyspark/", *(f"{top}/deps/{part}/" for part in _HOME_PARTS))
            members = [member for member in archive.getmembers() if member.name.startswith(wanted)]
            archive.extractall(folder / "unpacked", members=members, filter="data")
        python.mkdir()
        (folder / "unpacked" / top / "pyspark").rename(python / "pyspark")
        (folder / "unpacked" / top / "deps").rename(home)
        for wheel in download.glob("py4j-*.whl"):
            with zipfile.ZipFile(wheel) as unpacked:
                unpacked.extractall(python)
        shutil.rmtree(download)
        shutil.rmtree(folder / "unpacked")

    folder = filled_once("spark", f"pyspark-{SPARK_VERSION}", fill)
    return folder / "home", folder / "python"


def iceberg_jars() -> Path:
    """A folder of :func:`maven_packages`' jars and their runtime dependencies, from Maven Central."""
    return maven_libs("spark-iceberg", ICEBERG_VERSION, maven_packages(), "Iceberg's Spark runtime jars")


def runtime() -> SparkRuntime:
    """PySpark and the Iceberg jars, fetched into the cache the first time (raises BuildError)."""
    home, python = pyspark()
    return SparkRuntime(home, python, tuple(sorted(iceberg_jars().glob("*.jar"))))


def local_conf(jars: tuple[Path, ...] = ()) -> dict[str, str]:
    """Spark settings for a small local session on a 2-core machine: times in UTC, no UI, two shuffle
    partitions, a 1 GiB driver, on the loopback address only; ``jars`` added (as ``--jars`` does)."""
    conf = {
        "spark.master": "local[2]",
        "spark.driver.memory": "1g",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if jars:
        conf["spark.jars"] = ",".join(str(jar) for jar in jars)
    return conf


def jdbc_catalog_conf(
    name: str, jdbc_url: str, user: str, password: str, warehouse: str, s3: Mapping[str, str]
) -> dict[str, str]:
    """Spark settings for the Iceberg catalog ``name``: Iceberg's JdbcCatalog at ``jdbc_url`` (the tables
    pyiceberg's SQL catalog of the same name writes) with S3FileIO; ``s3`` holds ``endpoint``, ``region``,
    ``access_key_id`` and ``secret_access_key`` (an S3 server other than AWS: path-style requests)."""
    prefix = f"spark.sql.catalog.{name}"
    return {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{prefix}.uri": jdbc_url,
        f"{prefix}.jdbc.user": user,
        f"{prefix}.jdbc.password": password,
        f"{prefix}.warehouse": warehouse,
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.s3.endpoint": s3["endpoint"],
        f"{prefix}.s3.path-style-access": "true",
        f"{prefix}.client.region": s3["region"],
        f"{prefix}.s3.access-key-id": s3["access_key_id"],
        f"{prefix}.s3.secret-access-key": s3["secret_access_key"],
    }


def run_sql(
    spark: SparkRuntime, conf: Mapping[str, str], queries: Mapping[str, str], workdir: Path, timeout: float = 600
) -> dict[str, list[dict[str, Any]]]:
    """Run each query in one Spark session (``conf`` added to :func:`local_conf`) in a child process; return
    each query's rows as dicts of Python values (bytes, datetimes in UTC, lists, dicts). The child's output goes
    to ``workdir/spark.log``. Raises ServerFailed when Spark cannot start or a query fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    request, result, log = workdir / "request.json", workdir / "result.json", workdir / "spark.log"
    request.write_text(json.dumps({"conf": {**local_conf(spark.jars), **conf}, "queries": dict(queries)}))
    env = {
        **os.environ,
        "SPARK_HOME": str(spark.home),
        "PYTHONPATH": str(spark.python),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",  # loopback only
        "TZ": "UTC",  # PySpark turns timestamps into naive datetimes in the local time zone
    }
    # A script (-P: its folder, with modules named kafka, s3, ..., stays off sys.path), so no e2e import.
    command = [sys.executable, "-P", spark_child.__file__, str(request), str(result)]
    with open(log, "ab") as out:
        try:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ServerFailed(f"spark: no answer after {timeout:.0f}s; log {log}:\n{tail(log, 30)}") from None
    if done.returncode != 0:
        raise ServerFailed(f"spark: exit {done.returncode}; log {log}:\n{tail(log, 30)}")
    return {name: spark_child.decode_rows(rows) for name, rows in json.loads(result.read_text()).items()}
