"""Copying what one commit's tree needs and the target lacks: walk only subtrees whose digests the target
lacks, then write segments first and nodes bottom-up, so that every node the target holds has its whole
subtree there (the invariant that lets a later walk stop at any node the target holds)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyrostore.index.node import Entry, decode_node
from pyrostore.layout import node_key
from pyrostore.mirror.copier import PARALLEL_COPIES, Copier
from pyrostore.mirror.decisions import check_reference, missing_entries


@dataclass
class TreePlan:
    """What one or more trees need copied: segments (leaf entries), nodes (key, bytes, level) children first, and
    the digests of both (so that trees planned together share their objects)."""

    segments: list[Entry] = field(default_factory=list)
    nodes: list[tuple[str, bytes, int]] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)
    segment_bytes: int = 0


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

    def plan(self, root: Entry | None, plan: TreePlan) -> TreePlan:
        """Add what the tree of ``root`` needs and the target lacks to ``plan`` (several trees may share one plan);
        nothing is written. Raises IntegrityError for a node whose bytes or content the source got wrong."""
        if root is not None and root.digest not in _Either(self.present, plan.digests):
            self._plan(root, None, plan)
        return plan

    def execute(self, plan: TreePlan, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Write what ``plan`` holds: segments (several at a time, each digest-checked), then nodes level by level
        from the leaves up. Returns False when ``stopping`` said so before the nodes were all written. Raises
        IntegrityError for a damaged segment (before writing it), and StoreError."""
        with ThreadPoolExecutor(PARALLEL_COPIES, thread_name_prefix="pyrostore-mirror") as pool:
            list(pool.map(self._copy_segment, plan.segments))
            for level in sorted({level for _, _, level in plan.nodes}):  # children before parents
                if stopping():
                    return False
                list(pool.map(lambda item: self.copier.write(item[0], item[1]), _at(plan.nodes, level)))
        self.present.update(plan.digests)
        return True

    def copy(self, root: Entry | None, stopping: Callable[[], bool] = lambda: False) -> TreePlan:
        """Make the target hold the whole tree of ``root``; return what was copied. Raises as :meth:`plan` and
        :meth:`execute`."""
        plan = self.plan(root, TreePlan())
        self.execute(plan, stopping)
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
        for child in missing_entries(node.entries, _Either(self.present, plan.digests)):
            if node.level > 0:
                self._plan(child, node.level - 1, plan)
            else:
                plan.segments.append(child)
                plan.segment_bytes += child.bytes
                plan.digests.add(child.digest or "")
        plan.nodes.append((key, data, node.level))
        plan.digests.add(digest)

    def _copy_segment(self, entry: Entry) -> None:
        assert entry.digest is not None
        key = entry.segment_key(self.topic, self.partition)
        with self.copier.copy_slot():  # shared by every partition mirrored at once
            if self.copier.target_has(key):
                return
            self.copier.write(key, self.copier.read_segment(key, entry.digest, entry.bytes))


class _Either:
    """Membership in either of two sets, without building their union."""

    def __init__(self, first: set[str], second: set[str]) -> None:
        self.first, self.second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


def _at(nodes: list[tuple[str, bytes, int]], level: int) -> list[tuple[str, bytes, int]]:
    return [item for item in nodes if item[2] == level]
