"""The mirror's decisions, as pure functions: whether two commit logs may be joined, whether a commit follows
its parent, which entries of a node the target lacks, and how far the target lags.

Nothing here reads a store; the shells in :mod:`pyrostore.mirror.tree` and :mod:`pyrostore.mirror.partition`
feed in what each side holds.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from datetime import datetime

from pyrostore.errors import ArchivesDiverged, IntegrityError
from pyrostore.index.commits import Commit
from pyrostore.index.node import Entry, Node, summarize


def check_common(topic: str, partition: int, target: Commit | None, source: Commit | None) -> None:
    """Refuse to continue when the target's newest commit is not the source's commit of the same sequence.

    ``target`` is the target's newest commit (None: the target holds none of this partition, so anything may
    be copied) and ``source`` the source's commit with the same ``seq`` (None: the source has no such commit).
    Raises ArchivesDiverged naming topic, partition and sequence.
    """
    if target is None:
        return
    if source is None:
        raise ArchivesDiverged(
            f"{topic}/{partition}: the target holds commit {target.seq}, which the source does not: "
            "another writer or a diverged copy; refusing to mirror into it"
        )
    if source != target:
        raise ArchivesDiverged(
            f"{topic}/{partition}: the target's commit {target.seq} differs from the source's "
            f"(root {_digest(target)} against {_digest(source)}, writer {target.writer_id} against "
            f"{source.writer_id}); refusing to mirror into it"
        )


def check_successor(previous: Commit | None, commit: Commit, name: str) -> None:
    """Raise IntegrityError unless ``commit`` directly follows ``previous`` (None: it must be commit 0).

    The chain a mirror copies must be one a verifier accepts: consecutive sequence numbers, each parent root the
    previous root, one start offset, offsets and epochs that never go back.
    """
    if previous is None:
        if commit.seq != 0 or commit.parent_root is not None:
            raise IntegrityError(f"commit {name}: the log's first commit must be seq 0 without a parent root")
        return
    expected_parent = previous.root.digest if previous.root else None
    problems = [
        (commit.seq != previous.seq + 1, f"follows commit {previous.seq} but has seq {commit.seq}"),
        (commit.parent_root != expected_parent, f"parent root {commit.parent_root} is not {expected_parent}"),
        (commit.start_offset != previous.start_offset, "changes the start offset"),
        (commit.next_offset < previous.next_offset, "moves the next offset back"),
        (commit.writer_epoch < previous.writer_epoch, "moves the writer epoch back"),
    ]
    for broken, message in problems:
        if broken:
            raise IntegrityError(f"commit {name}: {message}")


def check_reference(entry: Entry, node: Node, expected_level: int | None, name: str) -> None:
    """Raise IntegrityError unless ``node`` sits at ``expected_level`` (None: any, for a root) and ``entry``,
    which names it, summarises its entries exactly."""
    if expected_level is not None and node.level != expected_level:
        raise IntegrityError(f"index node {name}: level {node.level}, its parent implies {expected_level}")
    if summarize(node.entries, entry.digest) != entry:
        raise IntegrityError(f"index node {name}: the entry naming it does not summarise its entries")


def missing_entries(entries: Sequence[Entry], present: Container[str]) -> list[Entry]:
    """The entries naming an object (node or segment) not known to be in the target.

    An object whose digest is present is skipped with everything below it: a writer puts children before the
    parent that names them, so a node the target holds has its whole subtree there. Lost ranges name nothing.
    """
    return [e for e in entries if e.digest is not None and e.digest not in present]


def known_from_edge(root: Entry | None, edge: Iterable[Node]) -> set[str]:
    """Digests the target certainly holds, learnt from its newest root and the nodes of that tree's right edge.

    A commit's whole tree is in the target, so every entry of those nodes names an object there. An append
    rewrites only the right edge, so these are all the shared objects the next tree's new nodes can name.
    """
    known = {root.digest} if root is not None and root.digest is not None else set()
    for node in edge:
        known.update(e.digest for e in node.entries if e.digest is not None)
    return known


def lag(pending: int, oldest_committed_at: str | None, now: datetime) -> tuple[int, float]:
    """The target's lag behind the source: ``pending`` commits still to copy, and the seconds since the oldest
    of them was committed to the source (0 when none is pending)."""
    if not pending or oldest_committed_at is None:
        return 0, 0.0
    oldest = datetime.fromisoformat(oldest_committed_at)
    return pending, max(0.0, (now - oldest).total_seconds())


def _digest(commit: Commit) -> str | None:
    return commit.root.digest if commit.root else None
