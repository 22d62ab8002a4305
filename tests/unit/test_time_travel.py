"""Time travel's parts: what each commit did (``pyrostore log``'s rows), how a moment is named, and an archive opened
as of a past moment: partitions archived later are absent, and nothing can be written through it."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from pyrostore.archive import Archive, open_archive
from pyrostore.errors import InvalidSetting, ReadOnlyArchive, TopicNotFound
from pyrostore.gc import collect_garbage
from pyrostore.index.as_of import AsOf, commit_millis, had_commit, resolve
from pyrostore.index.commits import Commit, read_commit
from pyrostore.index.history import FIELDS, CommitKind, commit_kind, history
from pyrostore.index.node import Entry
from pyrostore.index.writer import PartitionWriter
from pyrostore.layout import ROOT_PREFIX, segment_key
from pyrostore.store import open_store
from tests.helpers import build_partition, make_segment


def commit(seq: int, records: int, next_offset: int, epoch: int) -> Commit:
    root = Entry(0, next_offset, 0, next_offset - 1, records, 1, 100, 1, 2, f"{seq:064x}") if next_offset else None
    return Commit("t", 3, seq, root, None, 0, next_offset, epoch, f"w{epoch}", f"2026-11-24T12:00:0{seq}.000+00:00")


def test_each_commit_is_a_claim_an_append_or_a_lost_range():
    chain = [commit(0, 0, 0, 1), commit(1, 10, 10, 1), commit(2, 10, 10, 2), commit(3, 10, 15, 2), commit(4, 12, 17, 2)]
    assert [commit_kind(before, c) for before, c in zip([None, *chain], chain, strict=False)] == [
        CommitKind.CLAIM,
        CommitKind.APPEND,
        CommitKind.CLAIM,  # a new epoch: another writer took over
        CommitKind.LOST,  # the end moved, no record came
        CommitKind.APPEND,
    ]
    rows = list(history(chain))
    assert all(tuple(row) == FIELDS for row in rows)
    assert rows[0] == {
        "topic": "t",
        "partition": 3,
        "seq": 0,
        "committed_at": "2026-11-24T12:00:00.000+00:00",
        "kind": "claim",
        "writer_id": "w1",
        "writer_epoch": 1,
        "start_offset": 0,
        "next_offset": 0,
        "records": 0,
        "segments": 0,
        "bytes": 0,
        "root": None,
    }
    assert [(r["seq"], r["kind"], r["writer_epoch"], r["next_offset"], r["records"]) for r in rows[1:]] == [
        (1, "append", 1, 10, 10),
        (2, "claim", 2, 10, 10),
        (3, "lost", 2, 15, 10),
        (4, "append", 2, 17, 12),
    ]
    assert rows[4]["root"] == f"{4:064x}"


def test_a_moment_names_itself_in_messages():
    assert AsOf(millis=1_764_000_000_000).describe() == "as of 2025-11-24T16:00:00.000+00:00"
    assert AsOf(millis=5, topic="t", partition=0, seq=3).describe() == "as of t/0@3"


def two_partitions(tmp_path):
    """Partition 0 (commits 0-2), then partition 1 (commits 0-1), then partition 0's commit 3, apart in time."""
    url = str(tmp_path / "archive")
    store = open_store(url)
    writer = build_partition(store, "t", 0, segments=2)
    time.sleep(0.02)
    build_partition(store, "t", 1, segments=1)
    time.sleep(0.02)
    writer.append([make_segment("t", 0, 20, 10)])
    return url, store


def test_partitions_archived_later_are_absent(tmp_path):
    url, store = two_partitions(tmp_path)
    born_1 = commit_millis(read_commit(store, "t", 1, 0))
    before = open_archive(url, as_of=str(born_1 - 1))
    assert before.topics() == ["t"] and before.partitions("t") == [0]
    assert before.partition("t", 0).commit.seq == 2
    with pytest.raises(TopicNotFound, match=r"no archive of t/1 as of "):
        before.partition("t", 1)
    assert open_archive(url, as_of=str(born_1)).partitions("t") == [0, 1]

    pinned = Archive(store, AsOf(topic="t", partition=0, seq=1))
    assert pinned.partitions("t") == [0]  # partition 1 came after commit 1 of partition 0
    assert [r.offset for r in pinned.partition("t", 0).read()] == list(range(10))
    assert pinned.partition("t", 0).refresh().seq == 1  # a pinned partition stays pinned

    first = commit_millis(read_commit(store, "t", 0, 0))
    empty = open_archive(url, as_of=AsOf(millis=first - 1))
    assert empty.topics() == []
    with pytest.raises(TopicNotFound, match=r"no archive of topic 't' as of \d{4}-"):
        empty.partitions("t")
    assert not had_commit(store, "t", 0, AsOf(millis=first - 1)) and had_commit(store, "t", 0, AsOf(millis=first))
    with pytest.raises(TopicNotFound, match="no commit t/0@9"):
        resolve(store, AsOf(topic="t", partition=0, seq=9))
    with pytest.raises(InvalidSetting, match="--as-of"):
        open_archive(url, as_of="last tuesday")


def test_nothing_can_be_written_through_an_archive_as_of_the_past(tmp_path):
    url, store = two_partitions(tmp_path)
    leftover = make_segment("t", 0, 30, 5)  # uploaded, never committed: garbage gc would delete
    store.put(segment_key("t", 0, 30, leftover.digest), leftover.data)
    before = sorted(info.key for info in store.list(ROOT_PREFIX))
    past = open_archive(url, as_of="t/0@1")

    writer = PartitionWriter(past.store, "t", 0)
    refused = r"cannot create .*/00000000000000000004\.json: the archive is opened as of t/0@1, read-only"
    with pytest.raises(ReadOnlyArchive, match=refused):
        writer.claim()
    with pytest.raises(ReadOnlyArchive, match="cannot delete"):
        collect_garbage(past, timedelta(0))
    assert sorted(info.key for info in store.list(ROOT_PREFIX)) == before
    assert collect_garbage(Archive(store), timedelta(0)).deleted  # the same archive, not as of the past, may


def test_a_commit_never_records_a_time_before_its_parent():
    future = replace(commit(1, 10, 10, 1), committed_at="2999-01-01T00:00:00.000+00:00")
    assert future.successor(None, 10, 2, "w2").committed_at == future.committed_at  # this clock is behind
    past = commit(1, 10, 10, 1)
    assert datetime.fromisoformat(past.successor(None, 10, 2, "w2").committed_at) > datetime.fromisoformat(
        past.committed_at
    )
