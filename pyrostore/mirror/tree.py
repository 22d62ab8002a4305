"""Copying what one commit's tree needs and the target lacks: walk only subtrees whose digests the target
lacks, then write segments first and nodes bottom-up, so that every node the target holds has its whole
subtree there (the invariant that lets a later walk stop at any node the target holds)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyrostore.index.node import Entry, decode_node
from pyrostore.layout import node_key
from pyrostore.mirror.copier import Copier
from pyrostore.mirror.decisions import check_reference, missing_entries

# Segments copied at once: they are large (up to tens of MB each), so a few streams fill a link.
PARALLEL_COPIES = 4


@dataclass
class TreePlan:
    """What a tree needs copied: segments (leaf entries), and nodes (key, bytes, level) children first."""

    segments: list[Entry] = field(default_factory=list)
    nodes: list[tuple[str, bytes, int]] = field(default_factory=list)


class TreeCopier:
    """Copies the trees of one partition's commits into the target, remembering what it knows the target holds.

    ``present`` holds digests known to be in the target (seeded from the target's newest tree); anything else
    is looked up in the target before it is read from the source, so a rerun after a kill copies nothing twice.
    """

    def __init__(self, copier: Copier, topic: str, partition: int, present: set[str]) -> None:
        self.copier = copier
        self.topic = topic
        self.partition = partition
        self.present = present

    def copy(self, root: Entry | None, stopping: Callable[[], bool] = lambda: False) -> TreePlan:
        """Make the target hold the whole tree of ``root``; return what was copied. Raises IntegrityError for
        an object whose bytes or content the source got wrong (before writing it), and StoreError."""
        plan = TreePlan()
        if root is not None:
            self._plan(root, None, plan)
        with ThreadPoolExecutor(PARALLEL_COPIES, thread_name_prefix="pyrostore-mirror") as pool:
            list(pool.map(self._copy_segment, plan.segments))
            for level in sorted({level for _, _, level in plan.nodes}):  # children before parents
                if stopping():
                    return plan
                list(pool.map(lambda item: self.copier.write(item[0], item[1]), _at(plan.nodes, level)))
        self.present.update(e.digest for e in plan.segments if e.digest)
        self.present.update(key.rsplit("/", 1)[-1] for key, _, _ in plan.nodes)
        return plan

    def _plan(self, entry: Entry, expected_level: int | None, plan: TreePlan) -> None:
        """Add what the subtree named by ``entry`` needs to ``plan`` (the entry's node after its children)."""
        digest = entry.digest
        assert digest is not None  # missing_entries never yields a lost range, and roots name nodes
        key = node_key(self.topic, digest)
        if self.copier.target_has(key):
            self.present.add(digest)
            return
        data = self.copier.read(key)
        node = decode_node(data, digest, f"{self.copier.source.url}/{key}")
        check_reference(entry, node, expected_level, f"{self.copier.source.url}/{key}")
        for child in missing_entries(node.entries, self.present):
            if node.level > 0:
                self._plan(child, node.level - 1, plan)
            else:
                plan.segments.append(child)
        plan.nodes.append((key, data, node.level))

    def _copy_segment(self, entry: Entry) -> None:
        assert entry.digest is not None
        key = entry.segment_key(self.topic, self.partition)
        if self.copier.target_has(key):
            return
        self.copier.write(key, self.copier.read_segment(key, entry.digest, entry.bytes))


def _at(nodes: list[tuple[str, bytes, int]], level: int) -> list[tuple[str, bytes, int]]:
    return [item for item in nodes if item[2] == level]
