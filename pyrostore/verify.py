"""Prove an archive's integrity: walk every commit chain and tree, check every digest and every offset.

Problems are collected, not raised, so one report lists all of them. The checks are those of the format
specification (docs/format.md): commits chain by parent root and tile the offsets, every node and segment
matches the digest that names it, parents summarise their children, segments hold exactly what their index
entry says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pyrostore.errors import FormatError, IntegrityError, ObjectNotFound, PyrostoreError
from pyrostore.index import tree
from pyrostore.index.commits import Commit, decode_commit, read_commit
from pyrostore.index.node import Entry
from pyrostore.layout import commit_prefix, head_key, parse_commit_seq
from pyrostore.segment import decode_segment, read_segment_metadata
from pyrostore.store import ObjectStore


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the archive: where, and what."""

    topic: str
    partition: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}: {self.where}: {self.message}"


@dataclass
class PartitionReport:
    """What verifying one partition found."""

    topic: str
    partition: int
    commits: int = 0
    nodes: int = 0
    segments: int = 0
    records: int = 0
    bytes: int = 0
    next_offset: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


# Called after each segment is checked, with (segments checked, segments in the tree).
Progress = Callable[[int, int], None]


def verify_partition(
    store: ObjectStore, nodes: tree.NodeStore, topic: str, partition: int, progress: Progress | None = None
) -> PartitionReport:
    """Check one partition's commits, every commit's tree, and every segment those trees name."""
    report = PartitionReport(topic, partition)

    def problem(where: str, message: str) -> None:
        report.problems.append(Problem(topic, partition, where, message))

    commits = _check_commits(store, topic, partition, report, problem)
    if not commits:
        return report
    report.next_offset = commits[-1].next_offset
    _check_hint(store, topic, partition, problem)
    leaves = _check_trees(nodes, commits, report, problem)
    for done, leaf in enumerate(leaves, 1):
        if not leaf.lost:
            _check_segment(store, topic, partition, leaf, report, problem)
        if progress:
            progress(done, len(leaves))
    return report


def _check_commits(store, topic, partition, report, problem) -> list[Commit]:
    """Walk the commit chain: sequence numbers, parent roots, offsets and epochs. Returns the valid commits."""
    valid: list[Commit] = []
    previous: Commit | None = None
    for info in store.list(commit_prefix(topic, partition)):
        try:
            commit = read_commit(store, topic, partition, parse_commit_seq(info.key))
        except PyrostoreError as exc:  # damaged, foreign or vanished object in the log
            problem(info.key, str(exc))
            continue
        report.commits += 1
        where = f"commit {commit.seq}"
        expected_seq = previous.seq + 1 if previous else 0
        if commit.seq != expected_seq:
            problem(where, f"sequence jumps from {expected_seq - 1} to {commit.seq}")
        if previous is not None:
            parent = previous.root.digest if previous.root else None
            if commit.parent_root != parent:
                problem(where, f"parent root {commit.parent_root} is not the previous commit's root {parent}")
            if commit.start_offset != previous.start_offset:
                problem(where, f"start offset changed from {previous.start_offset} to {commit.start_offset}")
            if commit.next_offset < previous.next_offset:
                problem(where, f"next offset went back from {previous.next_offset} to {commit.next_offset}")
            if commit.writer_epoch < previous.writer_epoch:
                problem(where, f"writer epoch went back from {previous.writer_epoch} to {commit.writer_epoch}")
        previous = commit
        valid.append(commit)
    if not valid and not report.problems:
        problem("commit log", "no commits")
    return valid


def _check_hint(store, topic, partition, problem) -> None:
    """The head hint must be an exact copy of a commit of the log."""
    key = head_key(topic, partition)
    try:
        hint = decode_commit(store.get(key), key)
        if hint != read_commit(store, topic, partition, hint.seq):
            problem(key, f"differs from commit {hint.seq} of the log")
    except ObjectNotFound:
        problem(key, "missing, or names a commit the log does not hold")
    except (IntegrityError, FormatError) as exc:
        problem(key, str(exc))


def _check_trees(nodes: tree.NodeStore, commits: list[Commit], report: PartitionReport, problem) -> list[Entry]:
    """Check every reference to a node under every commit's root (each node once); return all leaf entries."""
    leaves: dict[int, Entry] = {}
    for visit in tree.walk(nodes, (commit.root for commit in commits)):
        where = f"index node {visit.entry.digest}"
        if visit.error is not None:
            if visit.first:
                problem(where, str(visit.error))
            continue
        if visit.first:
            report.nodes += 1
        _check_reference(visit, where, problem)
        for leaf in visit.leaves:
            if leaves.setdefault(leaf.base, leaf) != leaf:
                problem(where, f"the trees of two commits disagree about offset {leaf.base} (a fork)")
    return sorted(leaves.values(), key=lambda leaf: leaf.base)


def _check_reference(visit: tree.Visit, where: str, problem) -> None:
    """The entry naming a node must sit one level above it and summarise it exactly."""
    if visit.expected_level is not None and visit.level != visit.expected_level:
        problem(where, f"level {visit.level}, expected {visit.expected_level}")
    if visit.summary != visit.entry:
        problem(where, "an entry naming it does not match its entries' summary")


def _check_segment(store, topic, partition, leaf: Entry, report: PartitionReport, problem) -> None:
    key = leaf.segment_key(topic, partition)
    try:
        data = store.get(key)
        table = decode_segment(data, expected_digest=leaf.digest, name=key, columns=["offset", "timestamp"])
        footer = read_segment_metadata(data, key)
    except ObjectNotFound:
        problem(key, "segment is referenced by the index but missing")
        return
    except PyrostoreError as exc:
        problem(key, str(exc))
        return
    report.segments += 1
    report.records += table.num_rows
    report.bytes += leaf.bytes
    offsets = table.column("offset")
    times = table.column("timestamp").cast(pa.int64())
    facts = (
        table.num_rows,
        offsets[0].as_py() if table.num_rows else None,
        offsets[-1].as_py() if table.num_rows else None,
        pc.min(times).as_py(),
        pc.max(times).as_py(),
    )
    promised = (leaf.records, leaf.first, leaf.last, leaf.min_ts, leaf.max_ts)
    if facts != promised:
        problem(key, f"holds (records, first, last, min ts, max ts) {facts}, its index entry says {promised}")
    if (footer["next_offset"], len(data)) != (leaf.end, leaf.bytes):
        problem(
            key,
            f"footer next offset {footer['next_offset']} and size {len(data)} differ from its index "
            f"entry's end {leaf.end} and bytes {leaf.bytes}",
        )
    if table.num_rows > 1 and not pc.all(pc.greater(offsets[1:], offsets[:-1])).as_py():
        problem(key, "offsets are not strictly increasing")
