"""Pure decisions of the server: where a fetch starts and what it may return, what ListOffsets answers.

No I/O here: handlers gather the facts (a partition's extent, built batch sizes) and apply these answers.
Where an offset is served from is the consumer's decision (``pyrostore.consumer.decisions``, archive preferred):
one set of rules for both.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pyrostore.consumer.decisions import Extent, ReadMode, Source, decide

# ListOffsets' special timestamps (KIP-79, KIP-734, KIP-405, KIP-1005).
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
EARLIEST_PENDING_UPLOAD = -6


class Position(Enum):
    """What a fetch at an offset finds."""

    RECORDS = "records"  # the archive holds it: serve the batch holding it
    KAFKA = "kafka"  # live Kafka holds it (or will: at or past its end): fetch it there
    END = "end"  # the archive's end, no Kafka: nothing yet (wait, then answer with empty records)
    OUT_OF_RANGE = "out of range"  # before the earliest offset, or past the end
    HOLE = "hole"  # between the earliest and the end, but held by neither side


def fetch_position(offset: int, start: int, next_offset: int, kafka: tuple[int, int] | None = None) -> Position:
    """Where a fetch at ``offset`` stands in a partition whose archive covers ``[start, next_offset)`` and
    of which live Kafka holds ``kafka`` (``(low, high)``; None without Kafka, or while it cannot be asked).

    Kafka answers OFFSET_OUT_OF_RANGE below the log start and above the high watermark; at the high
    watermark it waits for records. Offsets neither side holds between the earliest and the end are holes,
    answered OFFSET_OUT_OF_RANGE too (as Kafka does for missing data), but logged and counted. Lost ranges
    inside the archive are found while reading (their index entries say so).
    """
    if kafka is None:
        if offset > next_offset:
            return Position.OUT_OF_RANGE
        decision = decide(offset, Extent(start, next_offset), ReadMode.ARCHIVE_ONLY)
        if decision.source is Source.ARCHIVE:
            return Position.RECORDS
        return Position.END if decision.source is Source.END else Position.OUT_OF_RANGE
    low, high = kafka
    if offset < (min(start, low) if next_offset > start else low):
        return Position.OUT_OF_RANGE
    decision = decide(offset, Extent(start, next_offset, low, high), ReadMode.ARCHIVE_PREFERRED)
    if decision.source is Source.ARCHIVE:
        return Position.RECORDS
    return Position.KAFKA if decision.source is Source.KAFKA else Position.HOLE


def first_batch(ends: Sequence[int], offset: int) -> int:
    """The index of the batch that holds ``offset`` (or the first one after it, when ``offset`` lies between
    batches), given each batch's exclusive end offset in order; ``len(ends)`` when every batch ends before it.

    Clients drop the records of the batch below their fetch offset, as they do with Kafka's own batches."""
    return bisect_right(ends, offset)


@dataclass
class Budget:
    """The bytes one Fetch response may still carry (KIP-74).

    ``max_bytes`` bounds the whole response; ``partition_max_bytes`` each partition. Whole batches only: the
    first batch of the response is taken whatever its size, so a client always progresses; the first batch of
    each later partition may pass the partition's limit while the response has room for it.
    """

    max_bytes: int
    used: int = 0

    def take(self, size: int, partition_used: int, partition_max_bytes: int) -> bool:
        """Whether a batch of ``size`` bytes goes in, after ``partition_used`` bytes of its partition; counts it."""
        if self.used == 0:
            allowed = True
        elif partition_used == 0:
            allowed = self.used + size <= self.max_bytes
        else:
            allowed = self.used + size <= self.max_bytes and partition_used + size <= partition_max_bytes
        if allowed:
            self.used += size
        return allowed


@dataclass(frozen=True)
class OffsetAnswer:
    """ListOffsets' answer for one partition: an offset with its timestamp (-1 when none), or a record
    timestamp to look up (``lookup``: the first record at or after it)."""

    offset: int = -1
    timestamp: int = -1
    lookup: int | None = None
    ask_kafka: bool = False  # latest: Kafka's own answer (its high watermark, or last stable offset)


def list_offset(
    timestamp: int, start: int, next_offset: int, max_timestamp: int | None, kafka_low: int | None = None
) -> OffsetAnswer:
    """ListOffsets for a partition whose archive covers ``[start, next_offset)`` and whose largest record
    timestamp is ``max_timestamp`` (None when it holds no record); ``kafka_low`` is live Kafka's log start
    (None without Kafka, or while it cannot be asked).

    Earliest (and earliest local: the archive is all local) is the first offset either side holds, latest
    Kafka's answer (the archive's next offset without Kafka); the largest timestamp and a time are looked up
    in the index (the first record at or after it, as Kafka's ``offsetsForTimes``; the handler asks Kafka
    for what the archive does not hold). Tiered-storage positions have no meaning here: no offset (-1), as
    Kafka answers for topics without remote storage.
    """
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        if kafka_low is None:
            return OffsetAnswer(start)
        return OffsetAnswer(min(start, kafka_low) if next_offset > start else kafka_low)
    if timestamp == LATEST:
        return OffsetAnswer(next_offset, ask_kafka=kafka_low is not None)
    if timestamp == MAX_TIMESTAMP:
        return OffsetAnswer() if max_timestamp is None else OffsetAnswer(lookup=max_timestamp)
    if timestamp < 0:  # LATEST_TIERED, EARLIEST_PENDING_UPLOAD and anything newer
        return OffsetAnswer()
    return OffsetAnswer(lookup=timestamp)


def first_at_or_after(offsets: Sequence[int], timestamps: Sequence[int], timestamp: int) -> tuple[int, int] | None:
    """The first (offset, timestamp) whose timestamp is at or after ``timestamp``, in offset order (record
    timestamps need not grow), or None."""
    for offset, stamp in zip(offsets, timestamps, strict=True):
        if stamp >= timestamp:
            return offset, stamp
    return None
