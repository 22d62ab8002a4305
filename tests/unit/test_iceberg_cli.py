"""``pyrostore iceberg sync`` as a command, in a child process, over a folder archive and a SQLite catalog: its
output, its exit codes, and one line naming the problem for bad input."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyrostore.store import open_store
from tests.helpers import build_partition, make_segment
from tests.kafka_helpers import wait_for

USAGE, RUNTIME = 2, 1


def sync(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pyrostore", "iceberg", "sync", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def archive(tmp_path: Path) -> str:
    url = str(tmp_path / "archive")
    build_partition(open_store(url), "orders", 0, segments=3)
    return url


def test_sync_then_nothing_then_only_the_new_segment(archive: str, tmp_path: Path) -> None:
    catalog = ("--catalog-uri", f"sqlite:///{tmp_path}/catalog.db")
    first = sync(archive, "--table", "kafka.orders", *catalog)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("added 3 segment(s), 30 record(s) of orders to kafka.orders (snapshot ")
    assert sync(archive, "--table", "kafka.orders", *catalog).stdout.strip() == (
        "added 0 segment(s), 0 record(s) of orders to kafka.orders"
    )
    writer = build_partition(open_store(archive), "orders", 1, segments=1)
    writer.append([make_segment("orders", 1, writer.head.next_offset, 4)])
    third = sync(archive, "--table", "kafka.orders", *catalog)
    assert third.stdout.startswith("added 2 segment(s), 14 record(s)"), third.stderr
    # With no warehouse, the table's metadata goes beside the archive.
    assert (Path(archive) / "iceberg" / "kafka" / "orders" / "metadata").is_dir()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--table", "orders", "--catalog-uri", "sqlite:///{tmp}/c.db"], USAGE, ["NAMESPACE.TABLE"]),
        (["--table", "kafka.orders"], USAGE, ["exactly one of --catalog NAME and --catalog-uri URI"]),
        (["--table", "kafka.orders", "--catalog-uri", "ftp://x"], USAGE, ["catalog ftp://x"]),
        (["--table", "kafka.a b", "--catalog-uri", "sqlite:///{tmp}/c.db"], USAGE, ["'a b'", "topic name"]),
        (["--table", "kafka.orders", "--catalog-uri", "sqlite:///{tmp}/c.db", "--interval", "soon"], USAGE, ["soon"]),
        (["--table", "kafka.nope", "--catalog-uri", "sqlite:///{tmp}/c.db"], RUNTIME, ["nope"]),
    ],
)
def test_bad_input_is_one_line(archive: str, tmp_path: Path, args: list[str], code: int, words: list[str]) -> None:
    result = sync(archive, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def test_a_table_of_another_topic_is_refused(archive: str, tmp_path: Path) -> None:
    catalog = ("--catalog-uri", f"sqlite:///{tmp_path}/catalog.db")
    assert sync(archive, "--table", "kafka.orders", *catalog).returncode == 0
    build_partition(open_store(archive), "other", 0, segments=1)
    result = sync(archive, "--table", "kafka.orders", "--topic", "other", *catalog)
    assert result.returncode == USAGE
    assert result.stderr.strip() == "error: table kafka.orders holds topic 'orders', not 'other'"


def _segments_added(log: Path) -> int:
    return sum(int(n) for n in re.findall(r"added (\d+) segment", log.read_text()))


def test_follow_syncs_each_interval_until_stopped(archive: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pyrostore", "iceberg", "sync", archive, "--table", "kafka.orders"]
    command += ["--catalog-uri", f"sqlite:///{tmp_path}/catalog.db", "--follow", "--interval", "200ms"]
    log = tmp_path / "follow.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "added 3 segment(s)" in log.read_text(), 60, "the first sync")
        writer = build_partition(open_store(archive), "orders", 1, segments=2)
        # The two segments are two archive commits: one sync may take both, or each its own.
        wait_for(lambda: _segments_added(log) == 5, 60, "the sync of the new segments")
        assert writer.head.next_offset == 20
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    assert "error" not in log.read_text()
