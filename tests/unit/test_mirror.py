"""The mirror on real folder stores: exact copies, only what the target lacks, safe at every crash point,
damage and divergence refused, and the cost of one new commit on a 100,000-segment archive."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrostore.archive import Archive
from pyrostore.errors import ArchivesDiverged, IntegrityError
from pyrostore.index import tree
from pyrostore.index.commits import Commit, create_commit, now, write_head
from pyrostore.index.node import Entry
from pyrostore.index.writer import PartitionWriter
from pyrostore.layout import commit_key, head_key, topic_key
from pyrostore.mirror import Mirror, MirrorOptions, diff_archives
from pyrostore.store import ObjectStore, open_store
from tests.helpers import build_partition, make_segment
from tests.mirror_helpers import CountingStore, Crash, problems, reachable, roots

TOPIC = "orders"


def archive_rows(store: ObjectStore, partition: int) -> list[tuple]:
    reader = Archive(store).partition(TOPIC, partition)
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in reader.read(skip_lost=True)]


def append(store: ObjectStore, partition: int, segments: int, per_segment: int = 3, fanout: int = 3) -> None:
    """Archive more segments into a partition, one commit each, as a writer claiming it anew."""
    writer = PartitionWriter(store, TOPIC, partition, fanout=fanout)
    writer.claim(0)
    for _ in range(segments):
        writer.append([make_segment(TOPIC, partition, writer.head.next_offset, per_segment)])
    writer.close()


@pytest.fixture
def source(tmp_path: Path) -> ObjectStore:
    """Two partitions of ``orders`` with claims, appends and a lost range, and a topic descriptor."""
    store = open_store(str(tmp_path / "source"))
    build_partition(store, TOPIC, 0, segments=9, fanout=3).close()
    writer = build_partition(store, TOPIC, 1, segments=2, fanout=3)
    writer.record_lost(writer.head.next_offset + 50)
    writer.append([make_segment(TOPIC, 1, writer.head.next_offset, 4)])
    writer.close()
    descriptor = {"cluster_id": "c", "created_at": now(), "format": 1, "topic": TOPIC, "topic_id": "t"}
    store.create(topic_key(TOPIC), json.dumps(descriptor, sort_keys=True, indent=2).encode())
    return store


def test_the_target_becomes_an_exact_readable_copy_and_a_rerun_copies_nothing(source, tmp_path):
    target = open_store(str(tmp_path / "target"))
    states = Mirror(source, target).run_once()
    assert [(s.partition, s.target_seq, s.pending) for s in states] == [(0, 9, 0), (1, 4, 0)]
    assert roots(target, TOPIC, range(2)) == roots(source, TOPIC, range(2))
    assert problems(target) == []
    for partition in (0, 1):
        assert archive_rows(target, partition) == archive_rows(source, partition)
        assert reachable(target, TOPIC, partition) == reachable(source, TOPIC, partition)
    assert target.get(topic_key(TOPIC)) == source.get(topic_key(TOPIC))
    counted = CountingStore(target)
    Mirror(source, counted).run_once()
    assert counted.calls["put"] + counted.calls["create"] == 0


def test_garbage_in_the_source_is_not_copied(source, tmp_path):
    stray = make_segment(TOPIC, 0, 10_000, 2)
    source.put(stray.key, stray.data)  # an upload whose commit never came
    target = open_store(str(tmp_path / "target"))
    Mirror(source, target).run_once()
    assert stray.key not in {info.key for info in target.list("")}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    later=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    fanout=st.integers(2, 4),
)
def test_a_later_pass_copies_exactly_what_the_new_commits_reach_and_the_target_lacks(first, later, fanout):
    with tempfile.TemporaryDirectory() as folder:
        source, target = open_store(f"{folder}/source"), open_store(f"{folder}/target")
        for count in first:
            append(source, 0, count, fanout=fanout)
        Mirror(source, target).run_once()
        copied_seq, held = roots_seq(target), reachable(target, TOPIC, 0)
        for count in later:
            append(source, 0, count, fanout=fanout)
        counted = CountingStore(target)
        Mirror(source, counted).run_once()
        expected = reachable(source, TOPIC, 0, after=copied_seq) - held
        new_commits = {commit_key(TOPIC, 0, seq) for seq in range(copied_seq + 1, roots_seq(source) + 1)}
        written = [key for key in counted.written_keys if key != head_key(TOPIC, 0)]
        assert sorted(written) == sorted(expected | new_commits)
        assert len(written) == len(set(written))  # nothing written twice
        assert problems(target) == []
        assert roots(target, TOPIC, range(1)) == roots(source, TOPIC, range(1))


def roots_seq(store: ObjectStore) -> int:
    return Archive(store).partition(TOPIC, 0).commit.seq


def test_a_crash_at_any_write_leaves_a_valid_target_and_a_rerun_converges(source, tmp_path):
    total = CountingStore(open_store(str(tmp_path / "count")))
    Mirror(source, total).run_once()
    writes = total.calls["put"] + total.calls["create"]
    assert writes > 40
    for crash_at in range(1, writes + 1):
        target = open_store(str(tmp_path / f"target-{crash_at}"))
        with pytest.raises(Crash):
            Mirror(source, CountingStore(target, crash_at)).run_once()
        assert problems(target) == [], f"after a crash at write {crash_at}"
        Mirror(source, target).run_once()
        assert roots(target, TOPIC, range(2)) == roots(source, TOPIC, range(2))
        assert problems(target) == []


def test_a_damaged_source_segment_stops_the_mirror_naming_it_and_is_never_copied(source, tmp_path):
    victim = sorted(reachable(source, TOPIC, 0) - {k for k in reachable(source, TOPIC, 0) if "/index/" in k})[4]
    data = bytearray(source.get(victim))
    data[len(data) // 2] ^= 0x01
    source.put(victim, bytes(data))
    target = open_store(str(tmp_path / "target"))
    with pytest.raises(IntegrityError, match=victim.replace(".", r"\.")):
        Mirror(source, target).run_once()
    assert victim not in {info.key for info in target.list("")}
    assert problems(target) == []


def test_a_damaged_source_node_stops_the_mirror_naming_it(source, tmp_path):
    victim = sorted(k for k in reachable(source, TOPIC, 0) if "/index/" in k)[0]
    source.put(victim, source.get(victim).replace(b'"format":1', b'"format":1 '))
    target = open_store(str(tmp_path / "target"))
    with pytest.raises(IntegrityError, match=victim.rsplit("/", 1)[-1]):
        Mirror(source, target).run_once()
    assert victim not in {info.key for info in target.list("")}
    assert problems(target) == []


def test_a_target_ahead_of_the_source_is_refused_naming_topic_partition_and_seq(source, tmp_path):
    target = open_store(str(tmp_path / "target"))
    Mirror(source, target).run_once()
    append(target, 1, 1)  # another writer appends to the copy
    with pytest.raises(ArchivesDiverged, match=r"orders/1: the target holds commit 6, which the source does not"):
        Mirror(source, target).run_once()


def test_a_different_commit_at_the_same_seq_is_refused(source, tmp_path):
    target = open_store(str(tmp_path / "target"))
    Mirror(source, target, MirrorOptions(topics=(TOPIC,))).run_once()
    append(source, 0, 1)
    append(target, 0, 1)  # both claimed seq 10 and appended seq 11, with different writers
    with pytest.raises(ArchivesDiverged, match=r"orders/0: the target's commit 11 differs from the source's"):
        Mirror(source, target).run_once()


def test_diff_finds_the_newest_common_commit_and_what_each_side_lacks(source, tmp_path):
    target = open_store(str(tmp_path / "target"))
    Mirror(source, target).run_once()
    append(source, 0, 1)
    diffs = {d.partition: d for d in diff_archives(source, target)}
    assert diffs[1].same and diffs[1].roots_equal and diffs[1].source_only == diffs[1].target_only == ()
    d = diffs[0]
    assert (d.source_seq, d.target_seq, d.common_seq, d.roots_equal) == (11, 9, 9, False)
    new = reachable(source, TOPIC, 0) - reachable(target, TOPIC, 0)
    assert set(d.source_only) == new and any("/data/" in key for key in d.source_only)
    assert d.source_only_bytes == sum(source.stat(k).size for k in new if "/data/" in k)
    assert all("/index/" in key for key in d.target_only)  # the old right edge, replaced in the source


def pyrostore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyrostore", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_the_commands_mirror_and_diff(source, tmp_path):
    src, dst = source.url, str(tmp_path / "target")
    first = pyrostore("diff", src, dst)
    assert first.returncode == 1, first.stderr
    done = pyrostore("mirror", src, dst, "--log-format", "text", "--rate-limit", "10MB")
    assert done.returncode == 0, done.stderr
    assert "copied 15 commit(s)" in done.stderr and "2 partition(s) up to date" in done.stderr
    same = pyrostore("diff", src, dst)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.count("equal") == 2
    assert pyrostore("verify", dst).returncode == 0


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["mirror", "{s}", "{t}", "--rate-limit", "fast"], 2, ["--rate-limit", "'fast'"]),
        (["mirror", "{s}", "{t}", "--interval", "soon", "--follow"], 2, ["--interval", "'soon'"]),
        (["mirror", "{s}", "{t}", "-t", "a/b"], 2, ["'a/b'", "topic name"]),
        (["mirror", "{s}", "{t}", "--source-option", "x"], 2, ["--source-option", "'x'"]),
        (["mirror", "{s}", "{t}", "-t", "payments"], 1, ["'payments'"]),
        (["mirror", "{t}/missing", "{t}"], 1, ["missing"]),
        (["diff", "{s}", "{s}", "-t", "payments"], 1, ["'payments'"]),
        (["diff", "{s}", "{t}/missing"], 1, ["missing", "does not exist"]),
    ],
)
def test_bad_input_gives_one_line(source, tmp_path, args, code, words):
    result = pyrostore(*(a.format(s=source.url, t=tmp_path / "target") for a in args))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_a_diverged_target_stops_the_command_with_one_line(source, tmp_path):
    target = open_store(str(tmp_path / "target"))
    Mirror(source, target).run_once()
    append(target, 1, 1)
    result = pyrostore("mirror", source.url, target.url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: orders/1: the target holds commit 6, which the source does not: another writer or a diverged copy; "
        "refusing to mirror into it"
    ]


# --- cost on a large archive ----------------------------------------------------------------------------------

SEGMENTS = 100_000


def _big_commits(nodes: tree.NodeStore) -> list[Commit]:
    """A claim and one commit whose tree names 100,000 segments (entries only: the segment objects are not written,
    so a mirror that read any of them would fail)."""
    entries = [
        Entry(10 * i, 10 * i + 10, 10 * i, 10 * i + 9, 10, 1, 1000, i, i + 1, f"{i:064x}") for i in range(SEGMENTS)
    ]
    root = tree.append(nodes, None, entries)
    stamp = "2024-05-01T08:00:00.000+00:00"
    claim = Commit(TOPIC, 0, 0, None, None, 0, 0, 1, "big", stamp)
    return [claim, replace(claim.successor(root, root.end, 1, "big"), committed_at=stamp)]


def test_one_new_commit_on_a_100000_segment_archive_costs_the_tree_depth_plus_3(tmp_path):
    started = time.monotonic()
    source, target = open_store(str(tmp_path / "source")), open_store(str(tmp_path / "target"))
    for store in (source, target):  # the same bytes on both sides: the target is a caught-up mirror
        for commit in _big_commits(tree.NodeStore(store, TOPIC)):
            create_commit(store, commit)
            write_head(store, commit)
        store.create(topic_key(TOPIC), b'{"cluster_id": "c", "format": 1, "topic": "orders", "topic_id": "t"}')
    depth = 1 + tree.NodeStore(source, TOPIC).load(Archive(source).partition(TOPIC, 0).commit.root.digest).level
    head = Archive(source).partition(TOPIC, 0).commit
    segment = make_segment(TOPIC, 0, head.next_offset, 5)  # one plain append of one segment, as a writer makes it
    source.put(segment.key, segment.data)
    leaf = Entry(
        head.next_offset,
        segment.next_offset,
        segment.base_offset,
        segment.last_offset,
        segment.record_count,
        1,
        segment.size,
        segment.min_timestamp,
        segment.max_timestamp,
        segment.digest,
    )
    root = tree.append(tree.NodeStore(source, TOPIC), head.root, [leaf])
    create_commit(source, head.successor(root, root.end, head.writer_epoch, head.writer_id))
    counted_source, counted_target = CountingStore(source), CountingStore(target)
    Mirror(counted_source, counted_target).run_once()

    assert depth == 2  # 100,000 entries at fanout 512: 196 leaves under one root
    source_reads = counted_source.calls["get"]  # the commit both hold, the new commit, the new path, the segment
    target_writes = counted_target.calls["put"] + counted_target.calls["create"]  # segment, path, commit, hint
    assert source_reads == depth + 3 == 5, counted_source.read_keys
    assert target_writes == depth + 3 == 5, counted_target.written_keys
    # Besides: the target's hint and its old right edge (depth reads), existence checks of the new segment and
    # nodes, one listing of each log and the source's topic/partition discovery (two listings), the descriptor.
    assert counted_target.calls["get"] == 1 + depth
    assert counted_target.calls["stat"] == 1 + depth + 1  # descriptor, new nodes, new segment
    assert (counted_source.calls["list"], counted_target.calls["list"]) == (3, 1)
    assert roots(target, TOPIC, range(1)) == roots(source, TOPIC, range(1))
    assert time.monotonic() - started < 60
