"""Decoded index nodes for the server, bounded by the entries they hold rather than by their number.

The server re-reads a partition's newest commit every refresh interval while a client reads near its end, and
every commit has a new rightmost leaf (a copy of the last one with the new segments appended; up to the tree's
fanout, 512, entries) and a new root. An index's own node cache, bounded at thousands of nodes, then keeps every
version of that leaf: memory growing with the square of the partition's age, hundreds of MB before the bound.
Here every served topic shares one cache of at most ``max_entries`` entries, least recently used first out, so
superseded leaves leave as new ones come.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pyrostore.index.node import Node
from pyrostore.index.tree import NodeStore
from pyrostore.store import ObjectStore

NODE_CACHE_ENTRIES = 32768  # about 15 MB (some 470 bytes an entry): 64 full leaves, plenty for reads near the ends
NodeKey = tuple[str, str]  # topic, node digest


class NodeCache:
    """Decoded nodes of any topic, holding at most ``max_entries`` entries in all (a node larger than that is
    not kept); safe to use from many threads."""

    def __init__(self, max_entries: int = NODE_CACHE_ENTRIES) -> None:
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


class CachedNodes(NodeStore):
    """One topic's index nodes, read (never written) through a :class:`NodeCache` shared by every topic; the
    NodeStore's own cache is off."""

    def __init__(self, store: ObjectStore, topic: str, cache: NodeCache) -> None:
        super().__init__(store, topic, cache_nodes=0)
        self.cache = cache

    def load(self, digest: str | None) -> Node:
        """The node named ``digest``, from the shared cache or the store. Raises what NodeStore.load raises."""
        if digest is not None and (node := self.cache.get((self.topic, digest))) is not None:
            return node
        node = super().load(digest)
        assert digest is not None  # NodeStore.load raised otherwise
        self.cache.put((self.topic, digest), node)
        return node
