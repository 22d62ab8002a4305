"""Decoded index nodes kept in memory, bounded by the entries they hold rather than by their number.

A long-running writer or reader of a growing partition sees a new rightmost leaf at every commit: a copy of the
last one with the new segments appended, up to the tree's fanout (512) entries. A cache bounded by its number of
nodes keeps every version of that leaf, memory growing with the square of the partition's age (the archiver
saves each one; ``pyrostore serve`` re-reads each one while a client reads near the end). Bounded by entries,
superseded leaves leave as new ones come. One cache may serve several topics (``pyrostore serve`` shares one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pyrostore.index.node import Node

DEFAULT_ENTRIES = 32768  # about 15 MB (some 470 bytes an entry): 64 full leaves, plenty for work near the ends
NodeKey = tuple[str, str]  # topic, node digest


class NodeCache:
    """Decoded nodes of any topic, holding at most ``max_entries`` entries in all (a node larger than that is
    not kept), least recently used first out; safe to use from many threads."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._nodes: OrderedDict[NodeKey, Node] = OrderedDict()
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
        """Keep ``node``, dropping the least recently used ones beyond the bound."""
        size = len(node.entries)
        if size > self.max_entries:
            return
        with self._lock:
            if key in self._nodes:
                self._nodes.move_to_end(key)
                return
            self._nodes[key] = node
            self._entries += size
            while self._entries > self.max_entries:
                _, dropped = self._nodes.popitem(last=False)
                self._entries -= len(dropped.entries)
