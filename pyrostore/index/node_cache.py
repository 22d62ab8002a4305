"""Decoded index nodes kept in memory, bounded by the entries they hold rather than by their number.

A long-running writer or reader of a growing partition sees a new rightmost leaf at every commit: a copy of the
last one with the new segments appended, up to the tree's fanout (512) entries. A cache bounded by its number of
nodes keeps every version of that leaf, memory growing with the square of the partition's age (the archiver
saves each one; ``pyrostore serve`` re-reads each one while a client reads near the end). Bounded by entries,
superseded leaves leave as new ones come.

They leave at once, too: a node is known by its place in its tree (its level and its first entry, which later
versions share) and a later version of it (ending further on) replaces an earlier one in the cache. Old readers
still holding an older root read the earlier version again from the store if they need it. Without this, the
cache fills to its bound with dead versions within minutes and stays there (15 MB by default), which is memory a
sidecar pays for nothing. One cache may serve several topics (``pyrostore serve`` shares one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pyrostore.index.node import Entry, Node

DEFAULT_ENTRIES = 32768  # about 15 MB (some 470 bytes an entry): 64 full leaves, plenty for work near the ends
NodeKey = tuple[str, str]  # topic, node digest
Place = tuple[str, int, Entry]  # topic, level, first entry: where a node sits, the same in each of its versions


class NodeCache:
    """Decoded nodes of any topic, holding at most ``max_entries`` entries in all (a node larger than that is
    not kept), least recently used first out; safe to use from many threads."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._nodes: OrderedDict[NodeKey, Node] = OrderedDict()
        self._latest: dict[Place, NodeKey] = {}  # the version of each place that ends furthest on
        self._entries = 0
        self._lock = threading.Lock()

    @property
    def entries(self) -> int:
        """Entries held now."""
        return self._entries

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, key: NodeKey) -> Node | None:
        """The node cached under ``key``, or None."""
        with self._lock:
            node = self._nodes.get(key)
            if node is not None:
                self._nodes.move_to_end(key)
            return node

    def put(self, key: NodeKey, node: Node) -> None:
        """Keep ``node``, dropping an earlier version of it and then the least recently used nodes beyond the
        bound."""
        size = len(node.entries)
        if size > self.max_entries or size == 0:
            return
        with self._lock:
            if key in self._nodes:
                self._nodes.move_to_end(key)
                return
            place = _place(key, node)
            latest = self._latest.get(place)
            if latest is None or self._nodes[latest].entries[-1].end < node.entries[-1].end:
                if latest is not None:
                    self._remove(latest)
                self._latest[place] = key
            self._nodes[key] = node
            self._entries += size
            while self._entries > self.max_entries:
                self._remove(next(iter(self._nodes)))

    def _remove(self, key: NodeKey) -> None:
        node = self._nodes.pop(key)
        self._entries -= len(node.entries)
        place = _place(key, node)
        if self._latest.get(place) == key:
            del self._latest[place]


def _place(key: NodeKey, node: Node) -> Place:
    return (key[0], node.level, node.entries[0])
