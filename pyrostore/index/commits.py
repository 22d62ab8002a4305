"""A partition's commit log: one small create-only object per commit, and the head hint that finds the newest.

Commit ``seq`` names the tree root that holds every segment archived so far. Commits are never overwritten:
whoever creates ``seq`` first wins, and every past root stays readable. The head hint is a copy of a recent
commit's exact bytes, overwritten at most about once a second; a reader takes the hint and then lists the
commits after it, so finding the newest commit costs one read and one listing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from pyrostore.errors import FormatError, IntegrityError, ObjectNotFound
from pyrostore.index.node import Entry
from pyrostore.layout import commit_key, commit_prefix, head_key, parse_commit_seq
from pyrostore.store import ObjectStore

COMMIT_FORMAT = 1


@dataclass(frozen=True)
class Commit:
    """One commit of a partition: the tree after it and who wrote it.

    ``start_offset`` is where the partition's archive begins and ``next_offset`` the offset after the last
    archived position (trailing gaps included); the tree covers exactly ``[start_offset, next_offset)``.
    ``writer_epoch`` rises with every writer that claims the partition; ``parent_root`` is the previous
    commit's root digest.
    """

    topic: str
    partition: int
    seq: int
    root: Entry | None
    parent_root: str | None
    start_offset: int
    next_offset: int
    writer_epoch: int
    writer_id: str
    committed_at: str

    @property
    def records(self) -> int:
        """Records archived up to this commit."""
        return self.root.records if self.root else 0

    @property
    def bytes(self) -> int:
        """Segment bytes archived up to this commit."""
        return self.root.bytes if self.root else 0

    @property
    def segments(self) -> int:
        """Segments archived up to this commit."""
        return self.root.segments if self.root else 0

    def successor(self, root: Entry | None, next_offset: int, writer_epoch: int, writer_id: str) -> Commit:
        """The commit that follows this one with a new tree and writer, made now, or at this one's time if the
        writer's clock is behind it (``committed_at`` never falls with ``seq``: readers as of a time bisect on it)."""
        return replace(
            self,
            seq=self.seq + 1,
            root=root,
            parent_root=self.root.digest if self.root else None,
            next_offset=next_offset,
            writer_epoch=writer_epoch,
            writer_id=writer_id,
            committed_at=max(now(), self.committed_at, key=datetime.fromisoformat),
        )


def now() -> str:
    """The current time as an ISO 8601 UTC string, as commits record it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def encode_commit(commit: Commit) -> bytes:
    """The commit's bytes: one line of canonical JSON, then a line with that line's hex SHA-256."""
    doc = {"format": COMMIT_FORMAT, **asdict(commit)}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return body + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n"


def decode_commit(data: bytes, name: str) -> Commit:
    """Parse and check a commit object. Raises FormatError for another format, IntegrityError otherwise."""
    body, _, trailer = data.rstrip(b"\n").rpartition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != trailer:
        raise IntegrityError(f"commit {name}: its checksum line does not match its content")
    try:
        doc = json.loads(body)
        if doc.pop("format") != COMMIT_FORMAT:
            raise FormatError(f"commit {name}: format is not {COMMIT_FORMAT}")
        root = doc.pop("root")
        commit = Commit(root=Entry(**root) if root else None, **doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"commit {name}: not a valid commit ({exc})") from exc
    covered = (commit.root.base, commit.root.end) if commit.root else (commit.start_offset, commit.start_offset)
    if covered != (commit.start_offset, commit.next_offset):
        raise IntegrityError(
            f"commit {name}: tree covers [{covered[0]}, {covered[1]}) but the commit says "
            f"[{commit.start_offset}, {commit.next_offset})"
        )
    return commit


def read_commit(store: ObjectStore, topic: str, partition: int, seq: int) -> Commit:
    """Commit ``seq`` of a partition. Raises ObjectNotFound, IntegrityError."""
    key = commit_key(topic, partition, seq)
    commit = decode_commit(store.get(key), f"{store.url}/{key}")
    if (commit.topic, commit.partition, commit.seq) != (topic, partition, seq):
        raise IntegrityError(f"commit {store.url}/{key} names {commit.topic}/{commit.partition} seq {commit.seq}")
    return commit


def create_commit(store: ObjectStore, commit: Commit) -> None:
    """Create the commit object, create-only. Raises ObjectExists when another writer took that ``seq``."""
    store.create(commit_key(commit.topic, commit.partition, commit.seq), encode_commit(commit))


def write_head(store: ObjectStore, commit: Commit) -> None:
    """Point the partition's head hint at ``commit``. Raises StoreError."""
    store.put(head_key(commit.topic, commit.partition), encode_commit(commit))


def read_head(store: ObjectStore, topic: str, partition: int) -> Commit | None:
    """The partition's newest commit, or None when the partition has never been archived."""
    key = head_key(topic, partition)
    hint: Commit | None
    try:
        hint = decode_commit(store.get(key), f"{store.url}/{key}")
        if (hint.topic, hint.partition) != (topic, partition):
            hint = None
    except (ObjectNotFound, IntegrityError, FormatError):
        hint = None  # only a hint: without it the listing starts at the first commit (verify reports damage)
    newest_seq = None
    for info in store.list(commit_prefix(topic, partition), start_after=_after(topic, partition, hint)):
        newest_seq = parse_commit_seq(info.key)
    if newest_seq is None:
        return hint
    return read_commit(store, topic, partition, newest_seq)


def iter_commits(store: ObjectStore, topic: str, partition: int, after: int | None = None) -> Iterator[Commit]:
    """Every commit of the partition in sequence order (after ``after``, when given)."""
    start = commit_key(topic, partition, after) if after is not None else None
    for info in store.list(commit_prefix(topic, partition), start_after=start):
        yield read_commit(store, topic, partition, parse_commit_seq(info.key))


def _after(topic: str, partition: int, hint: Commit | None) -> str | None:
    return commit_key(topic, partition, hint.seq) if hint else None
