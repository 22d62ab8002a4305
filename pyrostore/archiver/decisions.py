"""Pure decisions of the archiver: where a partition starts, when a segment rolls, whether history was lost."""

from __future__ import annotations

from dataclasses import dataclass

from pyrostore.index.commits import Commit


@dataclass(frozen=True)
class StartPosition:
    """Where to start reading a partition, and the offsets Kafka deleted before they were archived."""

    offset: int
    lost_from: int | None = None  # lost range [lost_from, offset) when history is gone

    @property
    def lost(self) -> int:
        """How many offsets were lost (0 when none)."""
        return 0 if self.lost_from is None else self.offset - self.lost_from


def start_position(head: Commit, log_start: int) -> StartPosition:
    """Resume at the archive's ``next_offset`` (a new partition's claim starts at Kafka's log start).

    The archive, not Kafka's committed offset, is the truth. When Kafka's log start is already past the
    archive's end, the records between were deleted before they could be archived: a loss.
    """
    if log_start > head.next_offset:
        return StartPosition(log_start, lost_from=head.next_offset)
    return StartPosition(head.next_offset)


def should_roll(buffered_bytes: int, age: float, segment_bytes: int, segment_age: float) -> bool:
    """Whether an open segment is big or old enough to be committed."""
    return buffered_bytes >= segment_bytes or (buffered_bytes > 0 and age >= segment_age)


def largest(buffered: dict[int, int]) -> int | None:
    """The partition holding the most buffered bytes (to roll when the memory budget is exceeded)."""
    return max(buffered, key=buffered.__getitem__) if buffered else None
