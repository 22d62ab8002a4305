"""Which records a replay sends: per source partition an offset range, with its record and byte counts.

The figures come from the archive's index; only the segments cut by a range's ends are read (their offset
column), so records are exact. Bytes are archived (segment) bytes, pro rata for cut segments. The plan is also
what ``--dry-run`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pyrostore.archive import Archive, PartitionArchive, open_archive
from pyrostore.errors import EmptyRange, InvalidReplayOptions, OffsetOutOfRange
from pyrostore.index.node import Entry
from pyrostore.replay.options import ReplayOptions


@dataclass(frozen=True)
class PartitionRange:
    """One source partition's share of a replay: offsets ``[start, stop)``, their records and archived bytes."""

    partition: int
    start: int
    stop: int
    records: int
    bytes: int


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay (or one worker of it) sends: the source and target topics and a range per partition."""

    topic: str
    to_topic: str
    ranges: tuple[PartitionRange, ...]

    @property
    def records(self) -> int:
        """Records in all ranges."""
        return sum(r.records for r in self.ranges)

    @property
    def bytes(self) -> int:
        """Archived bytes of those records."""
        return sum(r.bytes for r in self.ranges)

    def describe(self) -> list[str]:
        """Human-readable lines: one per partition, then the totals (the dry run's output)."""
        lines = [
            f"{self.topic}/{r.partition}: offsets {r.start}..{r.stop - 1}  records {r.records}  bytes {r.bytes}"
            if r.records
            else f"{self.topic}/{r.partition}: nothing in range"
            for r in self.ranges
        ]
        lines.append(
            f"total: {len(self.ranges)} partition(s), {self.records} records, {self.bytes} archived bytes "
            f"-> topic {self.to_topic}"
        )
        return lines


def select_partitions(
    archived: Sequence[int], requested: Iterable[int] | None, worker_index: int = 0, workers: int = 1
) -> list[int]:
    """The source partitions one worker replays: the requested (or all archived) ones, every ``workers``-th.

    Raises InvalidReplayOptions naming a requested partition the archive does not hold.
    """
    chosen = sorted(set(requested)) if requested is not None else sorted(archived)
    missing = [p for p in chosen if p not in archived]
    if missing:
        raise InvalidReplayOptions(
            f"--partitions {','.join(map(str, missing))}: not archived (the archive holds {list(archived)})"
        )
    return [p for i, p in enumerate(chosen) if i % workers == worker_index]


def clamp_offsets(
    partition: int, start_offset: int, next_offset: int, first: int | None, stop: int | None
) -> tuple[int, int]:
    """The range ``[first, stop)`` within the archive's ``[start_offset, next_offset)`` (empty when start >= stop).

    A start before the archive's start is an error (those records are not archived); a stop past its end
    stops at the end.
    """
    if first is not None and first < start_offset:
        raise OffsetOutOfRange(
            f"partition {partition}: --from-offset {first} is before the archive's start {start_offset}"
        )
    begin = start_offset if first is None else first
    end = next_offset if stop is None else min(stop, next_offset)
    return begin, max(begin, end)


def range_figures(
    entries: Iterable[Entry], start: int, stop: int, count_cut: Callable[[Entry], int]
) -> tuple[int, int]:
    """Records and archived bytes of ``[start, stop)`` from its index entries.

    ``count_cut(entry)`` counts the records in range of an entry the range cuts. Raises OffsetOutOfRange on a
    lost range inside.
    """
    records = nbytes = 0
    for entry in entries:
        if entry.lost:
            raise OffsetOutOfRange(f"offsets {entry.base}..{entry.end - 1} were lost before they were archived")
        if entry.records == 0:
            continue
        inside = entry.records if start <= entry.base and entry.end <= stop else count_cut(entry)
        records += inside
        nbytes += entry.bytes * inside // entry.records
    return records, nbytes


def plan_partition(reader: PartitionArchive, options: ReplayOptions) -> PartitionRange:
    """One partition's range under the options' bounds, with exact record counts."""
    first, stop = options.from_offset, options.to_offset
    if options.from_time is not None:
        first = reader.offset_for_time(options.from_time)
        if first is None:
            return PartitionRange(reader.partition, reader.next_offset, reader.next_offset, 0, 0)
        first = max(first, reader.start_offset)
    if options.to_time is not None:
        stop = reader.offset_for_time(options.to_time)
    start, stop = clamp_offsets(reader.partition, reader.start_offset, reader.next_offset, first, stop)
    if start >= stop:
        return PartitionRange(reader.partition, start, start, 0, 0)

    def count_cut(entry: Entry) -> int:
        return reader.read_segment(entry, columns=["offset"], start=start, stop=stop).num_rows

    try:
        records, nbytes = range_figures(reader.segments(start, stop), start, stop, count_cut)
    except OffsetOutOfRange as exc:
        raise OffsetOutOfRange(f"{reader.topic}/{reader.partition}: {exc}") from exc
    return PartitionRange(reader.partition, start, stop, records, nbytes)


def plan_replay(options: ReplayOptions, archive: Archive | None = None, whole: bool = False) -> ReplayPlan:
    """The plan of this worker's share (of the whole replay when ``whole``). Raises EmptyRange when empty.

    Raises TopicNotFound (and store errors) when the archive or the topic is missing.
    """
    archive = archive or open_archive(options.store_url, **options.store_options)
    archived = archive.partitions(options.topic)
    index, workers = (0, 1) if whole else (options.worker_index, options.workers)
    chosen = select_partitions(archived, options.partitions, index, workers)
    ranges = tuple(plan_partition(archive.partition(options.topic, p), options) for p in chosen)
    plan = ReplayPlan(options.topic, options.to_topic, ranges)
    if plan.records == 0 and (whole or workers == 1):
        raise EmptyRange(f"nothing to replay: {_bounds_text(options)} of {options.topic} holds no archived record")
    return plan


def _bounds_text(options: ReplayOptions) -> str:
    parts = [
        f"{flag} {value}"
        for flag, value in (
            ("--from-offset", options.from_offset),
            ("--from-time", options.from_time),
            ("--to-offset", options.to_offset),
            ("--to-time", options.to_time),
        )
        if value is not None
    ]
    return "the range " + " ".join(parts) if parts else "the whole archive"
