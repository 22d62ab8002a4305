"""Which committed segments a sync registers next, and the sync state recorded with them (pure).

The state is one JSON document per table: for each partition, the commit sequence number and the offset up to
which the archive's segments are in the table (``end``, exclusive). A sync writes the new state in the same
Iceberg commit as the files it adds, so the table never holds files its state does not account for, nor the
reverse: a sync killed at any moment leaves either both or neither, and the next sync resumes from the state.
Segments tile a partition's offsets and a commit only appends, so "everything below ``end``" is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyrostore.errors import IntegrityError, UsageError
from pyrostore.index.node import Entry

STATE_PROPERTY = "pyrostore.sync"
"""The snapshot (and table) property holding the sync state."""
STATE_FORMAT = 1


@dataclass(frozen=True)
class PartitionState:
    """How far one partition is synced: its archive's commit ``seq`` and the offset ``end`` (exclusive)."""

    seq: int
    end: int


@dataclass(frozen=True)
class SyncState:
    """What a table holds of one topic's archive."""

    topic: str
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    def end(self, partition: int) -> int:
        """The offset from which ``partition`` is not yet synced (0 for a partition never synced)."""
        state = self.partitions.get(partition)
        return state.end if state else 0


def encode_state(state: SyncState) -> str:
    """The state as the property value (canonical JSON)."""
    doc = {
        "format": STATE_FORMAT,
        "topic": state.topic,
        "partitions": {str(p): {"seq": s.seq, "end": s.end} for p, s in sorted(state.partitions.items())},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def decode_state(text: str, where: str) -> SyncState:
    """The state from a property value. Raises IntegrityError when it does not decode."""
    try:
        doc = json.loads(text)
        if doc["format"] != STATE_FORMAT:
            raise IntegrityError(f"{where}: sync state format {doc['format']!r} is not {STATE_FORMAT}")
        partitions = {int(p): PartitionState(int(s["seq"]), int(s["end"])) for p, s in doc["partitions"].items()}
        return SyncState(str(doc["topic"]), partitions)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{where}: sync state {STATE_PROPERTY!r} does not decode: {exc}") from exc


@dataclass(frozen=True)
class PartitionPlan:
    """One partition's part of a sync: the segment entries to add and the partition's state after it."""

    partition: int
    segments: list[Entry]
    after: PartitionState


@dataclass(frozen=True)
class SyncPlan:
    """A whole sync: what to add, per partition, and the state to record with it."""

    partitions: list[PartitionPlan]
    state: SyncState

    @property
    def segments(self) -> int:
        """How many segments the sync adds."""
        return sum(len(p.segments) for p in self.partitions)


def plan_partition(
    partition: int, seq: int, next_offset: int, leaves: Iterable[Entry], synced_end: int
) -> PartitionPlan:
    """The segments of one partition's commit ``seq`` at or past ``synced_end``.

    ``leaves`` are the commit's leaf entries from ``synced_end`` on, in offset order (lost ranges included: they
    add nothing but are passed over). Raises IntegrityError when the archive no longer matches the state: an
    entry straddling ``synced_end``, or a commit that ends before it.
    """
    if next_offset < synced_end:
        raise IntegrityError(
            f"partition {partition}: the archive ends at offset {next_offset}, before the {synced_end} already "
            "synced (is this the archive the table was synced from?)"
        )
    segments = []
    for entry in leaves:
        if entry.end <= synced_end:
            continue
        if entry.base < synced_end:
            raise IntegrityError(
                f"partition {partition}: segment {entry.base}..{entry.end - 1} straddles the synced offset "
                f"{synced_end} (is this the archive the table was synced from?)"
            )
        if not entry.lost:
            segments.append(entry)
    return PartitionPlan(partition, segments, PartitionState(seq, max(next_offset, synced_end)))


def plan_sync(state: SyncState, partitions: Iterable[PartitionPlan]) -> SyncPlan:
    """The sync of a topic from its partitions' plans, with the state to record (other partitions kept)."""
    plans = sorted(partitions, key=lambda p: p.partition)
    merged = dict(state.partitions)
    merged.update({p.partition: p.after for p in plans})
    return SyncPlan(plans, SyncState(state.topic, merged))


def check_topic_matches(state: SyncState, topic: str, table: str) -> None:
    """Refuse to sync ``topic`` into a table that holds another topic. Raises UsageError."""
    if state.topic != topic:
        raise UsageError(f"table {table} holds topic {state.topic!r}, not {topic!r}")
