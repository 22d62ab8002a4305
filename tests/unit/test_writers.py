"""Writers racing on one partition never fork or lose an entry; fenced writers get a clear error."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from pyrostore.archive import Archive
from pyrostore.errors import FencedError
from pyrostore.gc import collect_garbage
from pyrostore.index.writer import PartitionWriter
from pyrostore.store import open_store
from pyrostore.verify import verify_partition
from tests.helpers import build_partition, make_segment, record

TOPIC = "race"
TARGET = 300


def _archive_until_done(url: str, name: str, results: list | None = None) -> tuple[int, int]:
    """Act like an archiver of one partition: claim, append 10 records at a time, re-claim when fenced."""
    store = open_store(url)
    writer = PartitionWriter(store, TOPIC, 0, writer_id=name, fanout=3)
    fenced = appended = 0
    writer.claim(0)
    while writer.head.next_offset < TARGET:
        start = writer.head.next_offset
        try:
            writer.append([make_segment(TOPIC, 0, start, min(10, TARGET - start))])
            appended += 1
        except FencedError as exc:
            assert name in str(exc) and "fenced" in str(exc)
            fenced += 1
            writer.claim(0)  # taken over; like a rebalance handing the partition back
    if results is not None:
        results.append((fenced, appended))
    return fenced, appended


def _assert_archive_complete(url: str) -> None:
    archive = Archive(open_store(url))
    reader = archive.partition(TOPIC, 0)
    assert [r.offset for r in reader.read()] == list(range(TARGET))
    assert [(r.key, r.value) for r in reader.read()] == [record(o)[3:5] for o in range(TARGET)]
    report = verify_partition(archive.store, reader.nodes, TOPIC, 0)
    assert report.ok, report.problems
    assert report.records == TARGET


def test_threads_racing_never_fork_or_lose(tmp_path):
    url = str(tmp_path / "archive")
    results: list = []
    threads = [threading.Thread(target=_archive_until_done, args=(url, f"thread-{i}", results)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert sum(fenced for fenced, _ in results) > 0, "the writers never actually raced"
    _assert_archive_complete(url)


def test_processes_racing_never_fork_or_lose(tmp_path):
    url = str(tmp_path / "archive")
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = pool.starmap(_archive_until_done, [(url, f"process-{i}") for i in range(3)])
    assert sum(appended for _, appended in results) >= TARGET // 10
    _assert_archive_complete(url)


def test_a_stale_writer_is_fenced_after_a_takeover(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    old = build_partition(store, TOPIC, 0, segments=3)
    new = PartitionWriter(store, TOPIC, 0, writer_id="new-owner")
    new.claim()
    assert new.epoch == old.epoch + 1
    with pytest.raises(FencedError, match=r"epoch 1\) was fenced by writer new-owner \(epoch 2\)"):
        old.append([make_segment(TOPIC, 0, 30, 10)])
    new.append([make_segment(TOPIC, 0, 30, 10)])
    assert Archive(store).partition(TOPIC, 0).next_offset == 40


_CRASHING_WRITER = """
import os, signal, sys
from pyrostore.store import open_store
from pyrostore.index import writer as writer_module
from pyrostore.index.writer import PartitionWriter
from tests.helpers import make_segment

store = open_store(sys.argv[1])
w = PartitionWriter(store, "race", 0)
w.claim(0)
w.append([make_segment("race", 0, 0, 10)])
def die(*args, **kwargs):  # segments and nodes are uploaded; the commit is next
    os.kill(os.getpid(), signal.SIGKILL)
writer_module.create_commit = die
w.append([make_segment("race", 0, 10, 10), make_segment("race", 0, 20, 10)])
"""


def test_a_writer_killed_before_its_commit_leaves_a_clean_archive(tmp_path):
    url = str(tmp_path / "archive")
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_WRITER, url], cwd=os.getcwd())
    assert crashed.returncode == -signal.SIGKILL
    store = open_store(url)
    reader = Archive(store).partition(TOPIC, 0)
    assert reader.next_offset == 10
    assert verify_partition(store, reader.nodes, TOPIC, 0).ok

    successor = PartitionWriter(store, TOPIC, 0)
    assert successor.claim().next_offset == 10
    successor.append([make_segment(TOPIC, 0, 10, 15)])
    reader.refresh()
    assert [r.offset for r in reader.read()] == list(range(25))
    assert verify_partition(store, reader.nodes, TOPIC, 0).ok

    time.sleep(0.01)
    report = collect_garbage(Archive(store), grace=timedelta(0))
    leftovers = [k for k in report.deleted if "/data/" in k]
    assert len(leftovers) == 2, report.deleted  # the two segments the crashed writer uploaded
    assert report.deleted and all("/index/" in k or "/data/" in k for k in report.deleted)
    reader = Archive(open_store(url)).partition(TOPIC, 0)
    assert [r.offset for r in reader.read()] == list(range(25))
    assert verify_partition(store, reader.nodes, TOPIC, 0).ok
