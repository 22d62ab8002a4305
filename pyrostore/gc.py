"""Remove garbage: segments and index nodes that no commit references, once older than a grace period.

Such objects come from writers that crashed or lost a race between uploading and committing. Every commit's
root is kept (time travel), so an object is live if any commit of its partition reaches it. Candidates are
listed before references are gathered, so an object committed in between is seen as referenced; the grace
period protects objects that a live writer uploaded but has not committed yet, and each candidate is
stat'ed again just before deletion because a writer that re-archives the same records re-uploads the same
bytes under the same key. What remains is the instant between that stat and the delete (docs/format.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyrostore.archive import Archive
from pyrostore.errors import ObjectNotFound
from pyrostore.index import tree
from pyrostore.index.commits import iter_commits
from pyrostore.layout import node_key, node_prefix, segment_prefix


@dataclass
class GcReport:
    """What a gc pass found and did."""

    deleted: list[str] = field(default_factory=list)
    kept_young: list[str] = field(default_factory=list)  # unreferenced but within the grace period
    referenced: int = 0


def collect_garbage(
    archive: Archive,
    grace: timedelta,
    topics: list[str] | None = None,
    dry_run: bool = False,
    on_delete: Callable[[str], None] | None = None,
) -> GcReport:
    """Delete unreferenced segments and nodes older than ``grace`` in ``topics`` (default: all)."""
    report = GcReport()
    store = archive.store
    cutoff = datetime.now(UTC) - grace
    logged = archive.logged_partitions()
    for topic in topics or list(logged):
        candidates = [*store.list(segment_prefix(topic)), *store.list(node_prefix(topic))]
        live = _referenced(archive, topic, logged.get(topic, []))
        report.referenced += len(live)
        for info in candidates:
            if info.key in live:
                continue
            # Re-stat: a writer may have re-uploaded identical bytes (same key) since the listing.
            if info.modified > cutoff or _modified(store, info.key) > cutoff:
                report.kept_young.append(info.key)
                continue
            if not dry_run:
                store.delete(info.key)
            report.deleted.append(info.key)
            if on_delete:
                on_delete(info.key)
    return report


def _modified(store, key: str) -> datetime:
    try:
        return store.stat(key).modified
    except ObjectNotFound:
        return datetime.max.replace(tzinfo=UTC)  # gone already: nothing to delete


def _referenced(archive: Archive, topic: str, partitions: list[int]) -> set[str]:
    """Keys of every node and segment reachable from any commit of the given partitions of ``topic``.

    Partitions come from the commit log itself, not from the head hints: a partition whose hint is missing
    must still protect its objects.
    """
    nodes = tree.NodeStore(archive.store, topic)
    live: set[str] = set()
    for partition in partitions:
        roots = (commit.root for commit in iter_commits(archive.store, topic, partition))
        for visit in tree.walk(nodes, roots):
            if visit.error is not None:  # never guess: an unreadable node may protect anything
                raise visit.error
            if visit.first and visit.entry.digest is not None:  # loaded, so it names a node
                live.add(node_key(topic, visit.entry.digest))
                live.update(e.segment_key(topic, partition) for e in visit.leaves if not e.lost)
    return live
