"""Index tree nodes: entries with their aggregates, and the canonical encoding that names a node.

A node is canonical JSON (sorted keys, no spaces, ASCII); its key is the SHA-256 of those bytes. A leaf's
entries point at segments (or record a lost range); an internal node's entries point at child nodes and carry
the aggregates of the child's whole subtree. Entries of one node tile the offsets: each starts at the previous
one's ``end``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pyrostore.errors import FormatError, IntegrityError
from pyrostore.layout import segment_key

NODE_FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One entry of a node: the offset range ``[base, end)`` it covers and what lies there.

    ``first``/``last`` are the first and last record offsets inside (None when it holds no record);
    ``min_ts``/``max_ts`` the smallest and largest record timestamps in ms (None likewise). In a leaf,
    ``digest`` names a segment, or is None for a range recorded as lost (``segments`` 0); in an internal node
    it names the child node.
    """

    base: int
    end: int
    first: int | None
    last: int | None
    records: int
    segments: int
    bytes: int
    min_ts: int | None
    max_ts: int | None
    digest: str | None

    @property
    def lost(self) -> bool:
        """Whether this leaf entry records offsets that were lost before they could be archived."""
        return self.digest is None

    def segment_key(self, topic: str, partition: int) -> str:
        """The key of the segment this leaf entry names. Raises ValueError for a lost range (it names none)."""
        if self.digest is None or self.first is None:
            raise ValueError(f"the entry at {self.base} of {topic}/{partition} names no segment (a lost range)")
        return segment_key(topic, partition, self.first, self.digest)


@dataclass(frozen=True)
class Node:
    """A tree node: ``level`` 0 is a leaf (entries name segments), higher levels name child nodes."""

    level: int
    entries: tuple[Entry, ...]


def summarize(entries: Sequence[Entry], digest: str | None) -> Entry:
    """The parent's entry for a node holding ``entries``: their aggregates, pointing at ``digest``."""
    firsts = [e.first for e in entries if e.first is not None]
    lasts = [e.last for e in entries if e.last is not None]
    mins = [e.min_ts for e in entries if e.min_ts is not None]
    maxes = [e.max_ts for e in entries if e.max_ts is not None]
    return Entry(
        base=entries[0].base,
        end=entries[-1].end,
        first=firsts[0] if firsts else None,
        last=lasts[-1] if lasts else None,
        records=sum(e.records for e in entries),
        segments=sum(e.segments for e in entries),
        bytes=sum(e.bytes for e in entries),
        min_ts=min(mins) if mins else None,
        max_ts=max(maxes) if maxes else None,
        digest=digest,
    )


_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_shape(entry: Entry, leaf: bool, where: str) -> None:
    """Raise IntegrityError unless the entry is one of the shapes the format allows.

    A leaf entry names one segment of at least one record, or is a lost range (no digest, no record, no
    segment); an internal entry always names a child node.
    """
    if entry.digest is not None and not _DIGEST.fullmatch(entry.digest):
        raise IntegrityError(f"{where}: {entry.digest!r} is not a lowercase hex SHA-256")
    if leaf and entry.digest is None:
        shaped = entry.records == 0 and entry.segments == 0 and entry.first is None and entry.bytes == 0
    elif leaf:
        shaped = entry.records >= 1 and entry.segments == 1 and entry.first is not None and entry.bytes > 0
    else:
        shaped = entry.digest is not None and entry.segments >= 0 and (entry.records == 0) == (entry.first is None)
    if not shaped:
        raise IntegrityError(f"{where}: entry at {entry.base} has an impossible shape {entry}")


def check_tiling(entries: Sequence[Entry], where: str) -> None:
    """Raise IntegrityError unless the entries are well-formed and each starts where the previous ended."""
    for previous, entry in zip((None, *entries), entries, strict=False):
        if previous is not None and entry.base != previous.end:
            raise IntegrityError(f"{where}: entry at {entry.base} does not start at the previous end {previous.end}")
        if entry.end <= entry.base:
            raise IntegrityError(f"{where}: entry covers an empty or negative range [{entry.base}, {entry.end})")
        if entry.records and (
            entry.first is None or entry.last is None or not entry.base <= entry.first <= entry.last < entry.end
        ):
            raise IntegrityError(
                f"{where}: records {entry.first}..{entry.last} lie outside [{entry.base}, {entry.end})"
            )


def encode_node(node: Node) -> tuple[bytes, str]:
    """The node's canonical bytes and their hex SHA-256 digest."""
    doc = {"format": NODE_FORMAT, "level": node.level, "entries": [asdict(e) for e in node.entries]}
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return data, hashlib.sha256(data).hexdigest()


def decode_node(data: bytes, digest: str, name: str) -> Node:
    """Parse a node after checking its bytes against ``digest``. Raises IntegrityError, FormatError."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise IntegrityError(f"index node {name}: content digest is {actual}, its name says {digest}")
    try:
        doc = json.loads(data)
        if doc["format"] != NODE_FORMAT:
            raise FormatError(f"index node {name}: format {doc['format']} is not {NODE_FORMAT}")
        node = Node(level=int(doc["level"]), entries=tuple(Entry(**e) for e in doc["entries"]))
        if not node.entries:
            raise IntegrityError(f"index node {name}: has no entries")
        for entry in node.entries:
            check_shape(entry, node.level == 0, f"index node {name}")
        check_tiling(node.entries, f"index node {name}")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"index node {name}: not a valid node ({exc})") from exc
    return node
