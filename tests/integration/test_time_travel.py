"""Time travel on a folder and on MinIO (S3): ``pyrostore log`` lists every commit of a partition built over many
commits (two writers, a lost range, a second partition archived later), and ``pyrostore cat --as-of`` each commit,
or a time between two, returns exactly the records the archive held then."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from pyrostore.archive import open_archive
from pyrostore.index.as_of import commit_millis
from pyrostore.index.commits import Commit, iter_commits
from pyrostore.index.writer import PartitionWriter
from pyrostore.store import ObjectStore, open_store
from tests.helpers import make_segment, record

TOPIC = "history"


@dataclass
class Built:
    """An archive built commit by commit: where it is, and the offsets each commit of each partition covered."""

    url: str
    options: dict[str, str]
    store: ObjectStore
    covered: dict[int, list[list[int]]]  # partition -> seq -> offsets of the records archived up to that commit

    def commits(self, partition: int) -> list[Commit]:
        return list(iter_commits(self.store, TOPIC, partition))

    def run(self, *args: str) -> subprocess.CompletedProcess:
        flags = [arg for name, value in self.options.items() for arg in ("-o", f"{name}={value}")]
        return subprocess.run(
            [sys.executable, "-m", "pyrostore", *args[:1], self.url, *args[1:], *flags],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def cat(self, *args: str) -> dict[int, list[int]]:
        """``pyrostore cat --format jsonl``: the offsets printed, per partition."""
        result = self.run("cat", TOPIC, "--format", "jsonl", *args)
        assert result.returncode == 0, result.stderr
        printed: dict[int, list[int]] = {}
        for doc in map(json.loads, result.stdout.splitlines()):
            assert doc["payload"] == record(doc["offset"])[4].decode()
            printed.setdefault(doc["partition"], []).append(doc["offset"])
        return printed


def build(url: str, options: dict[str, str]) -> Built:
    """Partition 0: writer A claims and appends three segments; partition 1 is claimed and gets one segment; writer
    B takes partition 0 over, records offsets 30..34 as lost and appends one more segment. Commits are at least
    20 ms apart, so a time between any two picks the earlier."""
    store = open_store(url, **options)
    built = Built(url, options, store, {0: [], 1: []})

    def step(partition: int, action, added: range = range(0)) -> None:
        time.sleep(0.02)
        action()
        history = built.covered[partition]
        history.append([*(history[-1] if history else []), *added])

    first = PartitionWriter(store, TOPIC, 0, writer_id="writer-a", fanout=3)
    step(0, first.claim)
    for start in (0, 10, 20):
        step(0, lambda s=start: first.append([make_segment(TOPIC, 0, s, 10)]), range(start, start + 10))
    other = PartitionWriter(store, TOPIC, 1, writer_id="writer-c", fanout=3)
    step(1, other.claim)
    step(1, lambda: other.append([make_segment(TOPIC, 1, 0, 7)]), range(7))
    second = PartitionWriter(store, TOPIC, 0, writer_id="writer-b", fanout=3)
    step(0, second.claim)
    step(0, lambda: second.record_lost(35))
    step(0, lambda: second.append([make_segment(TOPIC, 0, 35, 5)]), range(35, 40))
    for writer in (first, other, second):
        writer.close()
    return built


@pytest.fixture(params=["folder", "s3"])
def built(request, tmp_path):
    if request.param == "folder":
        result = build(str(tmp_path / "archive"), {})
    else:
        server = request.getfixturevalue("s3_server")
        options = {
            "endpoint_url": server.endpoint,
            "region": server.region,
            "access_key_id": server.access_key,
            "secret_access_key": server.secret_key,
        }
        result = build(f"s3://{server.bucket}/time-travel-{time.time_ns()}", options)
    yield result
    result.store.close()


def expected_at(built: Built, millis: int) -> dict[int, list[int]]:
    """What the archive held at ``millis``: per partition with a commit by then, its newest commit's offsets."""
    held = {}
    for partition, covered in built.covered.items():
        seqs = [c.seq for c in built.commits(partition) if commit_millis(c) <= millis]
        if seqs and covered[seqs[-1]]:
            held[partition] = covered[seqs[-1]]
    return held


