"""Mirroring one partition: copy, in order, the commits the target lacks, each after everything its tree needs.

Write order per commit: segments, nodes (children first), then the commit itself, create-only, then the head
hint. A kill at any instant leaves the target a valid archive: its newest commit names only objects written
before it. The one exception to "hint after commit" is a partition's first commit: its hint is written just
before it, since readers (and ``verify``) find partitions through their hints and a commit without one is a
damaged archive, while a hint naming a commit about to be created reads as that (complete) commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyrostore.errors import ArchivesDiverged, FormatError, IntegrityError, ObjectExists, ObjectNotFound
from pyrostore.index.commits import Commit, decode_commit
from pyrostore.index.node import Entry, Node
from pyrostore.index.tree import NodeStore
from pyrostore.layout import commit_key, commit_prefix, head_key, parse_commit_seq
from pyrostore.mirror.copier import Copier
from pyrostore.mirror.decisions import check_common, check_successor, known_from_edge, lag
from pyrostore.mirror.tree import TreeCopier, TreePlan
from pyrostore.store import ObjectStore

HINT_INTERVAL = 1.0  # seconds between head hint updates while commits are copied (as the archiver writes them)
# Commits whose objects are copied together (in parallel) before they are created in order: small commits of one
# segment each would otherwise copy one segment at a time.
BATCH_COMMITS = 64
BATCH_BYTES = 256 * 1024 * 1024


@dataclass
class PartitionState:
    """Where one partition's mirror stands: the target's newest commit, commits still to copy, lag in seconds."""

    topic: str
    partition: int
    target_seq: int | None = None
    copied: int = 0
    pending: int = 0
    lag_seconds: float = 0.0


# Called after each commit is copied (and once at the start) with the partition's state.
OnCommit = Callable[[PartitionState], None]


def mirror_partition(
    copier: Copier,
    topic: str,
    partition: int,
    stopping: Callable[[], bool] = lambda: False,
    on_commit: OnCommit | None = None,
) -> PartitionState:
    """Copy the commits of ``topic``/``partition`` that the target lacks; return where it then stands.

    Raises ArchivesDiverged when the target holds a commit the source does not, IntegrityError (naming the
    object) when the source's commit chain, a node or a segment is damaged, and StoreError.
    """
    state = PartitionState(topic, partition)
    target = newest_commit(copier.target, topic, partition)
    start = commit_key(topic, partition, target.seq - 1) if target is not None and target.seq > 0 else None
    keys = [info.key for info in copier.source.list(commit_prefix(topic, partition), start_after=start)]
    if target is not None:
        same = _read(copier.source, topic, partition, keys.pop(0)) if keys else None
        if same is not None and same.seq == target.seq and same != target:
            target = _read(copier.target, topic, partition, commit_key(topic, partition, target.seq))
        check_common(topic, partition, target, same if same is not None and same.seq == target.seq else None)
    state.target_seq = target.seq if target else None
    state.pending = len(keys)
    trees: TreeCopier | None = None
    hinted_at, hinted, last = time.monotonic(), target, b""
    previous = planned = target
    batch: list[tuple[str, bytes, Commit]] = []
    plan = TreePlan()
    for index, key in enumerate(keys):
        if stopping():
            break
        data = copier.source.get(key)
        commit = _decode(data, copier.source.url, topic, partition, key)
        check_successor(planned, commit, f"{copier.source.url}/{key}")
        if trees is None:
            trees = TreeCopier(copier, topic, partition, _known(copier.target, topic, target))
        trees.plan(commit.root, plan)
        batch.append((key, data, commit))
        planned = commit
        if len(batch) < BATCH_COMMITS and plan.segment_bytes < BATCH_BYTES and index < len(keys) - 1:
            continue
        state.pending, state.lag_seconds = lag(len(keys) - index - 1 + len(batch), batch[0][2].committed_at, _now())
        if on_commit:
            on_commit(state)
        if not trees.execute(plan, stopping):
            break
        for made_key, made_data, made in batch:
            if made.seq == 0:
                copier.write(head_key(topic, partition), made_data)
                hinted_at, hinted = time.monotonic(), made
            _create(copier, topic, partition, made_key, made_data, made)
            previous, last = made, made_data
            if time.monotonic() - hinted_at >= HINT_INTERVAL and hinted is not made:
                copier.write(head_key(topic, partition), made_data)
                hinted_at, hinted = time.monotonic(), made
            state.target_seq, state.copied = made.seq, state.copied + 1
        state.pending, state.lag_seconds = len(keys) - index - 1, 0.0
        batch, plan = [], TreePlan()
    if previous is not hinted and last:  # the hint may lag while copying, never once a pass is over
        copier.write(head_key(topic, partition), last)
    if on_commit:
        on_commit(state)
    return state


def _now() -> datetime:
    return datetime.now(UTC)


def newest_commit(store: ObjectStore, topic: str, partition: int) -> Commit | None:
    """The partition's newest commit in the log (the head hint only says where to start listing), or None.

    Unlike :func:`pyrostore.index.commits.read_head`, a hint naming a commit the log does not hold (the mirror
    writes a partition's first hint just before its first commit) is not taken for a commit.
    """
    hint = _hint_of(store, topic, partition)
    start = commit_key(topic, partition, hint.seq - 1) if hint is not None and hint.seq > 0 else None
    newest = None
    for info in store.list(commit_prefix(topic, partition), start_after=start):
        newest = info.key
    if newest is None and start is not None:  # the hint's commit has vanished: trust only the log
        for info in store.list(commit_prefix(topic, partition)):
            newest = info.key
    if newest is None:
        return None
    if hint is not None and parse_commit_seq(newest) == hint.seq:
        return hint
    return _read(store, topic, partition, newest)


def read_commit_at(store: ObjectStore, topic: str, partition: int, seq: int) -> Commit | None:
    """Commit ``seq`` of the partition, or None when the log does not hold it. Raises IntegrityError."""
    try:
        return _read(store, topic, partition, commit_key(topic, partition, seq))
    except ObjectNotFound:
        return None


def _hint_of(store: ObjectStore, topic: str, partition: int) -> Commit | None:
    key = head_key(topic, partition)
    try:
        hint = decode_commit(store.get(key), f"{store.url}/{key}")
    except (ObjectNotFound, IntegrityError, FormatError):
        return None
    return hint if (hint.topic, hint.partition) == (topic, partition) else None


def _read(store: ObjectStore, topic: str, partition: int, key: str) -> Commit:
    return _decode(store.get(key), store.url, topic, partition, key)


def _decode(data: bytes, url: str, topic: str, partition: int, key: str) -> Commit:
    commit = decode_commit(data, f"{url}/{key}")
    if (commit.topic, commit.partition, commit.seq) != (topic, partition, parse_commit_seq(key)):
        raise IntegrityError(f"commit {url}/{key} names {commit.topic}/{commit.partition} seq {commit.seq}")
    return commit


def _create(copier: Copier, topic: str, partition: int, key: str, data: bytes, commit: Commit) -> None:
    """Create the commit in the target; one already there must be the same (another mirror got there first)."""
    try:
        copier.create(key, data)
    except ObjectExists:
        theirs = _read(copier.target, topic, partition, key)
        if theirs != commit:
            raise ArchivesDiverged(
                f"{topic}/{partition}: another writer created commit {commit.seq} in the target meanwhile, and it "
                "differs from the source's; refusing to mirror into it"
            ) from None


def _known(store: ObjectStore, topic: str, newest: Commit | None) -> set[str]:
    """What the target's newest tree shows it holds: its root and every entry along its right edge."""
    root: Entry | None = newest.root if newest is not None else None
    if root is None:
        return set()
    nodes = NodeStore(
        store,
        topic,
    )
    edge: list[Node] = []
    node = nodes.load(root.digest)
    edge.append(node)
    while node.level > 0:
        node = nodes.load(node.entries[-1].digest)
        edge.append(node)
    return known_from_edge(root, edge)
