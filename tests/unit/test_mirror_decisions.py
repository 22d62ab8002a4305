"""The mirror's pure decisions: joining two logs, chaining commits, what the target lacks, lag."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrostore.errors import ArchivesDiverged, IntegrityError
from pyrostore.index.commits import Commit
from pyrostore.index.node import Entry, Node, summarize
from pyrostore.mirror.decisions import (
    check_common,
    check_reference,
    check_successor,
    known_from_edge,
    lag,
    missing_entries,
)
from pyrostore.mirror.diff import tree_difference


def digest(n: int) -> str:
    return f"{n:064x}"


def leaf(base: int, n: int) -> Entry:
    return Entry(base, base + 10, base, base + 9, 10, 1, 100, 1, 2, digest(n))


def commit(seq: int, root: Entry | None = None, parent: str | None = None, epoch: int = 1, **changes) -> Commit:
    end = root.end if root else 0
    made = Commit("t", 3, seq, root, parent, 0, end, epoch, "w", "2024-05-01T08:00:00.000+00:00")
    return replace(made, **changes)


def test_an_empty_target_may_take_anything():
    check_common("t", 3, None, None)
    check_common("t", 3, None, commit(0))


def test_a_target_commit_the_source_lacks_is_refused_naming_topic_partition_and_seq():
    with pytest.raises(ArchivesDiverged, match=r"t/3: the target holds commit 7, which the source does not"):
        check_common("t", 3, commit(7), None)


def test_a_different_commit_at_the_same_seq_is_refused():
    mine, theirs = commit(2, leaf(0, 1)), commit(2, leaf(0, 2))
    with pytest.raises(ArchivesDiverged, match=r"t/3: the target's commit 2 differs from the source's"):
        check_common("t", 3, mine, theirs)
    check_common("t", 3, mine, mine)


def test_the_first_commit_must_be_seq_0_without_parent():
    check_successor(None, commit(0), "c")
    with pytest.raises(IntegrityError, match="first commit must be seq 0"):
        check_successor(None, commit(1), "c")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": 3}, "has seq 3"),
        ({"parent_root": digest(9)}, "parent root"),
        ({"start_offset": 5, "next_offset": 5}, "start offset"),
        ({"writer_epoch": 0}, "epoch back"),
    ],
)
def test_a_broken_chain_is_refused_naming_the_commit(changes, message):
    previous = commit(1, leaf(0, 1))
    good = commit(2, summarize([leaf(0, 1), leaf(10, 2)], digest(5)), parent=digest(1))
    check_successor(previous, good, "c")
    with pytest.raises(IntegrityError, match=f"commit c: .*{message}"):
        check_successor(previous, replace(good, **changes), "c")


def test_next_offset_may_not_go_back():
    previous = commit(1, summarize([leaf(0, 1), leaf(10, 2)], digest(5)))
    with pytest.raises(IntegrityError, match="next offset back"):
        check_successor(previous, commit(2, leaf(0, 1), parent=digest(5)), "c")


def test_reference_checks_level_and_summary():
    node = Node(0, (leaf(0, 1), leaf(10, 2)))
    entry = summarize(node.entries, digest(7))
    check_reference(entry, node, 0, "n")
    check_reference(entry, node, None, "n")
    with pytest.raises(IntegrityError, match="level 0, its parent implies 1"):
        check_reference(entry, node, 1, "n")
    with pytest.raises(IntegrityError, match="does not summarise"):
        check_reference(replace(entry, records=1), node, 0, "n")


@given(st.lists(st.integers(0, 30), max_size=20), st.sets(st.integers(0, 30)))
def test_missing_entries_are_exactly_those_not_known_and_not_lost(numbers, known):
    entries = [leaf(10 * i, n) for i, n in enumerate(numbers)]
    lost = Entry(10 * len(numbers), 10 * len(numbers) + 5, None, None, 0, 0, 0, None, None, None)
    missing = missing_entries([*entries, lost], {digest(n) for n in known})
    assert missing == [e for e, n in zip(entries, numbers, strict=True) if n not in known]


def test_known_from_edge_holds_the_root_and_every_entry_of_the_edge():
    edge = [Node(1, (leaf(0, 1), leaf(10, 2))), Node(0, (leaf(10, 3),))]
    assert known_from_edge(leaf(0, 9), edge) == {digest(n) for n in (9, 1, 2, 3)}
    assert known_from_edge(None, []) == set()


def test_lag_counts_pending_commits_and_the_age_of_the_oldest():
    now = datetime(2024, 5, 1, 8, 0, 30, tzinfo=UTC)
    assert lag(0, None, now) == (0, 0.0)
    assert lag(4, "2024-05-01T08:00:00.000+00:00", now) == (4, 30.0)
    assert lag(1, (now + timedelta(seconds=5)).isoformat(), now) == (1, 0.0)  # clocks apart: never negative


def _tree(leaves: list[Entry], fanout: int, nodes: dict[str, Node]) -> Entry:
    """A tree over ``leaves`` packed as the writer packs it, with digests from a counter (content-unique)."""
    level, entries = 0, leaves
    while True:
        parents = []
        for i in range(0, len(entries), fanout):
            node = Node(level, tuple(entries[i : i + fanout]))
            name = digest(hash((node.level, node.entries)) % (1 << 60) + (1 << 62))
            nodes[name] = node
            parents.append(summarize(node.entries, name))
        if len(parents) == 1:
            return parents[0]
        level, entries = level + 1, parents


@given(st.integers(1, 40), st.integers(0, 40), st.integers(2, 4))
def test_tree_difference_of_an_append_is_its_new_right_edge_and_segments(old_count, added, fanout):
    nodes: dict[str, Node] = {}
    all_leaves = [leaf(10 * i, i + 1) for i in range(old_count + added)]
    old, new = _tree(all_leaves[:old_count], fanout, nodes), _tree(all_leaves, fanout, nodes)

    def reach(root: Entry) -> set[str]:
        found, pending = set(), [root.digest]
        while pending:
            name = pending.pop()
            found.add(name)
            node = nodes[name]
            if node.level:
                pending += [e.digest for e in node.entries]
            else:
                found.update(f"seg-{e.digest}" for e in node.entries)
        return found

    found = tree_difference(nodes.__getitem__, nodes.__getitem__, new, old, lambda e: f"seg-{e.digest}")
    assert found.nodes_a | set(found.segments_a) == reach(new) - reach(old)
    assert found.nodes_b | set(found.segments_b) == reach(old) - reach(new)