def test_log_lists_every_commit(built):
    result = built.run("log", TOPIC, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    commits = built.commits(0) + built.commits(1)
    assert [(r["partition"], r["seq"]) for r in rows] == [(0, s) for s in range(7)] + [(1, 0), (1, 1)]
    kinds = ["claim", "append", "append", "append", "claim", "lost", "append", "claim", "append"]
    assert [r["kind"] for r in rows] == kinds
    assert [(r["writer_id"], r["writer_epoch"]) for r in rows[:7]] == [("writer-a", 1)] * 4 + [("writer-b", 2)] * 3
    assert [(r["start_offset"], r["next_offset"], r["records"]) for r in rows[:7]] == [
        (0, 0, 0),
        (0, 10, 10),
        (0, 20, 20),
        (0, 30, 30),
        (0, 30, 30),
        (0, 35, 30),
        (0, 40, 35),
    ]
    for row, commit in zip(rows, commits, strict=True):
        assert row["committed_at"] == commit.committed_at
        assert row["root"] == (commit.root.digest if commit.root else None)
        assert row["segments"] == commit.segments and row["bytes"] == commit.bytes

    table = built.run("log", TOPIC, "-p", "1")
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "writer-c" in line]
    assert len(lines) == 2 and all(c.committed_at in line for c, line in zip(commits[7:], lines, strict=True))
    assert commits[8].root is not None and commits[8].root.digest in lines[1]  # never cut short

    for args, problem in [
        (("log", "elsewhere"), "holds no archive of topic 'elsewhere'"),
        (("log", TOPIC, "-p", "5"), f"holds no archive of {TOPIC}/5"),
        (("log", "bad topic"), "is not a Kafka topic name"),
    ]:
        failed = built.run(*args)
        assert failed.returncode != 0 and failed.stdout == ""
        assert len(failed.stderr.splitlines()) == 1 and problem in failed.stderr, failed.stderr


def test_cat_as_of_each_commit_returns_exactly_what_it_covered(built):
    for partition, covered in built.covered.items():
        for commit in built.commits(partition):
            printed = built.cat("-p", str(partition), "--as-of", f"{TOPIC}/{partition}@{commit.seq}")
            assert printed.get(partition, []) == covered[commit.seq], (partition, commit.seq)
            assert commit.records == len(covered[commit.seq])
    # the whole topic as of a commit of partition 0: partition 1 as it was at that commit's time
    for commit in built.commits(0):
        held = expected_at(built, commit_millis(commit))
        held[0] = built.covered[0][commit.seq]
        assert built.cat("--as-of", f"{TOPIC}/0@{commit.seq}") == {p: o for p, o in held.items() if o}
    assert built.cat() == {0: built.covered[0][-1], 1: built.covered[1][-1]}  # without --as-of: the newest


def test_cat_as_of_a_time(built):
    commits = sorted(built.commits(0) + built.commits(1), key=commit_millis)
    for before, after in itertools.pairwise(commits):
        between = (commit_millis(before) + commit_millis(after)) // 2
        assert commit_millis(before) < between < commit_millis(after)
        assert built.cat("--as-of", str(between)) == expected_at(built, between), before
    newest = commits[-1]
    assert built.cat("--as-of", newest.committed_at) == {0: built.covered[0][-1], 1: built.covered[1][-1]}
    # from Python, as of the same moments
    middle = commit_millis(commits[len(commits) // 2])
    archive = open_archive(built.url, as_of=str(middle), **built.options)
    read = {p: [r.offset for r in archive.partition(TOPIC, p).read(skip_lost=True)] for p in archive.partitions(TOPIC)}
    assert {p: offsets for p, offsets in read.items() if offsets} == expected_at(built, middle)


def test_cat_as_of_before_the_first_commit(built):
    first = built.commits(0)[0]
    before = str(commit_millis(first) - 1)
    result = built.run("cat", TOPIC, "--as-of", before)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {built.store.url} holds no archive of topic {TOPIC!r} as of "
        + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((commit_millis(first) - 1) / 1000))
        + f".{(commit_millis(first) - 1) % 1000:03d}+00:00"
    ]
    assert built.cat("--as-of", f"{TOPIC}/0@0") == {}  # claimed: there, and empty
    missing = built.run("cat", TOPIC, "--as-of", f"{TOPIC}/0@99")
    assert missing.returncode == 1 and missing.stderr.splitlines() == [
        f"error: {built.store.url} holds no commit {TOPIC}/0@99"
    ]
