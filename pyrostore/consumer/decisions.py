"""Pure decisions of the crossover consumer: which source serves an offset, and what logical offsets mean.

A partition's history lives in two places: the archive covers ``[archive_start, archive_next)`` (minus any
ranges recorded as lost) and Kafka holds ``[kafka_low, kafka_high)``. Reading from the archive is preferred
(history leaves the brokers alone), Kafka is preferred, or Kafka is never contacted. An offset that neither
holds is a hole: an error naming the range, never a silent jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# confluent_kafka's logical offsets.
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000
OFFSET_INVALID = -1001


class ReadMode(Enum):
    """``pyrostore.read.mode``: where history is read from."""

    ARCHIVE_PREFERRED = "archive-preferred"
    KAFKA_PREFERRED = "kafka-preferred"
    ARCHIVE_ONLY = "archive-only"

    @classmethod
    def parse(cls, text: str) -> ReadMode:
        """The mode named ``text``. Raises ValueError listing the valid names."""
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(mode.value for mode in cls)
            raise ValueError(f"pyrostore.read.mode {text!r} is not one of {names}") from None


class Source(Enum):
    """Where the next records of a partition come from."""

    ARCHIVE = "archive"
    KAFKA = "kafka"
    END = "end"  # archive-only mode at the archive's end: nothing more, for now
    HOLE = "hole"


@dataclass(frozen=True)
class Extent:
    """What each side holds of a partition. ``kafka_*`` are None when Kafka is not consulted."""

    archive_start: int | None
    archive_next: int | None
    kafka_low: int | None = None
    kafka_high: int | None = None
    lost: tuple[tuple[int, int], ...] = ()  # archived ranges recorded as lost, [start, end)

    def in_archive(self, offset: int) -> bool:
        """Whether the archive holds ``offset`` (inside its range and not in a lost range)."""
        start, end = self.archive_start, self.archive_next
        if start is None or end is None or not start <= offset < end:
            return False
        return not any(start <= offset < end for start, end in self.lost)

    def in_kafka(self, offset: int) -> bool:
        """Whether Kafka still holds ``offset`` (or will: offsets at or past its end are live)."""
        return self.kafka_low is not None and offset >= self.kafka_low


@dataclass(frozen=True)
class Decision:
    """Read ``offset`` from ``source`` until ``until`` (exclusive; None: no planned switch)."""

    source: Source
    offset: int
    until: int | None = None
    hole_end: int | None = None  # for a hole: the first offset after it that some side holds, if any


def decide(offset: int, extent: Extent, mode: ReadMode) -> Decision:
    """Which source serves ``offset`` now, and up to where."""
    run_end, in_kafka = _archive_run_end(offset, extent), extent.in_kafka(offset)
    if mode is ReadMode.ARCHIVE_ONLY:
        if run_end is not None:
            return Decision(Source.ARCHIVE, offset, run_end)
        if extent.archive_next is not None and offset >= extent.archive_next:
            return Decision(Source.END, offset)
        return Decision(Source.HOLE, offset, hole_end=_next_held(offset, extent))
    if mode is ReadMode.KAFKA_PREFERRED and in_kafka:
        return Decision(Source.KAFKA, offset)
    if run_end is not None:
        # Past the archive's end (or a lost range) Kafka takes over; re-decide there.
        if mode is ReadMode.KAFKA_PREFERRED and extent.kafka_low is not None:
            run_end = min(run_end, extent.kafka_low)
        return Decision(Source.ARCHIVE, offset, run_end)
    if in_kafka:
        # Back to the archive where it resumes after a lost range Kafka still holds.
        resumes = next((end for start, end in extent.lost if start <= offset < end), None)
        return Decision(Source.KAFKA, offset, resumes if mode is ReadMode.ARCHIVE_PREFERRED else None)
    return Decision(Source.HOLE, offset, hole_end=_next_held(offset, extent))


def _archive_run_end(offset: int, extent: Extent) -> int | None:
    """Where the archive stops holding offsets from ``offset`` on: its end or the next lost range; None when it
    does not hold ``offset``."""
    if extent.archive_next is None or not extent.in_archive(offset):
        return None
    lost_starts = [start for start, _ in extent.lost if start > offset]
    return min([extent.archive_next, *lost_starts])


def _next_held(offset: int, extent: Extent) -> int | None:
    """The first offset after ``offset`` that either side holds (the end of a hole), if any."""
    candidates = []
    if extent.archive_start is not None and offset < extent.archive_start:
        candidates.append(extent.archive_start)
    candidates += [end for start, end in extent.lost if start <= offset < end and end < (extent.archive_next or 0)]
    if extent.kafka_low is not None and offset < extent.kafka_low:
        candidates.append(extent.kafka_low)
    return min(candidates) if candidates else None


def resolve(offset: int, extent: Extent, mode: ReadMode, committed: int | None = None, reset: str = "latest") -> int:
    """A concrete offset for a logical one (beginning, end, stored); concrete offsets are returned as they are.

    Beginning is the earliest offset any allowed side holds; end is Kafka's high watermark (the archive's
    next offset in archive-only mode); stored is the committed offset, or ``reset`` (``auto.offset.reset``:
    earliest/smallest/beginning or latest/largest/end) when there is none. Raises ValueError for an unknown
    reset policy or an invalid offset.
    """
    if offset >= 0:
        return offset
    if offset == OFFSET_STORED:
        if committed is not None and committed >= 0:
            return committed
        return resolve(reset_offset(reset), extent, mode)
    if offset == OFFSET_BEGINNING:
        starts = [extent.archive_start] if extent.archive_start is not None else []
        if mode is not ReadMode.ARCHIVE_ONLY and extent.kafka_low is not None:
            starts.append(extent.kafka_low)
        return min(starts) if starts else 0
    if offset == OFFSET_END:
        if mode is ReadMode.ARCHIVE_ONLY or extent.kafka_high is None:
            return extent.archive_next if extent.archive_next is not None else 0
        return extent.kafka_high
    raise ValueError(f"offset {offset} is not a valid offset or logical offset")


def reset_offset(policy: str) -> int:
    """The logical offset ``auto.offset.reset`` names. Raises ValueError for an unknown policy."""
    if policy in ("earliest", "smallest", "beginning"):
        return OFFSET_BEGINNING
    if policy in ("latest", "largest", "end"):
        return OFFSET_END
    raise ValueError(f"auto.offset.reset {policy!r} is not earliest or latest")


def watermarks(extent: Extent, mode: ReadMode) -> tuple[int, int]:
    """``get_watermark_offsets``: the lowest offset any allowed side holds, and the end."""
    return resolve(OFFSET_BEGINNING, extent, mode), resolve(OFFSET_END, extent, mode)
