"""The copy-on-write B+tree of a partition's segments: append at the right edge, find by offset or time.

Nodes are immutable and content-addressed, so an append writes only the new rightmost path (plus nodes it
splits off) and every older root stays readable. A tree is named by its root entry (the summary of the
root node); the empty tree is ``None``. All nodes of one level sit at the same depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from pyrostore.errors import IntegrityError, ObjectNotFound, PyrostoreError
from pyrostore.index.node import Entry, Node, check_tiling, decode_node, encode_node, summarize
from pyrostore.index.node_cache import NodeCache
from pyrostore.layout import node_key
from pyrostore.store import ObjectStore

DEFAULT_FANOUT = 512


class NodeStore:
    """Reads and writes one topic's index nodes, keeping decoded nodes in ``cache`` (by default one of its own;
    several NodeStores may share one).

    Nodes never change once written, so a cached node is never stale. ``reads`` and ``writes`` count the
    store requests made, for benchmarks and tests.
    """

    def __init__(self, store: ObjectStore, topic: str, cache: NodeCache | None = None) -> None:
        self.store = store
        self.topic = topic
        self.cache = cache if cache is not None else NodeCache()
        self.reads = 0
        self.writes = 0

    def load(self, digest: str | None) -> Node:
        """The node named ``digest``. Raises IntegrityError if it is missing or its bytes are wrong, or if the
        entry meant to name it names nothing (``digest`` None: only a lost range in a leaf may)."""
        if digest is None:
            raise IntegrityError(f"an index entry of topic {self.topic!r} in {self.store.url} names no node")
        if (node := self.cache.get((self.topic, digest))) is not None:
            return node
        key = node_key(self.topic, digest)
        try:
            data = self.store.get(key)
        except ObjectNotFound as exc:
            raise IntegrityError(f"index node {key} in {self.store.url} is referenced but missing") from exc
        self.reads += 1
        node = decode_node(data, digest, f"{self.store.url}/{key}")
        self.cache.put((self.topic, digest), node)
        return node

    def save(self, node: Node) -> Entry:
        """Write ``node`` (idempotent: same content, same key) and return the parent entry naming it."""
        data, digest = encode_node(node)
        self.store.put(node_key(self.topic, digest), data)
        self.writes += 1
        self.cache.put((self.topic, digest), node)
        return summarize(node.entries, digest)


# --- append ------------------------------------------------------------------------------------------------


def append(nodes: NodeStore, root: Entry | None, leaves: Sequence[Entry], fanout: int = DEFAULT_FANOUT) -> Entry:
    """Append leaf entries after the tree's end; return the new root entry. Writes only new nodes.

    The first new entry must start at the tree's ``end``. Raises ValueError when the entries do not tile.
    """
    if fanout < 2:
        raise ValueError("fanout must be at least 2")
    if not leaves:
        if root is None:
            raise ValueError("cannot make a tree from no entries")
        return root
    check_tiling(leaves, "appended entries")
    if root is not None and leaves[0].base != root.end:
        raise ValueError(f"appended entries start at {leaves[0].base}, the tree ends at {root.end}")
    if root is None:
        level, entries = 0, _write_level(nodes, 0, list(leaves), fanout)
    else:
        top = nodes.load(root.digest)
        level, entries = top.level, _append_into(nodes, top, list(leaves), fanout)
    while len(entries) > 1:  # the root split: grow a level
        level += 1
        entries = _write_level(nodes, level, entries, fanout)
    return entries[0]


def _append_into(nodes: NodeStore, node: Node, leaves: list[Entry], fanout: int) -> list[Entry]:
    """Append under ``node``; return the entries that replace it in its parent (more than one if it split)."""
    if node.level == 0:
        combined = [*node.entries, *leaves]
    else:
        rightmost = nodes.load(node.entries[-1].digest)
        combined = [*node.entries[:-1], *_append_into(nodes, rightmost, leaves, fanout)]
    return _write_level(nodes, node.level, combined, fanout)


def _write_level(nodes: NodeStore, level: int, entries: list[Entry], fanout: int) -> list[Entry]:
    """Pack entries left to right into full nodes of ``level`` (the last one partial) and write them."""
    return [nodes.save(Node(level, tuple(entries[i : i + fanout]))) for i in range(0, len(entries), fanout)]


# --- lookups -----------------------------------------------------------------------------------------------


def find_offset(nodes: NodeStore, root: Entry | None, offset: int) -> Entry | None:
    """The leaf entry whose range holds ``offset``, or None when the tree does not cover it."""
    if root is None or not root.base <= offset < root.end:
        return None
    node = nodes.load(root.digest)
    while True:
        entry = node.entries[_last_at_or_before(node.entries, offset)]
        if node.level == 0:
            return entry
        node = nodes.load(entry.digest)


def find_time(nodes: NodeStore, root: Entry | None, timestamp: int) -> Entry | None:
    """The first leaf entry (in offset order) holding a record with a timestamp >= ``timestamp``.

    The earliest offset whose timestamp is >= t lies in that segment, even when timestamps are not monotonic
    (Kafka's ``offsetsForTimes``); None when no record is that late.
    """
    if root is None or root.max_ts is None or root.max_ts < timestamp:
        return None
    node = nodes.load(root.digest)
    while True:
        entry = next(e for e in node.entries if e.max_ts is not None and e.max_ts >= timestamp)
        if node.level == 0:
            return entry
        node = nodes.load(entry.digest)


def iter_leaves(nodes: NodeStore, root: Entry | None, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
    """Leaf entries overlapping ``[start, stop)`` in offset order, loading nodes lazily as it goes."""
    if root is None:
        return
    yield from _iter_under(nodes, nodes.load(root.digest), start, stop)


def _iter_under(nodes: NodeStore, node: Node, start: int, stop: int | None) -> Iterator[Entry]:
    for entry in node.entries[_last_at_or_before(node.entries, start) :]:
        if stop is not None and entry.base >= stop:
            return
        if entry.end <= start:
            continue
        if node.level == 0:
            yield entry
        else:
            yield from _iter_under(nodes, nodes.load(entry.digest), start, stop)


def _last_at_or_before(entries: Sequence[Entry], offset: int) -> int:
    """Index of the last entry whose base is <= offset (0 when offset lies before them all)."""
    low, high = 0, len(entries)
    while high - low > 1:
        middle = (low + high) // 2
        if entries[middle].base <= offset:
            low = middle
        else:
            high = middle
    return low


# --- walking many trees --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One reference met by :func:`walk`: an entry naming a node, and what that node turned out to be.

    ``expected_level`` is the level the referencing parent implies (None for a root). ``level`` and ``summary``
    (the entry the node's own entries summarise to) describe the node on every visit, so that each reference can
    be checked; ``node`` itself comes only with the ``first`` visit, after which the walk descends into its
    children. ``error`` says why the node could not be loaded, on every visit of it (the other fields are None).
    """

    entry: Entry
    expected_level: int | None
    first: bool
    level: int | None = None
    summary: Entry | None = None
    node: Node | None = None
    error: PyrostoreError | None = None

    @property
    def leaves(self) -> tuple[Entry, ...]:
        """A leaf node's entries on its first visit, else none: each leaf node's entries come once.

        One entry may still come twice, from two leaf nodes: older trees' right edges hold it in nodes since replaced.
        """
        return self.node.entries if self.node is not None and self.node.level == 0 else ()


def walk(nodes: NodeStore, roots: Iterable[Entry | None]) -> Iterator[Visit]:
    """Every reference to a node in the trees of ``roots``, depth first, left to right, root after root.

    Trees of successive commits share all but their right edge, so each node is loaded once for the whole walk:
    a node met again is visited (its reference may still be wrong) but not descended into. A node that cannot be
    loaded is reported in its visit and the walk goes on without its subtree.
    """
    seen: dict[str | None, Visit] = {}  # digest -> what a later reference learns of the node (not the node itself)
    for root in roots:
        pending: list[tuple[Entry, int | None]] = [] if root is None else [(root, None)]
        while pending:
            entry, expected_level = pending.pop()
            if (known := seen.get(entry.digest)) is not None:
                yield replace(known, entry=entry, expected_level=expected_level)
                continue
            visit = _first_visit(nodes, entry, expected_level)
            seen[entry.digest] = replace(visit, first=False, node=None)
            yield visit
            if visit.node is not None and visit.node.level > 0:
                pending.extend((child, visit.node.level - 1) for child in reversed(visit.node.entries))


def _first_visit(nodes: NodeStore, entry: Entry, expected_level: int | None) -> Visit:
    try:
        node = nodes.load(entry.digest)
    except PyrostoreError as exc:
        return Visit(entry, expected_level, first=True, error=exc)
    summary = summarize(node.entries, entry.digest)
    return Visit(entry, expected_level, first=True, level=node.level, summary=summary, node=node)
