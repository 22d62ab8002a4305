"""The index node cache: bounded in entries however many versions of a growing rightmost leaf pass through it."""

from __future__ import annotations

import asyncio

from pyrostore.archive import open_archive
from pyrostore.index.node import Entry, Node
from pyrostore.index.node_cache import NodeCache
from pyrostore.index.tree import NodeStore
from pyrostore.index.writer import PartitionWriter
from pyrostore.serve.catalog import Catalog
from pyrostore.store import open_store
from tests.helpers import make_segment

PER_SEGMENT = 5


def node(entries: int, base: int = 0) -> Node:
    return Node(0, tuple(Entry(o, o + 1, o, o, 1, 1, 10, 0, 0, f"d{o}") for o in range(base, base + entries)))


def test_the_cache_drops_the_least_recently_used_nodes_beyond_its_entries():
    cache = NodeCache(max_entries=10)
    cache.put(("t", "a"), node(4))
    cache.put(("t", "b"), node(4))
    assert cache.get(("t", "a")) is not None  # a is now the most recently used
    cache.put(("t", "c"), node(4))
    assert (cache.entries, len(cache)) == (8, 2)
    assert cache.get(("t", "b")) is None
    assert cache.get(("t", "a")) is not None and cache.get(("t", "c")) is not None


def test_a_node_larger_than_the_whole_cache_is_not_kept():
    cache = NodeCache(max_entries=10)
    cache.put(("t", "a"), node(3))
    cache.put(("t", "big"), node(11))
    assert cache.get(("t", "big")) is None
    assert cache.entries == 3


def test_the_same_node_twice_counts_once():
    cache = NodeCache(max_entries=10)
    cache.put(("t", "a"), node(3))
    cache.put(("t", "a"), node(3))
    assert (cache.entries, len(cache)) == (3, 1)


def test_re_reading_a_growing_partition_at_its_end_keeps_the_cache_bounded(tmp_path):
    """Every commit has a new, longer rightmost leaf; a reader at the end loads each of them once. The cache holds
    at most its bound while the leaves loaded add up to many times that, and every read is still right."""
    root = str(tmp_path / "store")
    store = open_store(root)
    writer = PartitionWriter(store, "t", 0)
    writer.claim(0)
    archive = open_archive(root)
    cache = NodeCache(max_entries=64)
    catalog = Catalog(archive, ("t",), refresh_interval=0.0, topics_interval=10.0, nodes=cache)
    commits, loaded = 60, 0
    try:
        for i in range(commits):
            writer.append([make_segment("t", 0, i * PER_SEGMENT, PER_SEGMENT)])
            snapshot = asyncio.run(catalog.snapshot("t", 0, max_age=0.0))
            assert snapshot.reader is not None and snapshot.next_offset == (i + 1) * PER_SEGMENT
            tail = list(snapshot.reader.segments(i * PER_SEGMENT, None))
            assert [(e.base, e.end) for e in tail] == [(i * PER_SEGMENT, (i + 1) * PER_SEGMENT)]
            loaded += i + 1  # the leaf of commit i holds i + 1 segments
            assert cache.entries <= 64
        assert loaded > 20 * 64
        assert cache.entries >= commits  # the newest leaf (and root) read through it
        whole = list(snapshot.reader.segments(0, None))
        assert [e.base for e in whole] == [i * PER_SEGMENT for i in range(commits)]
    finally:
        writer.close()
        archive.close()
        store.close()


def test_a_writer_saving_a_new_rightmost_leaf_at_every_commit_keeps_its_cache_bounded(tmp_path):
    """The archiver's side of the same pattern: each append saves a longer copy of the last leaf."""
    store = open_store(str(tmp_path / "store"))
    cache = NodeCache(max_entries=64)
    writer = PartitionWriter(store, "t", 0, nodes=NodeStore(store, "t", cache))
    writer.claim(0)
    try:
        for i in range(60):
            writer.append([make_segment("t", 0, i * PER_SEGMENT, PER_SEGMENT)])
            assert cache.entries <= 64
    finally:
        writer.close()
    reader = open_archive(str(tmp_path / "store")).partition("t", 0)
    assert [e.base for e in reader.segments(0, None)] == [i * PER_SEGMENT for i in range(60)]


def test_a_later_version_of_a_node_replaces_the_earlier_one():
    cache = NodeCache(max_entries=100)
    cache.put(("t", "v1"), node(3))
    cache.put(("t", "other"), node(2, base=50))  # another place (another partition's leaf, say): kept
    cache.put(("t", "v2"), node(5))
    assert cache.get(("t", "v1")) is None
    assert (cache.entries, len(cache)) == (7, 2)
    cache.put(("t", "v1"), node(3))  # an old reader loads the earlier version again: kept, the later one stays
    assert cache.get(("t", "v1")) is not None and cache.get(("t", "v2")) is not None
    cache.put(("t", "v3"), node(6))  # supersedes the latest version; the old reader's copy leaves by age
    assert cache.get(("t", "v2")) is None and cache.get(("t", "v3")) is not None
    assert cache.entries == 2 + 3 + 6


def test_nodes_of_other_levels_or_topics_at_the_same_place_are_not_versions():
    cache = NodeCache(max_entries=100)
    leaf = node(2)
    cache.put(("t", "leaf"), leaf)
    cache.put(("t", "internal"), Node(1, leaf.entries + node(1, base=2).entries))
    cache.put(("u", "leaf"), node(4))
    assert len(cache) == 3
