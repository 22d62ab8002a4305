"""A partition's history as ``pyrostore log`` shows it: one row per commit, oldest first.

Pure: the rows are built from commits already read (:func:`~pyrostore.index.commits.iter_commits` reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum

from pyrostore.index.commits import Commit

FIELDS = (
    "topic",
    "partition",
    "seq",
    "committed_at",
    "kind",
    "writer_id",
    "writer_epoch",
    "start_offset",
    "next_offset",
    "records",
    "segments",
    "bytes",
    "root",
)


class CommitKind(StrEnum):
    """What a commit did, seen from the one before it."""

    CLAIM = "claim"  # a writer took the partition over (a new epoch): nothing archived
    APPEND = "append"  # segments archived
    LOST = "lost"  # offsets recorded as lost: the archive's end moved, no record was added


def commit_kind(previous: Commit | None, commit: Commit) -> CommitKind:
    """What ``commit`` did after ``previous`` (None: it is the partition's first, always a claim)."""
    if previous is None or commit.writer_epoch != previous.writer_epoch:
        return CommitKind.CLAIM
    return CommitKind.APPEND if commit.records > previous.records else CommitKind.LOST


def history(commits: Iterable[Commit]) -> Iterator[dict]:
    """One row per commit (the :data:`FIELDS`, ``root`` as the root digest or None), in the order given, which
    must be sequence order with no commit left out (each row's kind depends on the commit before)."""
    previous: Commit | None = None
    for commit in commits:
        yield {
            "topic": commit.topic,
            "partition": commit.partition,
            "seq": commit.seq,
            "committed_at": commit.committed_at,
            "kind": str(commit_kind(previous, commit)),
            "writer_id": commit.writer_id,
            "writer_epoch": commit.writer_epoch,
            "start_offset": commit.start_offset,
            "next_offset": commit.next_offset,
            "records": commit.records,
            "segments": commit.segments,
            "bytes": commit.bytes,
            "root": commit.root.digest if commit.root else None,
        }
        previous = commit
