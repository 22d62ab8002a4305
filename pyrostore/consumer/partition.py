"""One assigned partition of the crossover consumer: which phase it is in, and where it stands.

A partition starts (its start is looked up asynchronously), then reads from the archive or from Kafka; in
archive-only mode it may wait at the archive's end, and where neither side holds its offset it halts at a hole
until the application seeks. Each phase change is a method; the application's pause is a flag beside the phase.
"""

from __future__ import annotations

import time
from enum import Enum

from pyrostore.archive import PartitionArchive
from pyrostore.consumer.cursor import ArchiveCursor
from pyrostore.consumer.decisions import OFFSET_END, OFFSET_INVALID

Key = tuple[str, int]


class Phase(Enum):
    """Where a partition's next records come from."""

    STARTING = "starting"  # its start is being looked up (archive extent, Kafka watermarks, committed offset)
    ARCHIVE = "archive"
    KAFKA = "kafka"
    END = "end"  # archive-only mode at the archive's end: nothing more, for now
    HOLE = "hole"  # halted: neither side holds the offset, or there is nowhere to start


class PartitionState:
    """What the consumer knows of one assigned partition."""

    def __init__(
        self, topic: str, partition: int, reader: PartitionArchive | None = None, assigned_at: int = OFFSET_INVALID
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.assigned_at = assigned_at  # the offset the assignment named, as assignment() reports it
        self.phase = Phase.STARTING
        self.generation = 0  # bumped at each start: answers of older look-ups are stale
        self.starting_at = OFFSET_INVALID  # the offset (maybe logical) a start looks up
        self.next = OFFSET_INVALID  # the next offset the application gets from this partition
        self.position = OFFSET_INVALID  # what position() answers: after the last record handed out, if any
        self.cursor: ArchiveCursor | None = None
        self.reader = reader
        self.paused = False  # by the application
        self.eof_sent = False
        self.refresh_at = 0.0
        self.seek_to: int | None = None  # a seek of the inner consumer not done yet
        self.kafka_from = OFFSET_INVALID  # where Kafka took over: its records and events before this are stale
        self.fetch_failed = False  # the inner consumer stopped the partition (out of range): seeks fail
        self.archived_below = -1  # messages below this offset still waiting to be handed out came from the archive
        self.handed_out = -1  # the offset after the last record handed out (kept across seeks, for storing)
        self.from_archive = 0  # records handed out from each side
        self.from_kafka = 0

    @property
    def key(self) -> Key:
        """``(topic, partition)``."""
        return (self.topic, self.partition)

    @property
    def crossover_guess(self) -> int:
        """Where the inner consumer's paused partition waits: the archive's end, where Kafka likely takes over."""
        return self.reader.next_offset if self.reader is not None else OFFSET_END

    def start(self, offset: int) -> int:
        """Look up where ``offset`` (maybe logical) is read from; returns the generation the answer must carry."""
        self._drop_cursor()
        self.phase = Phase.STARTING
        self.starting_at = offset
        self.eof_sent = False
        self.seek_to = None
        self.generation += 1
        return self.generation

    def seeked(self) -> None:
        """The application moved the partition: its position is unknown until a record is handed out."""
        self.position = OFFSET_INVALID

    def read_archive(self, cursor: ArchiveCursor) -> None:
        """Hand out the archive's records from the cursor's offset."""
        self._leave()
        self.phase = Phase.ARCHIVE
        self.cursor = cursor

    def read_kafka(self, offset: int) -> None:
        """Hand out Kafka's records from ``offset``: the inner consumer is to be moved there first."""
        self._leave()
        self.phase = Phase.KAFKA
        self.seek_to = self.kafka_from = offset

    def move_again(self) -> None:
        """The inner consumer delivered from before the offset Kafka took over at: seek it there again."""
        self.seek_to = self.kafka_from

    def wait_at_end(self, refresh_seconds: float) -> None:
        """archive-only mode: nothing more is archived; look again after ``refresh_seconds``."""
        self._leave()
        self.phase = Phase.END
        self.refresh_at = time.monotonic() + refresh_seconds

    def halt(self) -> None:
        """Stop at a hole until the application seeks."""
        self._leave()
        self.phase = Phase.HOLE

    def pause(self) -> None:
        """The application paused the partition."""
        self.paused = True

    def resume(self) -> bool:
        """The application resumed the partition; returns whether it was paused."""
        was, self.paused = self.paused, False
        return was

    def delivered(self, offset: int) -> None:
        """The application got the record at ``offset``."""
        self.next = self.position = self.handed_out = offset + 1
        self.eof_sent = False
        if offset < self.archived_below:
            self.from_archive += 1
        else:
            self.from_kafka += 1

    def delivered_archived(self, last: int, count: int) -> None:
        """The application got ``count`` archived records at once, up to offset ``last``."""
        self.next = self.position = self.handed_out = last + 1
        self.eof_sent = False
        self.from_archive += count

    def inner_moved(self) -> None:
        """The inner consumer's seek to ``seek_to`` took effect."""
        self.seek_to = None

    def close(self) -> None:
        """Stop prefetching (the partition was unassigned or the consumer closed)."""
        self._drop_cursor()

    @property
    def reads_kafka(self) -> bool:
        """Whether the inner consumer should be fetching this partition now."""
        return self.phase is Phase.KAFKA and not self.paused and self.seek_to is None

    def _leave(self) -> None:
        self._drop_cursor()
        self.seek_to = None

    def _drop_cursor(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None
