"""Comparing two archives partition by partition: the newest commit both hold, whether their newest roots are
equal, and the objects each newest tree has that the other's lacks, found by descending only where digests
differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyrostore.archive import Archive
from pyrostore.errors import TopicNotFound
from pyrostore.index.commits import Commit
from pyrostore.index.node import Entry, Node
from pyrostore.index.tree import NodeStore
from pyrostore.layout import check_topic, node_key
from pyrostore.mirror.partition import newest_commit, read_commit_at
from pyrostore.store import ObjectStore


@dataclass
class TreeDifference:
    """Objects only one of two trees holds: node digests, and leaf entries (segments) by key."""

    nodes_a: set[str] = field(default_factory=set)
    nodes_b: set[str] = field(default_factory=set)
    segments_a: dict[str, Entry] = field(default_factory=dict)
    segments_b: dict[str, Entry] = field(default_factory=dict)


def tree_difference(
    load_a: Callable[[str], Node],
    load_b: Callable[[str], Node],
    root_a: Entry | None,
    root_b: Entry | None,
    segment_key: Callable[[Entry], str],
) -> TreeDifference:
    """What tree ``a`` holds that ``b`` lacks and the reverse, loading only nodes whose digests differ.

    Both fronts descend from the highest level down, one level at a time; a digest in both fronts is a shared
    subtree and is dropped from both (a node's level is part of its content, so a shared node is met at the
    same level on both sides).
    """
    found = TreeDifference()
    front_a = {root_a.digest: load_a(root_a.digest)} if root_a and root_a.digest else {}
    front_b = {root_b.digest: load_b(root_b.digest)} if root_b and root_b.digest else {}
    leaves_a: dict[str, Entry] = {}
    leaves_b: dict[str, Entry] = {}
    while front_a or front_b:
        for digest in front_a.keys() & front_b.keys():
            del front_a[digest], front_b[digest]
        level = max((node.level for node in (*front_a.values(), *front_b.values())), default=-1)
        for front, load, nodes, leaves in (
            (front_a, load_a, found.nodes_a, leaves_a),
            (front_b, load_b, found.nodes_b, leaves_b),
        ):
            for digest in [d for d, node in front.items() if node.level == level]:
                node = front.pop(digest)
                nodes.add(digest)
                for entry in node.entries:
                    if entry.digest is None:
                        continue
                    if level == 0:
                        leaves[segment_key(entry)] = entry
                    else:
                        front[entry.digest] = load(entry.digest)
    found.segments_a = {key: e for key, e in leaves_a.items() if key not in leaves_b}
    found.segments_b = {key: e for key, e in leaves_b.items() if key not in leaves_a}
    return found


@dataclass(frozen=True)
class PartitionDiff:
    """How one partition compares: each side's newest commit, the newest commit both hold (None: none), whether
    the newest roots are equal, and the keys (nodes and segments) of each side's newest tree the other lacks."""

    topic: str
    partition: int
    source_seq: int | None
    target_seq: int | None
    common_seq: int | None
    roots_equal: bool
    source_only: tuple[str, ...]
    target_only: tuple[str, ...]
    source_only_bytes: int
    target_only_bytes: int

    @property
    def same(self) -> bool:
        """Whether both sides hold exactly the same commits."""
        return self.source_seq == self.target_seq == self.common_seq


def diff_archives(source: ObjectStore, target: ObjectStore, topics: tuple[str, ...] = ()) -> list[PartitionDiff]:
    """Compare every partition of ``topics`` (default: every topic either side holds)."""
    a, b = Archive(source), Archive(target)
    diffs = []
    for topic in topics or tuple(sorted({*a.topics(), *b.topics()})):
        check_topic(topic)
        partitions = sorted({*_partitions(a, topic), *_partitions(b, topic)})
        if not partitions:
            raise TopicNotFound(f"neither {source.url} nor {target.url} holds an archive of topic {topic!r}")
        for partition in partitions:
            diffs.append(diff_partition(source, target, topic, partition))
    return diffs


def diff_partition(source: ObjectStore, target: ObjectStore, topic: str, partition: int) -> PartitionDiff:
    """Compare one partition of two archives."""
    newest_a, newest_b = newest_commit(source, topic, partition), newest_commit(target, topic, partition)
    common = _newest_common(source, target, topic, partition, newest_a, newest_b)
    root_a = newest_a.root if newest_a else None
    root_b = newest_b.root if newest_b else None
    nodes_a, nodes_b = NodeStore(source, topic), NodeStore(target, topic)
    found = tree_difference(nodes_a.load, nodes_b.load, root_a, root_b, lambda e: e.segment_key(topic, partition))
    return PartitionDiff(
        topic=topic,
        partition=partition,
        source_seq=newest_a.seq if newest_a else None,
        target_seq=newest_b.seq if newest_b else None,
        common_seq=common,
        roots_equal=(root_a.digest if root_a else None) == (root_b.digest if root_b else None),
        source_only=(*sorted(node_key(topic, d) for d in found.nodes_a), *sorted(found.segments_a)),
        target_only=(*sorted(node_key(topic, d) for d in found.nodes_b), *sorted(found.segments_b)),
        source_only_bytes=sum(e.bytes for e in found.segments_a.values()),
        target_only_bytes=sum(e.bytes for e in found.segments_b.values()),
    )


def _newest_common(
    source: ObjectStore, target: ObjectStore, topic: str, partition: int, a: Commit | None, b: Commit | None
) -> int | None:
    """The highest sequence at which both logs hold the same commit (None: none)."""
    if a is None or b is None:
        return None
    seq = min(a.seq, b.seq)
    while seq >= 0:
        here_a = a if a.seq == seq else read_commit_at(source, topic, partition, seq)
        here_b = b if b.seq == seq else read_commit_at(target, topic, partition, seq)
        if here_a is not None and here_a == here_b:
            return seq
        seq -= 1
    return None


def _partitions(archive: Archive, topic: str) -> list[int]:
    try:
        return archive.partitions(topic)
    except TopicNotFound:
        return []
