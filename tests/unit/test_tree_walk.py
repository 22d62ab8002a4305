"""tree.walk: one walk over many commits' trees, each node loaded once, every reference visited."""

from __future__ import annotations

import pytest

from pyrostore.errors import IntegrityError
from pyrostore.index import tree
from pyrostore.index.commits import iter_commits
from pyrostore.index.node_cache import NodeCache
from pyrostore.layout import ROOT_PREFIX, node_key
from pyrostore.store import open_store
from tests.helpers import build_partition

TOPIC = "walk"


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "archive"))
    build_partition(store, TOPIC, 0, segments=14, fanout=3)  # three levels, one commit per segment
    return store


def _roots(store) -> list:
    return [None, *(commit.root for commit in iter_commits(store, TOPIC, 0))]  # None: the claim's empty tree


def _uncached(store) -> tree.NodeStore:
    """A node store that reads the store on every load, so ``reads`` counts the walk's loads."""
    return tree.NodeStore(store, TOPIC, NodeCache(max_entries=0))


def test_each_node_is_loaded_once_across_all_roots(store):
    nodes = _uncached(store)
    visits = list(tree.walk(nodes, _roots(store)))
    stored = [info.key for info in store.list(f"{ROOT_PREFIX}index/")]
    first = [v for v in visits if v.first]
    assert nodes.reads == len(first) == len(stored)  # every stored node is some commit's
    assert {node_key(TOPIC, v.entry.digest) for v in first} == set(stored)
    assert len(visits) > len(first)  # shared subtrees are met again, without being loaded


def test_every_reference_is_visited_with_what_it_names(store):
    roots = [root for root in _roots(store) if root is not None]
    visits = list(tree.walk(_uncached(store), roots))
    assert [v.entry for v in visits if v.expected_level is None] == roots
    for visit in visits:
        assert visit.error is None and visit.summary == visit.entry
        assert visit.expected_level in (None, visit.level)
        assert (visit.node is not None) == visit.first  # the node comes with its first visit only


def test_leaves_of_every_root_are_reached_in_order(store):
    nodes = tree.NodeStore(store, TOPIC)
    roots = _roots(store)
    leaves = {leaf for visit in tree.walk(nodes, roots) for leaf in visit.leaves}
    for root in roots:
        assert set(tree.iter_leaves(nodes, root)) <= leaves
    single = [leaf for visit in tree.walk(nodes, [roots[-1]]) for leaf in visit.leaves]
    assert single == list(tree.iter_leaves(nodes, roots[-1]))  # depth first, left to right


def test_an_unreadable_node_is_reported_at_each_reference_and_the_walk_goes_on(store):
    nodes = _uncached(store)
    roots = [root for root in _roots(store) if root is not None and root.segments > 3]  # trees of 2+ levels
    head = nodes.load(roots[-1].digest)
    lost = nodes.load(head.entries[0].digest).entries[0]  # the first leaf node, under each of those roots
    store.delete(node_key(TOPIC, lost.digest))

    visits = list(tree.walk(nodes, roots))
    failed = [v for v in visits if v.entry.digest == lost.digest]
    assert len(failed) > 1 and [v.first for v in failed] == [True] + [False] * (len(failed) - 1)
    assert all(isinstance(v.error, IntegrityError) and "missing" in str(v.error) for v in failed)
    assert all(v.node is None and v.summary is None for v in failed)
    reached = {leaf for visit in visits for leaf in visit.leaves}
    assert reached == set(tree.iter_leaves(tree.NodeStore(store, TOPIC), roots[-1], start=lost.end))
